"""KDE mapper: FFT against the direct sum, kernels, classes, live surface from cells, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from geo.grid import Grid
from mapping.kde import (Raster, binned_points, kde, kde_direct, kernel_stencil, kernel_value, sd_classes,
                         surface_from_cells, top_cells)

RASTER = Raster(1000.0, -500.0, 100.0, 40, 50)


def scattered(n=1500, seed=0):
    """Points over the raster and up to 600 m beyond it (those still count near the edges)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(RASTER.x0 - 600, RASTER.x0 + 5000 + 600, n)
    y = rng.uniform(RASTER.y0 - 600, RASTER.y0 + 4000 + 600, n)
    return x, y, rng.uniform(0, 5, n)


# -- exactness ---------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
@pytest.mark.parametrize("binning,oversample", [("nearest", 1), ("linear", 1), ("linear", 3), ("nearest", 3)])
def test_fft_equals_direct_sum_over_binned_points(kernel, binning, oversample):
    x, y, w = scattered()
    F = kde(x, y, w, raster=RASTER, radius=750.0, kernel=kernel, binning=binning, oversample=oversample)
    bx, by, bw = binned_points(x, y, w, raster=RASTER, radius=750.0, binning=binning, oversample=oversample)
    D = kde_direct(bx, by, bw, raster=RASTER, radius=750.0, kernel=kernel)
    assert D.max() > 0
    np.testing.assert_allclose(F, D, rtol=1e-9, atol=1e-12 * D.max())


def test_binning_shrinks_distance_from_raw_point_sum():
    x, y, w = scattered(800, seed=1)
    raw = kde_direct(x, y, w, raster=RASTER, radius=600.0)

    def err(binning, s):
        return np.abs(kde(x, y, w, raster=RASTER, radius=600.0, binning=binning, oversample=s) - raw).mean()

    assert err("linear", 1) < err("nearest", 1)
    assert err("linear", 3) < err("linear", 1) / 3
    assert err("nearest", 3) < err("nearest", 1)


def test_linear_binning_keeps_weight_and_centroid():
    rng = np.random.default_rng(2)
    x = rng.uniform(2000, 4000, 50)
    y = rng.uniform(500, 2500, 50)
    w = rng.uniform(0.1, 3, 50)
    bx, by, bw = binned_points(x, y, w, raster=RASTER, radius=500.0, binning="linear")
    assert bw.sum() == pytest.approx(w.sum())
    assert (bx * bw).sum() / bw.sum() == pytest.approx((x * w).sum() / w.sum())
    assert (by * bw).sum() / bw.sum() == pytest.approx((y * w).sum() / w.sum())


def test_point_far_outside_is_dropped_and_point_near_edge_counts():
    # 2 km west of the raster: beyond a 1 km radius from every centre.
    assert not kde([RASTER.x0 - 2000], [0.0], raster=RASTER, radius=1000.0).any()
    near = kde([RASTER.x0 - 300], [RASTER.y0 + 1050], raster=RASTER, radius=1000.0)
    assert near[10, 0] > 0 and near[10, 0] > near[10, 5]


# -- kernels --------------------------------------------------------------------------------
def test_quartic_kernel_values():
    r = 1000.0
    assert kernel_value(0.0, r) == pytest.approx(3 / (math.pi * r * r))
    assert kernel_value(500.0, r) == pytest.approx(3 / (math.pi * r * r) * 0.75 ** 2)
    assert kernel_value([1000.0, 1500.0], r).tolist() == [0.0, 0.0]
    g = kernel_value([0.0, 999.0, 1000.0, 2000.0], r, "gaussian")
    assert g[0] > g[1] > 0 and g[2] == 0 and g[3] == 0


@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
def test_kernel_integrates_to_one(kernel):
    K = kernel_stencil(1000.0, 50.0, kernel)
    assert K.sum() * 50.0 ** 2 == pytest.approx(1.0, rel=2e-3)
    assert K.shape == (41, 41) and np.allclose(K, K.T) and np.allclose(K, K[::-1])


