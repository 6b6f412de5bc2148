"""Benchmark of the CNN-LSTM incident forecast on the Toronto MCI data (2014-2019, 450 m cells).

Prints (1) seconds per training epoch over 6 years of daily maps on 2 CPU threads
(measured on a few steps and scaled to the steps of a full epoch, for the
design's CNN width 1.0 and the default 0.25), (2) the time to forecast one day,
and (3) forecast quality on 2019 (trained on the days before 2019-01-01) per
crime type and for all crime against the three baselines: AUROC, average
precision, hit rate and PAI at 1/5/10% of the city's cells, Brier.  All
scores over the cells inside the city (configs/toronto_area.geojson).

    .venv/bin/python bench/bench_forecast.py [--epochs 4] [--max-steps 15] [--width 0.25] [--json out.json]
    .venv/bin/python bench/bench_forecast.py --timing-only     # speed figures only (about 2 minutes)
    .venv/bin/python bench/bench_forecast.py --shift-only      # half-cell grid shift of the classical zoo
    .venv/bin/python bench/bench_forecast.py --rolling 12      # rolling origins, classical zoo, all crime

Reads /work/shared/data/toronto_mci_to2019.csv.gz (or --incidents); runtime is
bounded by --epochs x --max-steps training steps (about 10 s each on 2 busy cores).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mapping.forecast import backtest  # noqa: E402
from mapping.forecast.data import CellFeatures  # noqa: E402
from mapping.forecast.model import CNNLSTMForecaster, ModelConfig  # noqa: E402
from mapping.forecast.train import TrainConfig, _loss  # noqa: E402
from geo.grid import Grid, GridConfig  # noqa: E402
from mapping.incidents import load_incidents  # noqa: E402

DATA = Path("/work/shared/data/toronto_mci_to2019.csv.gz")
METRICS = ("auroc", "ap", "hit@1%", "hit@5%", "hit@10%", "pai@1%", "pai@5%", "pai@10%", "brier")


def time_steps(maps, width: float, steps: int, block: int, history: int = 30) -> tuple[float, int]:
    """Mean seconds per training step (block of target days) and the steps of a full epoch."""
    feats = CellFeatures(maps)
    x = torch.from_numpy(np.log1p(maps.counts))
    y = torch.from_numpy(maps.target_counts()[:, :, maps.mask].copy())
    cfg = ModelConfig(in_channels=len(maps.types), rows=maps.mask.shape[0], cols=maps.mask.shape[1],
                      n_features=feats.n_features, n_targets=len(maps.targets), n_cells=int(maps.mask.sum()),
                      history=history, width=width, rate_index=feats.rate_index)
    torch.manual_seed(0)
    model = CNNLSTMForecaster(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = 365
    times = []
    for i in range(steps + 1):
        s = first + i * block
        t0 = time.perf_counter()
        logit, cnt = model(x[s - history:s + block - 1][None], torch.from_numpy(feats.days(np.arange(s, s + block)))[None])
        loss = _loss(logit, cnt, y[s:s + block][None], 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up allocators
            times.append(time.perf_counter() - t0)
    return float(np.mean(times)), int(np.ceil((len(maps.days) - first) / block))


#: every registered forecaster but the CNN-LSTM (too slow to refit 12 times on 2 CPU cores)
CLASSICAL = ("gradient_boosting", "random_forest", "logistic", "sepp", "historical_average", "count_365d",
             "prospective_hotspot", "kde_30d", "yesterday")


def shift_check(inc, grid: Grid, models=CLASSICAL) -> dict:
    """How far each model's 2019 scores (all crime) move when the grid shifts by half a cell (both axes)."""
    half = grid.cell_size / 2
    shifted = Grid(grid.area, grid.cell_size, grid.projection, origin_xy=(grid.x0 - half, grid.y0 - half))
    out = {}
    for name, g in (("origin", grid), ("shifted", shifted)):
        sc = {}
        for m in models:   # one at a time: each is "model" in its run
            res, _ = backtest.run(inc, g, "2019-01-01", targets=["all"], progress=False, forecasters=[m])
            sc[m] = res.scores["all"]["model"]
        out[name] = sc
    return out


