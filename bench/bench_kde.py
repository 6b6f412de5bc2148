"""Benchmark the KDE mapper (issue 5, item 4): FFT convolution against the direct sum.

100,000 weighted points (clusters over a uniform background) on a 1000 x 1000
raster of 100 m cells with a 1 km quartic kernel.  For nearest and linear
binning (and a 3x finer linear lattice) it prints the FFT time, the largest
difference from the direct sum over the binned points (floating-point error:
the convolution is exact) and from the direct sum over the raw points (the
binning error), both relative to the peak, and the direct-sum times
(scipy cKDTree neighbour pairs).

Run: .venv/bin/python bench/bench_kde.py [--points N] [--size CELLS] [--workers W] [--skip-binned-direct]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mapping.kde import Raster, binned_points, kde, kde_direct  # noqa: E402


def uniform_points(rng, n: int, extent: float):
    """Points spread evenly: the peak comes from a few points, so snapping them shows most."""
    return rng.uniform(0, extent, n), rng.uniform(0, extent, n), rng.uniform(0, 10, size=n)


def points(rng, n: int, extent: float):
    """Hot-spot clusters (60%) over a uniform background (40%), weights in [0, 10)."""
    n_clu = int(0.6 * n)
    centres = rng.uniform(0.1 * extent, 0.9 * extent, size=(40, 2))
    pick = rng.integers(len(centres), size=n_clu)
    clu = centres[pick] + rng.normal(scale=rng.uniform(300, 3000, size=len(centres))[pick, None], size=(n_clu, 2))
    bg = rng.uniform(0, extent, size=(n - n_clu, 2))
    xy = np.vstack([clu, bg])
    return xy[:, 0], xy[:, 1], rng.uniform(0, 10, size=n)


def timed(fn, repeat: int = 1):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1000, help="raster rows = cols")
    ap.add_argument("--cell", type=float, default=100.0)
    ap.add_argument("--radius", type=float, default=1000.0)
    ap.add_argument("--workers", type=int, default=2, help="FFT threads")
    ap.add_argument("--png", default="out/bench/kde_binning_error.png",
                    help="figure of the surface and the binning error ('' for none)")
    ap.add_argument("--skip-binned-direct", action="store_true",
                    help="skip the direct sums over binned points (the slow exactness check)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    raster = Raster(0.0, 0.0, args.cell, args.size, args.size)
    common = dict(raster=raster, radius=args.radius, kernel="quartic")
    for name, gen in (("clustered", points), ("uniform", uniform_points)):
        x, y, w = gen(rng, args.points, args.size * args.cell)
        bench(name, x, y, w, raster, common, args, check_binned=name == "clustered")
    return 0


def save_figure(path: str, name: str, raw: np.ndarray, surfaces: dict[str, np.ndarray]) -> None:
    """The raw-point surface and |FFT - raw| / peak per binning, on a 200 x 200 corner."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    crop = (slice(0, 200), slice(0, 200))
    peak = raw.max()
    fig, axes = plt.subplots(1, 1 + len(surfaces), figsize=(4 * (1 + len(surfaces)), 4), constrained_layout=True)
    im = axes[0].imshow(raw[crop], origin="lower", cmap="magma")
    axes[0].set_title(f"{name}: direct sum (per km²)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    vmax = max(np.abs(s[crop] - raw[crop]).max() for s in surfaces.values()) / peak
    for ax, (label, S) in zip(axes[1:], surfaces.items()):
        im = ax.imshow(np.abs(S[crop] - raw[crop]) / peak, origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"|FFT - direct| / peak, {label}")
    fig.colorbar(im, ax=axes[1:], shrink=0.8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"figure: {path}", file=sys.stderr)


def bench(name, x, y, w, raster, common, args, check_binned: bool) -> None:
    print(f"{name}: direct sum over {args.points:,} raw points ...", file=sys.stderr)
    t_raw, raw = timed(lambda: kde_direct(x, y, w, **common))
    peak = raw.max()
    rows, surfaces = [], {}
    for binning, s in (("nearest", 1), ("linear", 1), ("nearest", 3), ("linear", 3)):
        t_fft, F = timed(lambda: kde(x, y, w, binning=binning, oversample=s, workers=args.workers, **common), 3)
        exact, t_bd, nodes = float("nan"), float("nan"), 0
        if check_binned and not args.skip_binned_direct and s == 1:
            bx, by, bw = binned_points(x, y, w, raster=raster, radius=args.radius, binning=binning, oversample=s)
            nodes = bx.size
            print(f"direct sum over {nodes:,} {binning}-binned nodes ...", file=sys.stderr)
            t_bd, D = timed(lambda: kde_direct(bx, by, bw, **common))
            exact = np.abs(F - D).max() / D.max()
        surfaces[f"{binning} x{s}"] = F
        rows.append((binning, s, t_fft, exact, np.abs(F - raw).max() / peak,
                     np.abs(F - raw).mean() / peak, t_bd, nodes))

    print(f"\nKDE: {args.points:,} {name} weighted points, {args.size}x{args.size} raster of {args.cell:g} m cells, "
          f"{args.radius:g} m quartic kernel, FFT workers {args.workers}")
    print(f"direct sum over the raw points (cKDTree): {t_raw:.2f} s")
    print(f"{'binning':8s} {'oversample':>10s} {'FFT s':>7s} {'|FFT-direct(binned)|/peak':>26s} "
          f"{'max |FFT-direct(raw)|/peak':>27s} {'mean':>9s} {'direct(binned) s':>17s}")
    for b, s, t, ex, mx, mn, tbd, nodes in rows:
        print(f"{b:8s} {s:10d} {t:7.3f} {ex:26.2e} {mx:27.2%} {mn:9.2e} {tbd:17.2f}")
    if args.png and name == "uniform":
        save_figure(args.png, name, raw, surfaces)


if __name__ == "__main__":
    raise SystemExit(main())