@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
def test_mass_is_conserved_away_from_edges(kernel):
    rng = np.random.default_rng(3)
    x, y = rng.normal(3500, 400, 500), rng.normal(1500, 400, 500)
    x, y = np.clip(x, 2200, 4800), np.clip(y, 300, 2700)  # > radius from every edge
    w = rng.uniform(0, 2, 500)
    S = kde(x, y, w, raster=RASTER, radius=800.0, kernel=kernel)  # per km^2
    cell_km2 = (RASTER.cell / 1000.0) ** 2
    assert S.sum() * cell_km2 == pytest.approx(w.sum(), rel=5e-3)
    S_m2 = kde(x, y, w, raster=RASTER, radius=800.0, kernel=kernel, area_unit="m2")
    np.testing.assert_allclose(S_m2 * 1e6, S)


def test_direct_sum_counts_point_on_a_cell_centre():
    X, Y = RASTER.centres()
    D = kde_direct([X[3, 4]], [Y[3, 4]], [2.0], raster=RASTER, radius=1000.0)
    assert D[3, 4] == pytest.approx(2.0 * 3 / (math.pi * 1000.0 ** 2) * 1e6)


def test_empty_input_gives_zeros():
    for f in (kde, kde_direct):
        S = f([], [], raster=RASTER, radius=500.0)
        assert S.shape == RASTER.shape and not S.any()
    assert not kde([1500.0], [0.0], [0.0], raster=RASTER, radius=500.0).any()


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [0, -5, float("nan"), float("inf"), "1000"])
def test_bad_radius_raises(radius):
    with pytest.raises(ValueError, match="radius"):
        kde([1500.0], [0.0], raster=RASTER, radius=radius)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="kernel"):
        kde([1500.0], [0.0], raster=RASTER, radius=500.0, kernel="epanechnikov")
    with pytest.raises(ValueError, match="binning"):
        kde([1500.0], [0.0], raster=RASTER, radius=500.0, binning="cubic")
    with pytest.raises(ValueError, match="oversample"):
        kde([1500.0], [0.0], raster=RASTER, radius=500.0, oversample=2)
    with pytest.raises(ValueError, match="same length"):
        kde([1500.0, 1.0], [0.0], raster=RASTER, radius=500.0)
    with pytest.raises(ValueError, match=r"y\[1\] is nan"):
        kde([1500.0, 1600.0], [0.0, np.nan], raster=RASTER, radius=500.0)
    with pytest.raises(ValueError, match=r"weights\[0\] = -1.0 is negative"):
        kde([1500.0], [0.0], [-1.0], raster=RASTER, radius=500.0)
    with pytest.raises(ValueError, match="too large"):
        kde([0.0], [0.0], raster=Raster(0, 0, 1.0, 20000, 20000), radius=5.0)
    with pytest.raises(ValueError, match="cell size"):
        Raster(0, 0, 0.0, 10, 10)
    with pytest.raises(ValueError, match="area_unit"):
        kde([1500.0], [0.0], raster=RASTER, radius=500.0, area_unit="ha")


# -- classes and top cells ---------------------------------------------------------------------------
def test_sd_classes_on_known_values():
    v = np.array([0.0] * 9 + [10.0])  # mean 1, sd 3: breaks at 2.5, 5.5, 8.5, 11.5
    assert sd_classes(v).tolist() == [0] * 9 + [3]
    v = np.array([0.0] * 9 + [10.0, 2.6, 5.6, 8.6, 11.6])
    c = sd_classes(v, mask=np.array([True] * 10 + [False] * 4))  # stats over the first ten only
    assert c.tolist() == [0] * 9 + [3] + [-1] * 4
    c = sd_classes(v)
    m, s = v.mean(), v.std()
    for value, cls in zip(v, c):
        z = (value - m) / s
        assert cls == sum(z >= t for t in (0.5, 1.5, 2.5, 3.5))
    assert sd_classes(np.full(5, 2.0)).tolist() == [0] * 5
    nz = sd_classes(np.array([0.0] * 50 + [1.0, 1.0, 1.0, 5.0]), nonzero_only=True)
    assert nz[:50].tolist() == [0] * 50 and nz[-1] == 2  # nonzero mean 2, sd sqrt(3)
    with pytest.raises(ValueError, match="steps"):
        sd_classes(v, steps=(1.0, 0.5))