def rolling_bench(inc, grid: Grid, n: int, models=CLASSICAL, boot: int = 1000) -> dict:
    """Rolling-origin backtest of ``models`` for all crime, plus each model's fit and one-day predict time."""
    from imminence.commands.forecast import format_rolling
    from mapping.forecast.registry import create

    built = [create(m, grid=grid, targets=["all"]) for m in models]
    t = time.perf_counter()
    res = backtest.rolling(inc, grid, origins=n, forecasters=built, targets=["all"], boot=boot)
    wall = time.perf_counter() - t
    d = res.as_dict()
    print(f"\n== rolling origins, all crime ({wall:.0f} s in all)")
    print(format_rolling(d))
    maps, _, _ = backtest.prepare(inc, grid, res.origins[-1])
    one = {}
    for fc in built:   # each is fitted at the last origin: time one day's forecast (the day after the data)
        tp = time.perf_counter()
        fc.predict(maps, np.array([len(maps.days)]), ["all"])
        one[fc.name] = time.perf_counter() - tp
    print(f"\n{'model':<22}{'fit s/origin':>14}{'predict 1 day s':>17}")
    for m in models:
        print(f"{m:<22}{d['timing'][m]['fit_s']:>14.2f}{one[m]:>17.3f}")
    d["predict_one_day_s"] = one
    d["wall_s"] = wall
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", default=str(DATA))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=15, help="steps (48-day blocks) per epoch in the quality run")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--timing-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--shift-only", action="store_true", help="only the half-cell grid shift check (baselines, fast)")
    ap.add_argument("--timing-only", action="store_true", help="only the training-speed and one-day prediction timing")
    ap.add_argument("--rolling", type=int, default=0, metavar="N",
                    help="only the rolling-origin backtest at N monthly origins of the classical zoo (all crime)")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of the rolling backtest")
    ap.add_argument("--models", default=",".join(CLASSICAL),
                    help="forecasters of --rolling and --shift-only (default: every one but the CNN-LSTM)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    grid = Grid.from_config(GridConfig(area=str(ROOT / "configs" / "toronto_area.geojson"), cell_size_m=450))
    inc, rep = load_incidents(args.incidents, "toronto-mci")
    print(f"{rep.rows_loaded:,} incidents loaded ({sum(rep.rejected.values()):,} rejected: "
          f"{ {k: v for k, v in rep.rejected.items() if v} }); grid {grid.rows}x{grid.cols}, "
          f"{int(grid.mask.sum())} cells of 450 m inside the city; torch threads {torch.get_num_threads()}")
    out: dict = {"settings": vars(args)}
    if args.rolling:
        out["rolling"] = rolling_bench(inc, grid, args.rolling, models=args.models.split(","), boot=args.boot)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        return 0
    if not args.timing_only:
        _shift(inc, grid, out, args)
        if args.shift_only:
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=1, default=str))
            return 0
    cfg = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, width=args.width)
    maps, t0, t1 = backtest.prepare(inc, grid, "2019-01-01")
    if not args.skip_timing:
        _timing(maps, args, cfg, out)
    if not args.timing_only:
        _quality(inc, grid, maps, cfg, args, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


def _shift(inc, grid: Grid, out: dict, args) -> None:
    print("\n== grid shifted by half a cell (225 m east and north): all crime, 2019, every model but the CNN-LSTM")
    sc = shift_check(inc, grid, args.models.split(","))
    out["shift"] = sc
    print(f"{'method':<20}{'grid':<9}" + "".join(f"{m:>9}" for m in METRICS[:-1]))
    for b in sc["origin"]:
        for name in ("origin", "shifted"):
            print(f"{b:<20}{name:<9}" + "".join(f"{sc[name][b][m]:>9.4f}" for m in METRICS[:-1]))


def _timing(maps, args, cfg: TrainConfig, out: dict) -> None:
    rows, cols = maps.mask.shape
    print(f"\n== training speed: 6 years of daily maps ({len(maps.days)} days x {len(maps.types)} types x "
          f"{rows}x{cols}), blocks of {cfg.block} target days; s/epoch = s/step x steps of a full epoch")
    print(f"{'CNN width':>10} {'s/step':>8} {'steps/epoch':>12} {'s/epoch':>9}")
    out["timing"] = {}
    for w in sorted({1.0, args.width}, reverse=True):
        s, n = time_steps(maps, w, args.timing_steps, cfg.block)
        out["timing"][str(w)] = {"s_per_step": s, "steps_per_epoch": n, "s_per_epoch": s * n}
        print(f"{w:>10g} {s:>8.2f} {n:>12d} {s * n:>9.0f}")
    # one day's forecast (the day after the data) with an untrained model of the run's width
    from mapping.forecast.train import fit  # noqa: PLC0415
    tiny = fit(maps, maps.day_index("2019-01-01"), TrainConfig(epochs=1, max_steps=1, width=cfg.width),
               progress=False)
    tp = time.perf_counter()
    tiny.predict(maps, np.array([len(maps.days)]))
    out["predict_one_day_s"] = time.perf_counter() - tp
    print(f"prediction of one day (T=30 input days, every target, width {cfg.width}): {out['predict_one_day_s']:.2f} s")


def _quality(inc, grid: Grid, maps, cfg: TrainConfig, args, out: dict) -> None:
    t_start = time.perf_counter()
    res, fc = backtest.run(inc, grid, "2019-01-01", cfg=cfg, progress=False,
                           curve_png=ROOT / "runs" / "bench_forecast_curve.png")
    wall = time.perf_counter() - t_start
    print(f"\n== forecast quality, test {res.test_from} .. {res.test_to} ({res.test_days} days), trained on "
          f"{res.train_days} days: {cfg.epochs} epochs x {cfg.max_steps} steps, width {cfg.width}, "
          f"best epoch {res.best_epoch}, training {res.train_seconds:.0f} s, whole run {wall:.0f} s")
    print(f"prediction: {res.predict_seconds_per_day:.3f} s/day over the test year in 48-day batches")
    head = f"{'target':<14}{'method':<20}" + "".join(f"{m:>9}" for m in METRICS)
    for target, methods in res.scores.items():
        print("\n" + head)
        for name, sc in methods.items():
            print(f"{target:<14}{name:<20}" + "".join(
                f"{sc[m]:>9.5f}" if m == "brier" else f"{sc[m]:>9.4f}" for m in METRICS))
        wins = backtest.beats_all(methods, METRICS)
        print(f"{'':<14}{'model beats all 3':<20}" + "".join(f"{('yes' if wins[m] else 'no'):>9}" for m in METRICS))
    out["result"] = res.as_dict()


if __name__ == "__main__":
    sys.exit(main())
