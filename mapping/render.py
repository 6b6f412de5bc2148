"""Map outputs on disk: GeoJSON of the cells with their values, and a PNG heat map.

The GeoJSON is a FeatureCollection of the cells inside the city in lon/lat
(RFC 7946), one feature per cell with ``cell_id``, ``row``, ``col`` and, per
layer, ``merged_<type>``, ``live_<type>``, ``forecast_<type>``, their
standard-deviation classes ``class_<type>``, ``live_class_<type>``,
``forecast_class_<type>``, and the two terms that explain the merge, ``weight_<type>`` and
``live_mean_<type>`` (merged = weight * live_mean + (1 - weight) * forecast);
QGIS and geopandas open it as is.  The PNG draws one layer
as a heat map over the grid (cell lines, area outline), the cameras as
labelled markers, a colour bar and a legend of the standard-deviation classes
(the highest clusters outlined).  Files are written atomically (temporary
file, then rename), so a reader never sees half a map.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from geo.grid import Grid


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_geojson(grid: Grid, layers: dict[str, dict[str, np.ndarray]], path: str | Path,
                  extra: Optional[dict] = None) -> Path:
    """``layers``: {crime type: {kind: (rows, cols) array}}; each becomes the property ``<kind>_<type>``."""
    props = {f"{kind}_{ctype}": arr for ctype, kinds in layers.items() for kind, arr in kinds.items()}
    fc = grid.to_geojson(props)
    if extra:
        fc["properties"].update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(fc, separators=(",", ":")).encode())
    return path


def render_png(grid: Grid, values: np.ndarray, path: str | Path, *, classes: Optional[np.ndarray] = None,
               cameras: Sequence[dict] = (), title: str = "", label: str = "value",
               vmax: Optional[float] = None) -> Path:
    """Heat map of one (rows, cols) layer with grid lines, cameras and a legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    lonlat = grid.projection is not None
    xe = grid.x0 + np.arange(grid.cols + 1) * grid.cell_size
    ye = grid.y0 + np.arange(grid.rows + 1) * grid.cell_size
    if lonlat:  # the local projection is equirectangular: cell edges stay straight lines in lon/lat
        xe, _ = grid.to_lonlat(xe, np.zeros_like(xe))
        _, ye = grid.to_lonlat(np.zeros_like(ye), ye)
    v = np.ma.masked_where(~grid.mask, np.asarray(values, dtype=float))
    aspect = (grid.rows / max(grid.cols, 1))
    fig, ax = plt.subplots(figsize=(9, max(4.0, min(12.0, 8 * aspect + 1))))
    top = vmax if vmax is not None else (float(v.max()) if v.count() and v.max() > 0 else 1.0)
    mesh = ax.pcolormesh(xe, ye, v, cmap="YlOrRd", vmin=0, vmax=top, shading="flat")
    # grid lines: every cell when few, else every k-th
    step = max(1, max(grid.rows, grid.cols) // 40)
    for x in xe[::step]:
        ax.axvline(x, color="0.75", lw=0.3, zorder=1)
    for y in ye[::step]:
        ax.axhline(y, color="0.75", lw=0.3, zorder=1)
    area = grid.projection.geometry_to_lonlat(grid.area) if lonlat else grid.area
    for poly in getattr(area, "geoms", [area]):
        ax.plot(*poly.exterior.xy, color="0.3", lw=0.8)
    handles = []
    if classes is not None:
        hr, hc = np.nonzero(grid.mask & (classes >= 3))
        if hr.size:
            rects = [Rectangle((xe[c], ye[r]), xe[c + 1] - xe[c], ye[r + 1] - ye[r]) for r, c in zip(hr, hc)]
            ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor="navy", linewidth=0.9, zorder=4))
        counts = {c: int(((classes == c) & grid.mask).sum()) for c in range(0, int(classes.max(initial=0)) + 1)}
        names = {0: "below mean+0.5sd", 1: "mean+0.5..1.5sd", 2: "mean+1.5..2.5sd", 3: "mean+2.5..3.5sd",
                 4: "above mean+3.5sd"}
        handles += [Patch(facecolor="none", edgecolor="navy", label="SD class >= 3 (highest clusters)")]
        handles += [Patch(facecolor="white", edgecolor="none", label=f"class {c}: {names.get(c, c)}: {n} cells")
                    for c, n in counts.items() if c > 0]
    if cameras:
        cx = [c["lon"] if lonlat else c["x"] for c in cameras]
        cy = [c["lat"] if lonlat else c["y"] for c in cameras]
        ax.scatter(cx, cy, marker="^", s=60, c="royalblue", edgecolors="k", zorder=5)
        for c, x, y in zip(cameras, cx, cy):
            ax.annotate(str(c.get("id", "")), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        handles.append(plt.Line2D([], [], marker="^", ls="", color="royalblue", markeredgecolor="k", label="camera"))
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.85)
    fig.colorbar(mesh, ax=ax, label=label, shrink=0.8)
    ax.set_xlabel("longitude" if lonlat else "x (m)")
    ax.set_ylabel("latitude" if lonlat else "y (m)")
    if lonlat:
        ax.set_aspect(1.0 / np.cos(np.radians(grid.projection.lat0)))
    else:
        ax.set_aspect("equal")
    ax.set_title(title or f"grid {grid.grid_id}, {grid.cell_size:g} m cells")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