def _grid():
    # A 2 km x 1.5 km L-shaped area in metres, 100 m cells: some cells outside the area.
    area = Polygon([(0, 0), (2000, 0), (2000, 800), (1000, 800), (1000, 1500), (0, 1500)])
    return Grid(area, 100.0)


def test_top_cells_are_ordered_masked_and_tie_broken():
    g = _grid()
    v = np.zeros(g.shape)
    v[2, 3] = v[1, 5] = 7.0  # tie: row 1 first
    v[0, 0] = 9.0
    v[12, 15] = 99.0  # outside the L
    assert not g.mask[12, 15]
    assert top_cells(v, g, n=3) == [("r0c0", 9.0), ("r1c5", 7.0), ("r2c3", 7.0)]
    assert top_cells(v, g, n=10, min_value=8.0) == [("r0c0", 9.0)]


# -- the live surface from cell values -------------------------------------------------------------
def test_surface_mean_mode_keeps_scale_and_edges():
    g = _grid()
    S = surface_from_cells(np.where(g.mask, 6.0, 0.0), g, radius=500.0)
    np.testing.assert_allclose(S[g.mask], 6.0)
    assert not S[~g.mask].any()


def test_surface_density_mode_equals_direct_sum_at_cell_centres():
    g = _grid()
    cells = {"r2c3": 8.0, "r10c4": 3.0, "r5c17": 5.5}
    S = surface_from_cells(cells, g, radius=700.0, mode="density", kernel="gaussian")
    X, Y = g.cell_centres()
    pts = [g.parse_cell_id(c) for c in cells]
    D = kde_direct([X[r, c] for r, c in pts], [Y[r, c] for r, c in pts], list(cells.values()),
                   raster=g, radius=700.0, kernel="gaussian")
    D[~g.mask] = 0
    np.testing.assert_allclose(S, D, rtol=1e-9, atol=1e-12 * D.max())
    # mean mode: the same sum over the sum of the kernel over the cells inside the area
    M = surface_from_cells(cells, g, radius=700.0, kernel="gaussian")
    den = kde_direct(X[g.mask], Y[g.mask], raster=g, radius=700.0, kernel="gaussian")
    np.testing.assert_allclose(M[g.mask], D[g.mask] / den[g.mask], rtol=1e-9, atol=1e-12)
    assert 0 < M.max() <= 8.0


def test_surface_bad_and_empty_input():
    g = _grid()
    assert not surface_from_cells({}, g, radius=500.0).any()
    with pytest.raises(ValueError, match="not in the grid.*r12c15"):
        surface_from_cells({"r12c15": 1.0}, g, radius=500.0)  # outside the area
    with pytest.raises(ValueError, match="not in the grid"):
        surface_from_cells({"nonsense": 1.0}, g, radius=500.0)
    with pytest.raises(ValueError, match=r"r1c1 is nan"):
        surface_from_cells({"r1c1": float("nan")}, g, radius=500.0)
    with pytest.raises(ValueError, match="shape"):
        surface_from_cells(np.zeros((3, 3)), g, radius=500.0)
    with pytest.raises(ValueError, match="mode"):
        surface_from_cells({"r1c1": 1.0}, g, radius=500.0, mode="max")
    with pytest.raises(ValueError, match="radius"):
        surface_from_cells({"r1c1": 1.0}, g, radius=0)


def test_raster_of_grid_matches_grid_centres():
    g = Grid(box(250, 250, 1250, 850), 100.0)
    r = Raster.of(g)
    for a, b in zip(r.centres(), g.cell_centres()):
        np.testing.assert_allclose(a, b)
    with pytest.raises(TypeError):
        Raster.of("grid")
