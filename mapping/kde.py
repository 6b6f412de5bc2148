"""Weighted kernel density over a raster: binning plus FFT convolution, with a direct-sum reference.

The surface at a cell centre c is ``sum_p w_p K(|c - p|)`` with a kernel of
search radius r that integrates to 1 over the plane, reported per square
kilometre (``area_unit="km2"``, the default) or per square metre.

Kernels come from the registry in :mod:`mapping.kernels` (``"quartic"``, ArcGIS's
kernel, and a truncated ``"gaussian"``); every kernel is zero beyond r, so r is a
hard search radius as in crime-mapping tools, and integrates to 1 over the plane.

Fast path (:func:`kde`): the points are binned onto a lattice (the raster's cell
centres, or a finer lattice with ``oversample`` = 3, 5, ... nodes per cell edge
whose nodes include the centres), ``"nearest"`` (each point to its nearest node)
or ``"linear"`` (cloud-in-cell: bilinear shares to the four surrounding nodes,
which keeps the weighted mean position of the points), then convolved with the
kernel sampled at the lattice offsets by ``scipy.signal.fftconvolve``.  The
lattice extends past the raster by the radius, so points outside the raster
still count near its edge.  The FFT result equals the direct sum over the
*binned* points (:func:`binned_points` + :func:`kde_direct`) to floating-point
error; its distance from the direct sum over the raw points is the binning
error, which linear binning and finer lattices shrink (bench/bench_kde.py).
FFT round-off below 1e-12 of the peak is set to exactly 0.

Also here: standard-deviation classes (:func:`sd_classes`; :func:`class_dict` as snapshots carry them), the top cells
(:func:`top_cells`) and the live surface from per-cell values
(:func:`surface_from_cells`), which is what the map service calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Sequence, Union

import numpy as np
import scipy.fft
from scipy.signal import fftconvolve
from scipy.spatial import cKDTree

from geo.grid import Grid
from mapping import kernels

Kernel = str  # a name registered in mapping.kernels
Binning = Literal["linear", "nearest"]
AreaUnit = Literal["km2", "m2"]
BINNINGS = ("linear", "nearest")
_AREA = {"m2": 1.0, "km2": 1e6}
_ROUNDOFF = 1e-12
MAX_LATTICE_NODES = 100_000_000


@dataclass(frozen=True)
class Raster:
    """A regular raster: ``rows`` x ``cols`` square cells of ``cell`` metres, lower-left corner (x0, y0).

    Row 0 is the southernmost row (as in :class:`geo.grid.Grid`).
    """

    x0: float
    y0: float
    cell: float
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cell) and self.cell > 0):
            raise ValueError(f"raster cell size must be > 0 metres, got {self.cell}")
        if not (int(self.rows) >= 1 and int(self.cols) >= 1):
            raise ValueError(f"raster needs at least one row and column, got {self.rows} x {self.cols}")
        if not (math.isfinite(self.x0) and math.isfinite(self.y0)):
            raise ValueError(f"raster origin must be finite, got ({self.x0}, {self.y0})")

    @classmethod
    def of(cls, grid: Union["Raster", Grid]) -> "Raster":
        if isinstance(grid, Raster):
            return grid
        if isinstance(grid, Grid):
            return cls(grid.x0, grid.y0, grid.cell_size, grid.rows, grid.cols)
        raise TypeError(f"expected a geo.grid.Grid or a Raster, got {type(grid).__name__}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Metric x and y of the cell centres, arrays of shape (rows, cols)."""
        xs = self.x0 + (np.arange(self.cols) + 0.5) * self.cell
        ys = self.y0 + (np.arange(self.rows) + 0.5) * self.cell
        return np.meshgrid(xs, ys)


