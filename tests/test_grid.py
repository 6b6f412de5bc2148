"""Grid: construction, ids, vectorised point lookup, zones, GeoJSON, STRtree path, bad areas and sizes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box, shape

from geo import grid as grid_mod
from geo.grid import Grid, GridConfig, GridError, LocalProjection, cells_of_points, load_area

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def metric_grid(w=1000.0, h=600.0, cell=100.0) -> Grid:
    return Grid(box(0, 0, w, h), cell)


def test_construction_and_ids():
    g = metric_grid()
    assert g.shape == (6, 10)
    assert g.mask.all() and len(g.cell_ids()) == 60
    assert g.cell_ids()[0] == "r0c0" and g.cell_ids()[-1] == "r5c9"
    assert Grid.parse_cell_id("r3c7") == (3, 7)
    with pytest.raises(GridError, match="not a cell id"):
        Grid.parse_cell_id("cell-3")
    assert g.has_cell("r5c9") and not g.has_cell("r6c0")
    # the id hash changes with the cell size
    assert g.grid_id != metric_grid(cell=50.0).grid_id


def test_clipped_to_polygon_and_lookup():
    tri = Polygon([(0, 0), (1000, 0), (0, 1000)])
    g = Grid(tri, 100.0)
    assert not g.mask[9, 9] and g.mask[0, 0]
    assert g.cell_of(x=50, y=50) == "r0c0"
    assert g.cell_of(x=950, y=950) is None          # in the bounding box, outside the triangle
    assert g.cell_of(x=-1, y=5) is None


def test_vectorised_lookup_matches_scalar():
    g = Grid.from_config(GridConfig(bbox=(-79.5, 43.6, -79.3, 43.75), cell_size_m=500))
    rng = np.random.default_rng(0)
    lon = rng.uniform(-79.55, -79.25, 2000)
    lat = rng.uniform(43.55, 43.8, 2000)
    r, c, ok = g.rowcol_of_lonlat(lon, lat)
    scalar = [g.cell_of(lon=a, lat=b) for a, b in zip(lon, lat)]
    vec = [g.cell_id(rr, cc) if k else None for rr, cc, k in zip(r, c, ok)]
    assert vec == scalar
    assert 0 < sum(v is None for v in vec) < 2000
    x, y = g.to_metric(lon, lat)
    assert cells_of_points(g, x, y) == scalar


def test_projection_round_trip():
    p = LocalProjection(-79.4, 43.7)
    x, y = p.to_metric([-79.5, -79.3], [43.6, 43.8])
    lon, lat = p.to_lonlat(x, y)
    np.testing.assert_allclose(lon, [-79.5, -79.3], atol=1e-9)
    np.testing.assert_allclose(lat, [43.6, 43.8], atol=1e-9)
    assert abs(abs(x[0]) - 8050) < 100      # 0.1 degree of longitude at 43.7 N is about 8 km


def test_invalid_polygon_errors():
    with pytest.raises(GridError, match="not a valid polygon"):
        load_area("POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))")          # bow tie
    with pytest.raises(GridError, match="invalid WKT"):
        load_area("POLYGON ((0 0, 1 1")
    with pytest.raises(GridError, match="cannot read GeoJSON"):
        load_area("/nonexistent/area.geojson")


def test_area_file_that_is_not_a_polygon(tmp_path):
    p = tmp_path / "point.geojson"
    p.write_text(json.dumps({"type": "Point", "coordinates": [0, 0]}))
    with pytest.raises(GridError, match="expected a Polygon"):
        load_area(str(p))


@pytest.mark.parametrize("size", [0.0, -5.0, float("nan"), float("inf")])
def test_cell_size_that_makes_zero_cells(size):
    with pytest.raises(GridError, match="cell_size_m must be a positive number"):
        Grid(box(0, 0, 100, 100), size)


def test_cell_size_that_makes_millions_of_cells():
    with pytest.raises(GridError, match=r"makes .* cells \(limit"):
        Grid(box(0, 0, 100_000, 100_000), 10.0)          # 100 million cells
    with pytest.raises(GridError, match="makes"):
        Grid.from_config(GridConfig(area=str(CONFIGS / "toronto_area.geojson"), cell_size_m=10))


def test_not_lonlat_bounds():
    with pytest.raises(GridError, match="not lon/lat"):
        Grid.from_config(GridConfig(bbox=(0, 0, 5000, 5000), cell_size_m=100))


def test_strtree_path_equals_vectorised(monkeypatch):
    area = shapely.Point(0, 0).buffer(5000, quad_segs=32)
    a = Grid(area, 250.0)
    monkeypatch.setattr(grid_mod, "STRTREE_FROM", 10)
    b = Grid(area, 250.0)
    assert np.array_equal(a.mask, b.mask)
    assert 0 < a.mask.sum() < a.mask.size


def test_zones():
    g = metric_grid()
    west = g.add_zone("west", box(0, 0, 300, 600), lonlat=False)
    assert len(west) == 18 and "r0c0" in west and "r0c3" not in west
    g.add_zone("south", box(0, 0, 1000, 200), lonlat=False)
    assert g.zone_of("r0c0") == "west"          # first added wins where zones overlap
    assert g.zone_of("r0c5") == "south"
    assert g.zone_of("r5c9") is None
    with pytest.raises(GridError, match="unknown zone"):
        g.zone_cells("north")
    with pytest.raises(GridError, match="not a valid polygon"):
        g.add_zone("bad", Polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), lonlat=False)
    with pytest.raises(GridError, match="metric"):
        g.add_zone("ll", box(0, 0, 1, 1))


def test_zones_from_config(tmp_path):
    cfg = GridConfig(bbox=(-79.5, 43.6, -79.3, 43.75), cell_size_m=500,
                     zones={"core": "POLYGON ((-79.42 43.64, -79.36 43.64, -79.36 43.68, -79.42 43.68, -79.42 43.64))"})
    g = Grid.from_config(cfg)
    cells = g.zone_cells("core")
    assert 80 < len(cells) < 100       # 4.8 km x 4.4 km of 500 m cells
    with pytest.raises(GridError, match="zones -> bad"):
        Grid.from_config(cfg.model_copy(update={"zones": {"bad": "POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"}}))


def test_geojson_export_is_lonlat_and_complete(tmp_path):
    g = Grid.from_config(GridConfig(area=str(CONFIGS / "toronto_area.geojson"), cell_size_m=2000))
    vals = np.arange(g.rows * g.cols, dtype=float).reshape(g.shape)
    fc = g.to_geojson({"value": vals})
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == int(g.mask.sum())
    f0 = fc["features"][0]
    r, c = f0["properties"]["row"], f0["properties"]["col"]
    assert f0["properties"]["cell_id"] == g.cell_id(r, c)
    assert f0["properties"]["value"] == vals[r, c]
    poly = shape(f0["geometry"])
    minx, miny, maxx, maxy = poly.bounds
    assert -80 < minx < maxx < -79 and 43 < miny < maxy < 44
    # the polygon is the cell: its centre looks up to the same id
    assert g.cell_of(lon=poly.centroid.x, lat=poly.centroid.y) == f0["properties"]["cell_id"]
    path = tmp_path / "cells.geojson"
    path.write_text(json.dumps(fc))
    assert json.loads(path.read_text())["properties"]["grid_id"] == g.grid_id


def test_toronto_area_is_the_city():
    area = load_area(str(CONFIGS / "toronto_area.geojson"))
    assert area.is_valid
    g = Grid.from_config(GridConfig(area=str(CONFIGS / "toronto_area.geojson"), cell_size_m=450))
    km2 = g.area.area / 1e6
    assert 550 < km2 < 700            # the City of Toronto is about 630 km2
    assert g.cell_of(lon=-79.3832, lat=43.6532) is not None     # City Hall
    assert g.cell_of(lon=-79.38, lat=43.55) is None              # Lake Ontario
