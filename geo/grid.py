"""Study-area grid: square cells clipped to a polygon, with stable ids and point lookup.

The one module every stage may import (a camera worker must know its cell); it
imports no stage.  Geometry is done in a local metric projection (metres east
and north of a reference point) so cell sizes are in metres; areas given in
lon/lat are projected with :class:`LocalProjection`, an equirectangular
projection about the area's centre (error well under 0.5% across a city).

Cell ids are ``r{row}c{col}``; row 0 is the southernmost row, column 0 the
westernmost, so ids do not change when the area polygon is edited inside the
same bounding box and origin.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from geo.jsonfile import read_model

EARTH_RADIUS_M = 6_371_008.8
MAX_CELLS = 4_000_000
#: grids with more cells than this find the area's cells through an STRtree
STRTREE_FROM = 200_000


class GridError(ValueError):
    """An area or cell size that cannot make a usable grid."""


class GridConfig(BaseModel):
    """(grid:) the study area and its cells."""

    model_config = ConfigDict(extra="forbid")

    area: Optional[str] = Field(default=None, description="GeoJSON file path or WKT polygon")
    bbox: Optional[tuple[float, float, float, float]] = Field(
        default=None, description="minx, miny, maxx, maxy (lon/lat or metres), instead of area")
    crs: Literal["lonlat", "metric"] = "lonlat"
    cell_size_m: float = Field(default=250.0, gt=0)
    origin: Optional[tuple[float, float]] = Field(
        default=None, description="reference lon/lat of the local projection (default: area centre)")
    zones: dict[str, str] = Field(default_factory=dict,
                                  description="named zones: name -> GeoJSON path or WKT polygon (same crs as the area)")

    @model_validator(mode="after")
    def _one_area(self) -> "GridConfig":
        if (self.area is None) == (self.bbox is None):
            raise ValueError("give exactly one of 'area' (GeoJSON path or WKT) and 'bbox'")
        return self


@dataclass(frozen=True)
class LocalProjection:
    """Equirectangular projection about (lon0, lat0): metres east (x) and north (y)."""

    lon0: float
    lat0: float

    def to_metric(self, lon, lat):
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        k = math.cos(math.radians(self.lat0)) * EARTH_RADIUS_M
        return np.radians(lon - self.lon0) * k, np.radians(lat - self.lat0) * EARTH_RADIUS_M

    def to_lonlat(self, x, y):
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        k = math.cos(math.radians(self.lat0)) * EARTH_RADIUS_M
        return self.lon0 + np.degrees(x / k), self.lat0 + np.degrees(y / EARTH_RADIUS_M)

    def geometry_to_metric(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, lambda c: np.column_stack(self.to_metric(c[:, 0], c[:, 1])))

    def geometry_to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, lambda c: np.column_stack(self.to_lonlat(c[:, 0], c[:, 1])))


class GeoJSONFeature(BaseModel):
    """A Feature of an area file: only its geometry is read (properties, id and bbox are ignored)."""

    geometry: dict[str, Any]


class GeoJSONArea(BaseModel):
    """An area file: a FeatureCollection, a Feature or a bare geometry (whose other keys go to shapely)."""

    model_config = ConfigDict(extra="allow")
    type: str
    features: list[GeoJSONFeature] = Field(default_factory=list)
    geometry: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _feature_has_geometry(self) -> "GeoJSONArea":
        if self.type == "Feature" and self.geometry is None:
            raise ValueError("a Feature needs a geometry")
        return self


def load_area(spec: str, base_dir: Path | None = None) -> BaseGeometry:
    """Read a polygon from WKT text or a GeoJSON file (Feature, FeatureCollection or geometry)."""
    text = spec.strip()
    if text.upper().startswith(("POLYGON", "MULTIPOLYGON")):
        try:
            geom = shapely.from_wkt(text)
        except Exception as exc:  # shapely raises GEOSException subclasses
            raise GridError(f"area: invalid WKT: {exc}") from None
    else:
        path = Path(text)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        doc = read_model(path, GeoJSONArea, GridError, "GeoJSON file")
        try:
            if doc.type == "FeatureCollection":
                geoms = [shape(f.geometry) for f in doc.features]
                geom = shapely.union_all(geoms) if geoms else Polygon()
            elif doc.type == "Feature":
                geom = shape(doc.geometry)
            else:
                geom = shape({"type": doc.type, **(doc.model_extra or {})})
        except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise GridError(f"{path}: not a GeoJSON geometry: {exc}") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise GridError(f"area: expected a Polygon or MultiPolygon, got {geom.geom_type}")
    if geom.is_empty or not geom.is_valid:
        reason = shapely.is_valid_reason(geom) if not geom.is_empty else "empty"
        raise GridError(f"area: not a valid polygon ({reason})")
    return geom


class Grid:
    """Square cells of ``cell_size`` metres over a metric area, clipped to it."""

    def __init__(self, area_m: BaseGeometry, cell_size: float,
                 projection: Optional[LocalProjection] = None,
                 origin_xy: Optional[tuple[float, float]] = None) -> None:
        if not (cell_size > 0 and math.isfinite(cell_size)):
            raise GridError(f"cell_size_m must be a positive number of metres, got {cell_size}")
        if area_m.is_empty or area_m.area <= 0:
            raise GridError("area is empty")
        self.area = area_m
        self.cell_size = float(cell_size)
        self.projection = projection
        minx, miny, maxx, maxy = area_m.bounds
        self.x0, self.y0 = origin_xy if origin_xy is not None else (minx, miny)
        self.cols = max(1, math.ceil((maxx - self.x0) / self.cell_size))
        self.rows = max(1, math.ceil((maxy - self.y0) / self.cell_size))
        n = self.rows * self.cols
        if n > MAX_CELLS:
            raise GridError(f"cell_size_m={cell_size} makes {n:,} cells (limit {MAX_CELLS:,}); use larger cells")
        self.mask = self._area_mask(area_m, n)
        if not self.mask.any():
            raise GridError("no cell intersects the area")
        self.zones: dict[str, BaseGeometry] = {}

    def _area_mask(self, area_m: BaseGeometry, n: int) -> np.ndarray:
        """Which cells overlap the area (more than touching its edge).

        Small grids test every box at once (vectorised predicate); large ones ask an
        STRtree of the boxes for candidates first, so a detailed coastline over a
        million cells does not run the exact predicate a million times.
        """
        boxes = self._boxes(np.arange(n))
        if n <= STRTREE_FROM:
            inside = shapely.intersects(boxes, area_m) & ~shapely.touches(boxes, area_m)
        else:
            tree = shapely.STRtree(boxes)
            cand = tree.query(area_m, predicate="intersects")
            inside = np.zeros(n, dtype=bool)
            inside[cand] = ~shapely.touches(boxes[cand], area_m)
        return inside.reshape(self.rows, self.cols)

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: GridConfig, base_dir: Path | None = None) -> "Grid":
        if cfg.bbox is not None:
            minx, miny, maxx, maxy = cfg.bbox
            if not (maxx > minx and maxy > miny):
                raise GridError(f"bbox must have maxx > minx and maxy > miny, got {cfg.bbox}")
            geom = box(minx, miny, maxx, maxy)
        else:
            geom = load_area(cfg.area or "", base_dir)
        if cfg.crs == "metric":
            grid = cls(geom, cfg.cell_size_m)
        else:
            minx, miny, maxx, maxy = geom.bounds
            if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
                raise GridError(f"area bounds {geom.bounds} are not lon/lat; set crs: metric for metres")
            c = geom.centroid
            lon0, lat0 = cfg.origin if cfg.origin is not None else (c.x, c.y)
            proj = LocalProjection(lon0, lat0)
            grid = cls(proj.geometry_to_metric(geom), cfg.cell_size_m, proj)
        for name, spec in cfg.zones.items():
            try:
                zone = load_area(spec, base_dir)
            except GridError as exc:
                raise GridError(f"zones -> {name}: {exc}") from None
            grid.add_zone(name, zone, lonlat=cfg.crs == "lonlat")
        return grid

    # -- ids --------------------------------------------------------------------------
    @staticmethod
    def cell_id(row: int, col: int) -> str:
        return f"r{int(row)}c{int(col)}"

    @staticmethod
    def parse_cell_id(cell_id: str) -> tuple[int, int]:
        try:
            r, c = cell_id[1:].split("c")
            return int(r), int(c)
        except (ValueError, IndexError):
            raise GridError(f"not a cell id: {cell_id!r} (expected r<row>c<col>)") from None

    @property
    def grid_id(self) -> str:
        """A short hash of the geometry that identifies this grid (forecast checkpoints store it)."""
        h = hashlib.sha1(json.dumps([self.x0, self.y0, self.cell_size, self.rows, self.cols,
                                     self.projection.lon0 if self.projection else None,
                                     self.projection.lat0 if self.projection else None,
                                     int(self.mask.sum())]).encode())
        return h.hexdigest()[:12]

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    def has_cell(self, cell_id: str) -> bool:
        try:
            r, c = self.parse_cell_id(cell_id)
        except GridError:
            return False
        return 0 <= r < self.rows and 0 <= c < self.cols and bool(self.mask[r, c])

    def cell_ids(self) -> list[str]:
        """Ids of the cells inside the area, row-major."""
        rows, cols = np.nonzero(self.mask)
        return [self.cell_id(r, c) for r, c in zip(rows, cols)]

    # -- lookup -----------------------------------------------------------------------
    def rowcol_of_xy(self, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column and an inside-the-area flag for metric points (vectorised)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        col = np.floor((x - self.x0) / self.cell_size).astype(np.int64)
        row = np.floor((y - self.y0) / self.cell_size).astype(np.int64)
        ok = (row >= 0) & (row < self.rows) & (col >= 0) & (col < self.cols) & np.isfinite(x) & np.isfinite(y)
        ok[ok] = self.mask[row[ok], col[ok]]
        return row, col, ok

    def rowcol_of_lonlat(self, lon, lat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column and inside flag for many lon/lat points (vectorised)."""
        x, y = self.to_metric(lon, lat)
        return self.rowcol_of_xy(x, y)

    def cell_of_xy(self, x: float, y: float) -> Optional[str]:
        row, col, ok = self.rowcol_of_xy([x], [y])
        return self.cell_id(row[0], col[0]) if ok[0] else None

    def to_metric(self, lon, lat):
        if self.projection is None:
            raise GridError("this grid is metric; give x/y, not lon/lat")
        return self.projection.to_metric(lon, lat)

    def to_lonlat(self, x, y):
        if self.projection is None:
            raise GridError("this grid is metric and has no lon/lat")
        return self.projection.to_lonlat(x, y)

    def cell_of_lonlat(self, lon: float, lat: float) -> Optional[str]:
        x, y = self.to_metric(lon, lat)
        return self.cell_of_xy(float(x), float(y))

    def cell_of(self, *, lon: float | None = None, lat: float | None = None,
                x: float | None = None, y: float | None = None) -> Optional[str]:
        """Cell of a position given as lon/lat or metric x/y; None outside the area."""
        if lon is not None and lat is not None:
            return self.cell_of_lonlat(lon, lat)
        if x is not None and y is not None:
            return self.cell_of_xy(x, y)
        raise GridError("a position needs lon and lat, or x and y")

    # -- geometry -----------------------------------------------------------------------
    def _boxes(self, flat: np.ndarray) -> np.ndarray:
        r, c = np.divmod(flat, self.cols)
        x0 = self.x0 + c * self.cell_size
        y0 = self.y0 + r * self.cell_size
        return shapely.box(x0, y0, x0 + self.cell_size, y0 + self.cell_size)

    def cell_polygon(self, cell_id: str, lonlat: bool = False) -> BaseGeometry:
        r, c = self.parse_cell_id(cell_id)
        poly = self._boxes(np.array([r * self.cols + c]))[0]
        return self.projection.geometry_to_lonlat(poly) if lonlat and self.projection else poly

    def cell_lonlat_polygons(self, flat: np.ndarray) -> np.ndarray:
        """Cell squares (flat indices ``row * cols + col``) as lon/lat polygons (metric if no projection)."""
        boxes = self._boxes(np.asarray(flat, dtype=np.int64))
        if self.projection is None:
            return boxes
        proj = self.projection
        return shapely.transform(boxes, lambda c: np.column_stack(proj.to_lonlat(c[:, 0], c[:, 1])))

    def to_geojson(self, properties: Optional[dict[str, np.ndarray]] = None, ndigits: int = 4,
                   only_cells: Optional[np.ndarray] = None) -> dict:
        """A GeoJSON FeatureCollection of the cells inside the area (lon/lat, RFC 7946).

        ``properties`` maps a name to a (rows, cols) array; each feature carries
        ``cell_id``, ``row``, ``col``, its zone (if any) and the rounded values.
        ``only_cells`` (a boolean (rows, cols) array) restricts the output further.
        GIS tools (QGIS, geopandas) open the file directly.
        """
        sel = self.mask if only_cells is None else (self.mask & only_cells)
        rows, cols = np.nonzero(sel)
        polys = self.cell_lonlat_polygons(rows * self.cols + cols)
        zone_of = self.zone_map() if self.zones else None
        feats = []
        for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
            props: dict = {"cell_id": self.cell_id(r, c), "row": r, "col": c}
            if zone_of is not None:
                props["zone"] = zone_of[r][c]
            for name, arr in (properties or {}).items():
                v = arr[r, c]
                props[name] = round(float(v), ndigits) if np.issubdtype(np.asarray(v).dtype, np.floating) else v.item()
            feats.append({"type": "Feature", "id": props["cell_id"], "properties": props,
                          "geometry": shapely.geometry.mapping(polys[i])})
        return {"type": "FeatureCollection", "features": feats,
                "properties": {"grid_id": self.grid_id, "cell_size_m": self.cell_size,
                               "rows": self.rows, "cols": self.cols}}

    # -- zones ------------------------------------------------------------------------
    def add_zone(self, name: str, polygon: BaseGeometry, lonlat: bool = True) -> list[str]:
        """Name a zone (a polygon, lon/lat unless ``lonlat=False``); returns the ids of its cells.

        A cell belongs to the zone holding its centre; where zones overlap, the one
        added first wins in :meth:`zone_of`.
        """
        if polygon.is_empty or not polygon.is_valid or polygon.geom_type not in ("Polygon", "MultiPolygon"):
            raise GridError(f"zone {name!r}: not a valid polygon")
        geom = polygon
        if lonlat:
            if self.projection is None:
                raise GridError(f"zone {name!r}: this grid is metric; give the zone in metres (lonlat=False)")
            geom = self.projection.geometry_to_metric(polygon)
        self.zones[name] = geom
        return self.zone_cells(name)

    def zone_cells(self, name: str) -> list[str]:
        """Ids of the cells whose centre lies in the zone."""
        if name not in self.zones:
            raise GridError(f"unknown zone {name!r}; known: {sorted(self.zones)}")
        xs, ys = self.cell_centres()
        inside = shapely.contains_xy(self.zones[name], xs, ys) & self.mask
        rows, cols = np.nonzero(inside)
        return [self.cell_id(r, c) for r, c in zip(rows, cols)]

    def zone_map(self) -> list[list[Optional[str]]]:
        """Zone name of every cell as a rows x cols nested list (None outside every zone)."""
        out = np.full((self.rows, self.cols), None, dtype=object)
        xs, ys = self.cell_centres()
        for name in reversed(list(self.zones)):  # first added wins
            out[shapely.contains_xy(self.zones[name], xs, ys) & self.mask] = name
        return out.tolist()

    def zone_of(self, cell_id: str) -> Optional[str]:
        r, c = self.parse_cell_id(cell_id)
        return self.zone_map()[r][c] if self.has_cell(cell_id) else None

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Metric x and y of every cell centre, arrays of shape (rows, cols)."""
        xs = self.x0 + (np.arange(self.cols) + 0.5) * self.cell_size
        ys = self.y0 + (np.arange(self.rows) + 0.5) * self.cell_size
        return np.meshgrid(xs, ys)

    def values_to_dict(self, values: np.ndarray, min_abs: float = 0.0, ndigits: int = 4) -> dict[str, float]:
        """Sparse {cell_id: value} of a (rows, cols) array over the cells inside the area."""
        out = {}
        rows, cols = np.nonzero(self.mask & (np.abs(values) > min_abs))
        for r, c in zip(rows, cols):
            out[self.cell_id(r, c)] = round(float(values[r, c]), ndigits)
        return out

    def dict_to_values(self, cells: dict[str, float]) -> np.ndarray:
        """Inverse of :meth:`values_to_dict`: a (rows, cols) array, zeros where absent."""
        arr = np.zeros((self.rows, self.cols))
        for cid, v in cells.items():
            r, c = self.parse_cell_id(cid)
            if 0 <= r < self.rows and 0 <= c < self.cols:
                arr[r, c] = v
        return arr


def cells_of_points(grid: Grid, xs: Sequence[float], ys: Sequence[float]) -> list[Optional[str]]:
    """Cell ids of many metric points at once (None outside the area)."""
    row, col, ok = grid.rowcol_of_xy(xs, ys)
    return [grid.cell_id(r, c) if k else None for r, c, k in zip(row, col, ok)]