# -- kernels ------------------------------------------------------------------------------
def _check_kernel(radius: float, kernel: str) -> None:
    kernels.get(kernel)
    if not (isinstance(radius, (int, float, np.floating)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number of metres, got {radius!r}")


def kernel_value(d, radius: float, kernel: Kernel = "quartic") -> np.ndarray:
    """Kernel density per square metre at distances ``d`` (metres); integrates to 1 over the plane."""
    _check_kernel(radius, kernel)
    return kernels.get(kernel)(np.asarray(d, dtype=float), radius)


def kernel_stencil(radius: float, spacing: float, kernel: Kernel = "quartic") -> np.ndarray:
    """The kernel sampled at lattice offsets ``(u, v) * spacing``, shape (2m+1, 2m+1), per m²."""
    _check_kernel(radius, kernel)
    m = int(math.ceil(radius / spacing))
    u = np.arange(-m, m + 1) * spacing
    return kernel_value(np.hypot(u[None, :], u[:, None]), radius, kernel)


# -- binning ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Lattice:
    """Binning lattice: spacing ``f = cell / s``; node n along x sits at ``x0 + (n - pad + 0.5) f``."""

    raster: Raster
    s: int
    pad: int

    @property
    def f(self) -> float:
        return self.raster.cell / self.s

    @property
    def shape(self) -> tuple[int, int]:
        return self.raster.rows * self.s + 2 * self.pad, self.raster.cols * self.s + 2 * self.pad

    def node_xy(self, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.raster
        return r.x0 + (col - self.pad + 0.5) * self.f, r.y0 + (row - self.pad + 0.5) * self.f

    def centre_slices(self) -> tuple[slice, slice]:
        """Lattice nodes that are the raster's cell centres."""
        off = self.pad + (self.s - 1) // 2
        r = self.raster
        return slice(off, off + r.rows * self.s, self.s), slice(off, off + r.cols * self.s, self.s)


def _lattice(raster: Raster, radius: float, oversample: int) -> _Lattice:
    if not (isinstance(oversample, (int, np.integer)) and oversample >= 1 and oversample % 2 == 1):
        raise ValueError(f"oversample must be an odd integer >= 1 (lattice nodes must include the "
                         f"cell centres), got {oversample!r}")
    lat = _Lattice(raster, int(oversample), int(math.ceil(radius / (raster.cell / oversample))) + 1)
    n = lat.shape[0] * lat.shape[1]
    if n > MAX_LATTICE_NODES:
        raise ValueError(f"binning lattice of {lat.shape[0]} x {lat.shape[1]} nodes is too large "
                         f"(limit {MAX_LATTICE_NODES:,}); lower oversample or use a coarser raster")
    return lat


def _check_points(x, y, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != x.shape:
        raise ValueError(f"weights must have one value per point ({x.size}), got {w.size}")
    for name, arr in (("x", x), ("y", y), ("weights", w)):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name}[{i}] is {arr[i]}: coordinates and weights must be finite")
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise ValueError(f"weights[{i}] = {w[i]} is negative: weights must be >= 0")
    return x, y, w


def _bin(lat: _Lattice, x, y, w, binning: str) -> np.ndarray:
    """Weights binned onto the lattice; points whose nodes fall off it are too far to count."""
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    r = lat.raster
    nr, nc = lat.shape
    u = (x - r.x0) / lat.f - 0.5 + lat.pad  # fractional lattice column
    v = (y - r.y0) / lat.f - 0.5 + lat.pad
    if binning == "nearest":
        cols, rows, shares = [np.floor(u + 0.5)], [np.floor(v + 0.5)], [w]
    else:
        c0, r0 = np.floor(u), np.floor(v)
        tu, tv = u - c0, v - r0
        cols = [c0, c0 + 1, c0, c0 + 1]
        rows = [r0, r0, r0 + 1, r0 + 1]
        shares = [w * (1 - tu) * (1 - tv), w * tu * (1 - tv), w * (1 - tu) * tv, w * tu * tv]
    grid = np.zeros(nr * nc)
    for c, rr, s in zip(cols, rows, shares):
        ok = (c >= 0) & (c < nc) & (rr >= 0) & (rr < nr)
        grid += np.bincount((rr[ok] * nc + c[ok]).astype(np.int64), weights=s[ok], minlength=nr * nc)
    return grid.reshape(nr, nc)


def binned_points(x, y, weights=None, *, raster: Union[Raster, Grid], radius: float,
                  binning: Binning = "linear", oversample: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lattice nodes and weights that :func:`kde` convolves: (x, y, w) of the non-empty nodes."""
    raster = Raster.of(raster)
    _check_kernel(radius, "quartic")
    x, y, w = _check_points(x, y, weights)
    lat = _lattice(raster, radius, oversample)
    B = _bin(lat, x, y, w, binning)
    rows, cols = np.nonzero(B)
    bx, by = lat.node_xy(rows, cols)
    return bx, by, B[rows, cols]


# -- the surface -------------------------------------------------------------------------
def _convolve(B: np.ndarray, K: np.ndarray, workers: Optional[int]) -> np.ndarray:
    with scipy.fft.set_workers(workers if workers is not None else 1):
        out = fftconvolve(B, K, mode="same")
    return out


def _clean(S: np.ndarray) -> np.ndarray:
    """Drop FFT round-off: negatives and values below 1e-12 of the peak become exactly 0."""
    peak = S.max() if S.size else 0.0
    S[S < _ROUNDOFF * peak] = 0.0
    return S


def kde(x, y, weights=None, *, raster: Union[Raster, Grid], radius: float, kernel: Kernel = "quartic",
        binning: Binning = "linear", oversample: int = 1, area_unit: AreaUnit = "km2",
        workers: Optional[int] = None) -> np.ndarray:
    """Weighted KDE at the raster's cell centres by binning and FFT convolution, shape (rows, cols).

    ``x``, ``y``: metric point coordinates (metres, the raster's frame);
    ``weights``: one non-negative weight per point (default 1); ``radius``:
    search radius in metres; ``oversample``: odd lattice nodes per cell edge;
    ``workers``: threads for the FFT (default 1).  No points: all zeros.
    """
    raster = Raster.of(raster)
    _check_kernel(radius, kernel)
    if area_unit not in _AREA:
        raise ValueError(f"area_unit must be one of {tuple(_AREA)}, got {area_unit!r}")
    x, y, w = _check_points(x, y, weights)
    lat = _lattice(raster, radius, oversample)
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    if x.size == 0 or not w.any():
        return np.zeros(raster.shape)
    B = _bin(lat, x, y, w, binning)
    K = kernel_stencil(radius, lat.f, kernel) * _AREA[area_unit]
    rs, cs = lat.centre_slices()
    return _clean(np.ascontiguousarray(_convolve(B, K, workers)[rs, cs]))


def kde_direct(x, y, weights=None, *, raster: Union[Raster, Grid], radius: float, kernel: Kernel = "quartic",
               area_unit: AreaUnit = "km2", chunk: int = 4096) -> np.ndarray:
    """Reference: the direct sum over the given points of ``w K(d)`` at each cell centre.

    Pairs within the radius come from ``cKDTree.sparse_distance_matrix`` between
    the points and the cell centres, ``chunk`` points at a time.  Exact up to
    floating-point error; slow on large inputs (see bench/bench_kde.py).
    """
    raster = Raster.of(raster)
    _check_kernel(radius, kernel)
    if area_unit not in _AREA:
        raise ValueError(f"area_unit must be one of {tuple(_AREA)}, got {area_unit!r}")
    x, y, w = _check_points(x, y, weights)
    out = np.zeros(raster.rows * raster.cols)
    if x.size == 0:
        return out.reshape(raster.shape)
    X, Y = raster.centres()
    centres = cKDTree(np.column_stack([X.ravel(), Y.ravel()]))
    for start in range(0, x.size, chunk):
        sl = slice(start, start + chunk)
        pts = cKDTree(np.column_stack([x[sl], y[sl]]))
        # ndarray output keeps pairs at distance 0 (a coo matrix could drop them).
        pairs = pts.sparse_distance_matrix(centres, radius, output_type="ndarray")
        if len(pairs):
            contrib = w[sl][pairs["i"]] * kernel_value(pairs["v"], radius, kernel)
            out += np.bincount(pairs["j"], weights=contrib, minlength=out.size)
    return out.reshape(raster.shape) * _AREA[area_unit]


# -- the live surface from per-cell values ---------------------------------------------------------
def cell_values_array(values: Union[Mapping[str, float], np.ndarray], grid: Grid) -> np.ndarray:
    """Per-cell values as a (rows, cols) array; checks ids, shape and finiteness."""
    if isinstance(values, Mapping):
        arr = np.zeros(grid.shape)
        unknown = []
        for cid, v in values.items():
            if not grid.has_cell(cid):
                unknown.append(cid)
                continue
            r, c = grid.parse_cell_id(cid)
            arr[r, c] = float(v)
        if unknown:
            raise ValueError(f"{len(unknown)} cell id(s) not in the grid (rows {grid.rows}, cols {grid.cols}, "
                             f"inside the area): {sorted(unknown)[:5]}")
    else:
        arr = np.asarray(values, dtype=float)
        if arr.shape != grid.shape:
            raise ValueError(f"cell values must have the grid's shape {grid.shape}, got {arr.shape}")
        arr = np.where(grid.mask, arr, 0.0)
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"value of cell {grid.cell_id(r, c)} is {arr[r, c]}: must be finite")
    if (arr < 0).any():
        r, c = (int(v) for v in np.argwhere(arr < 0)[0])
        raise ValueError(f"value of cell {grid.cell_id(r, c)} is {arr[r, c]}: must be >= 0")
    return arr


def surface_from_cells(values: Union[Mapping[str, float], np.ndarray], grid: Grid, *, radius: float,
                       kernel: Kernel = "quartic", mode: Literal["mean", "density"] = "mean",
                       workers: Optional[int] = None) -> np.ndarray:
    """KDE surface over the grid from per-cell values (e.g. live imminence), shape (rows, cols).

    ``values``: ``{cell_id: value}`` (absent cells are 0) or a (rows, cols)
    array; only cells inside the area count.  The values sit at the cell
    centres, so the convolution is exact (no binning error).

    * ``mode="mean"`` (default): the kernel-weighted mean of the values of the
      cells within the radius that lie inside the area,
      ``sum_c v_c K(d) / sum_c K(d)``; it keeps the values' scale (an imminence
      of 0 to 10 stays 0 to 10) and the area's edge does not dilute it (near the
      edge it averages over fewer cells, so a hot cell there weighs more).
    * ``mode="density"``: ``sum_c v_c K(d)`` per km², the KDE of the study.

    Cells outside the area get 0.
    """
    arr = cell_values_array(values, grid)
    raster = Raster.of(grid)
    _check_kernel(radius, kernel)
    if mode not in ("mean", "density"):
        raise ValueError(f"mode must be 'mean' or 'density', got {mode!r}")
    if not arr.any():
        return np.zeros(grid.shape)
    K = kernel_stencil(radius, raster.cell, kernel) * _AREA["km2"]
    num = _clean(_convolve(arr, K, workers))
    if mode == "density":
        return np.where(grid.mask, num, 0.0)
    den = _convolve(grid.mask.astype(float), K, workers)  # > 0 at every cell inside: K(0) > 0
    out = np.divide(num, den, out=np.zeros_like(num), where=grid.mask & (den > 0))
    return np.clip(out, 0.0, arr.max())  # a mean cannot exceed the largest value (round-off)


# -- classes and top cells -------------------------------------------------------------------------
SD_STEPS = (0.5, 1.5, 2.5, 3.5)


def sd_classes(values: np.ndarray, mask: Optional[np.ndarray] = None, *,
               steps: Sequence[float] = SD_STEPS, nonzero_only: bool = False) -> np.ndarray:
    """Standard-deviation classes of a surface, as in the study's hot-spot maps.

    Mean m and standard deviation s over the cells inside ``mask`` (all cells
    by default; only the non-zero ones with ``nonzero_only``).  With the
    default steps: class 0 below m + 0.5 s, class 1 in [m + 0.5 s, m + 1.5 s),
    2 in [m + 1.5 s, m + 2.5 s), 3 in [m + 2.5 s, m + 3.5 s), 4 from m + 3.5 s up:
    one-standard-deviation bands above the mean, the highest clusters in class 4.
    Cells outside the mask get -1.  A flat surface (s = 0) is all class 0.
    """
    v = np.asarray(values, dtype=float)
    m = np.ones(v.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != v.shape:
        raise ValueError(f"mask shape {m.shape} differs from the values' {v.shape}")
    st = np.asarray(steps, dtype=float)
    if st.ndim != 1 or st.size == 0 or np.any(np.diff(st) <= 0):
        raise ValueError(f"steps must be an increasing list of standard-deviation multiples, got {steps!r}")
    if not np.all(np.isfinite(v[m])):
        raise ValueError("values must be finite inside the mask")
    out = np.full(v.shape, -1, dtype=np.int64)
    sample = v[m & (v != 0)] if nonzero_only else v[m]
    if sample.size == 0:
        out[m] = 0
        return out
    mean, sd = float(sample.mean()), float(sample.std())
    if sd == 0:
        out[m] = 0
        return out
    out[m] = np.searchsorted(mean + st * sd, v[m], side="right")
    return out


def class_dict(classes: np.ndarray, grid: Grid) -> dict[str, int]:
    """Sparse ``{cell_id: class}`` of the cells inside the area above class 0 (classes from :func:`sd_classes`).

    What a map snapshot carries for each of its layers: the map service classes every
    layer it publishes, so consumers such as the console read classes, never recompute them.
    """
    rows, cols = np.nonzero(grid.mask & (np.asarray(classes) > 0))
    return {grid.cell_id(r, c): int(classes[r, c]) for r, c in zip(rows, cols)}


def top_cells(values: np.ndarray, grid: Grid, n: int = 10, min_value: float = 0.0) -> list[tuple[str, float]]:
    """The ``n`` highest cells inside the area with value above ``min_value``, as (cell_id, value).

    Ties are broken by row, then column, so the order is deterministic.
    """
    v = np.asarray(values, dtype=float)
    if v.shape != grid.shape:
        raise ValueError(f"values must have the grid's shape {grid.shape}, got {v.shape}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rows, cols = np.nonzero(grid.mask & (v > min_value))
    vals = v[rows, cols]
    order = np.lexsort((cols, rows, -vals))[:n]
    return [(grid.cell_id(rows[i], cols[i]), float(vals[i])) for i in order]
