"""`imminence forecast`: train, apply and evaluate the CNN-LSTM incident forecast.

    imminence forecast train --incidents data/toronto.csv.gz --format toronto-mci \\
        --config configs/toronto.yaml --until 2019-01-01 --out runs/forecast/toronto.pt
    imminence forecast predict --checkpoint runs/forecast/toronto.pt --incidents data/toronto.csv.gz \\
        --format toronto-mci --config configs/toronto.yaml --out runs/forecast/next_day.json
    imminence forecast evaluate --incidents data/toronto.csv.gz --format toronto-mci \\
        --config configs/toronto.yaml --test-from 2019-01-01 --cell-size 450 --crime-type all --json

``evaluate`` trains on the days before ``--test-from`` and scores every day from
it with the registered forecasters of ``--models`` (the first is the model
under test), by default the model and three baselines (yesterday's map, historical average,
KDE of the last 30 days): AUROC, average precision, hit rate and PAI at 1, 5
and 10% of the city's cells, and Brier, over the cells inside the city.
``evaluate --rolling 12`` refits every forecaster at the 12 latest monthly
origins instead and prints every metric (also PEI, the Poisson log score, AUROC
over the cells that saw crime, shares 0.5 to 10%) pooled over the months with
bootstrap 95% intervals, and each model minus the best baseline (paired).
Without ``--config`` the Toronto study area (configs/toronto.yaml) is used.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from imminence.commands.incidents import add_format_args, grid_from_args, read_all
from imminence.errors import CommandError
from mapping.forecast import backtest, registry
from mapping.forecast.data import daily_maps
from mapping.forecast.output import DayForecast, write
from mapping.forecast.train import ForecastError, Forecaster, TrainConfig, fit
from geo.grid import GridError
from mapping.incidents import IncidentError

log = logging.getLogger(__name__)
TORONTO = Path(__file__).resolve().parents[2] / "configs" / "toronto.yaml"
METRICS = ("auroc", "ap", "hit@1%", "hit@5%", "hit@10%", "pai@1%", "pai@5%", "pai@10%", "brier")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--incidents", action="append", metavar="CSV",
                   help="incident file (repeat for several; default: forecast.incidents of --config)")
    add_format_args(p)
    p.add_argument("--config", default=str(TORONTO), help="configuration with the grid (default configs/toronto.yaml)")
    p.add_argument("--cell-size", type=float, help="cell edge in metres (overrides the config's)")


def _train_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    # defaults None: the config's forecast section decides, then TrainConfig's defaults
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs (default forecast.epochs, {d.epochs})")
    p.add_argument("--max-steps", type=int, default=None,
                   help=f"steps (random blocks of {d.block} days) per epoch, 0 = every block "
                        f"(default forecast.max_steps, {d.max_steps})")
    p.add_argument("--width", type=float, default=None,
                   help=f"CNN channel multiplier (1.0 = design; default forecast.width, {d.width})")
    p.add_argument("--history", type=int, default=None, help=f"T, days per window (default forecast.history_days, {d.history})")
    p.add_argument("--warmup-days", type=int, default=d.warmup_days, help="days of history before the first training target")
    p.add_argument("--val-days", type=int, default=d.val_days, help="last training days held out to pick the epoch")
    p.add_argument("--seed", type=int, default=None, help="random seed (default forecast.seed)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads while training (default: torch's)")
    p.add_argument("--train-from", help="first day of the data to use (default: skips stray old reports)")
    p.add_argument("--curve", help="training curve PNG (default next to the output)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("forecast", help="CNN-LSTM incident forecast: train, predict, evaluate",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="forecast_command", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train on the days before --until and save a checkpoint")
    _common(t)
    _train_args(t)
    t.add_argument("--until", help="first day NOT used for training (default: the day after the data)")
    t.add_argument("--out", required=True, help="checkpoint path (.pt)")
    t.set_defaults(func=train)
    pr = sub.add_parser("predict", help="per-cell forecast for one day (default: the day after the data)")
    _common(pr)
    pr.add_argument("--checkpoint", help="trained checkpoint (default forecast.checkpoint)")
    pr.add_argument("--date", help="day to forecast, YYYY-MM-DD (default: the day after the data)")
    pr.add_argument("--out", help="forecast file (.json or .npz) for the map service (default forecast.predictions)")
    pr.set_defaults(func=predict)
    e = sub.add_parser("evaluate", help="train before --test-from, score from it against three baselines")
    _common(e)
    _train_args(e)
    e.add_argument("--test-from", help="first test day, YYYY-MM-DD (needed unless --rolling)")
    e.add_argument("--rolling", type=int, metavar="N", help="rolling-origin backtest instead: refit at the N latest "
                   "monthly origins, score --horizon days from each, pool with bootstrap 95%% intervals")
    e.add_argument("--horizon", type=int, default=30, help="days scored from each rolling origin (default 30)")
    e.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of the days (default 1000)")
    e.add_argument("--test-to", help="first day after the test period (default: end of the data)")
    e.add_argument("--crime-type", action="append", help="type to report, or 'all' (all crime); repeatable; "
                                                         "default: every type and all")
    e.add_argument("--kde-radius", type=float, default=None, help="search radius of the KDE baseline in metres "
                                                                   "(default forecast.kde_radius_m, 1000)")
    e.add_argument("--checkpoint", help="score this checkpoint instead of training one")
    e.add_argument("--models", type=_model_list, default=None, metavar="NAME,NAME,...",
                   help="registered forecasters to score, the model under test first (default: cnn_lstm and the "
                        "three baselines); e.g. gradient_boosting,historical_average,count_365d,"
                        "prospective_hotspot,kde_30d (an unknown name lists the registered ones)")
    e.add_argument("--json", action="store_true", help="print the scores as JSON")
    e.set_defaults(func=evaluate)


def _model_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry.names()]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown forecaster(s) {unknown or text!r}; known: "
                                         + ", ".join(registry.names()))
    return names


def _settings(args: argparse.Namespace) -> None:
    """Fill unset options from the config's forecast section (paths relative to the config file)."""
    from imminence.config import load_config

    cfg, _ = load_config(args.config)
    fc = cfg.forecast
    base = Path(args.config).parent

    def rel(p: str) -> str:
        return p if Path(p).is_absolute() else str(base / p)

    if not args.incidents:
        if not fc.incidents:
            raise ForecastError(f"no incident files: give --incidents CSV or forecast.incidents in {args.config}")
        args.incidents = [rel(p) for p in fc.incidents]
    for name, value in (("epochs", fc.epochs), ("max_steps", fc.max_steps), ("width", fc.width),
                        ("history", fc.history_days), ("seed", fc.seed), ("kde_radius", fc.kde_radius_m)):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, value)
    if hasattr(args, "checkpoint") and args.checkpoint is None and fc.checkpoint and args.func is predict:
        args.checkpoint = rel(fc.checkpoint)
    if getattr(args, "out", "x") is None and args.func is predict:
        if not fc.predictions:
            raise ForecastError(f"give --out FILE or forecast.predictions in {args.config}")
        args.out = rel(fc.predictions)
    if args.func is predict and not args.checkpoint:
        raise ForecastError(f"give --checkpoint FILE or forecast.checkpoint in {args.config}")


def _cfg(args: argparse.Namespace) -> TrainConfig:
    for name in ("epochs", "history", "warmup_days"):
        if getattr(args, name) < 1:
            raise ForecastError(f"--{name.replace('_', '-')} must be >= 1")
    return TrainConfig(epochs=args.epochs, max_steps=args.max_steps or None, width=args.width, history=args.history,
                       warmup_days=args.warmup_days, val_days=args.val_days, seed=args.seed, device=args.device,
                       threads=args.threads)


def train(args: argparse.Namespace) -> int:
    try:
        _settings(args)
        cfg = _cfg(args)
        grid = grid_from_args(args)
        inc, _ = read_all(args.incidents, args)
        start = pd.Timestamp(args.train_from) if args.train_from else backtest.default_start(inc)
        until = pd.Timestamp(args.until) if args.until else None
        maps = daily_maps(inc, grid, start=start, end=until, premises_before=until or inc.df["time"].max())
        curve = args.curve or str(Path(args.out).with_suffix(".curve.png"))
        fc = fit(maps, len(maps.days), cfg, progress=sys.stderr.isatty(), curve_png=curve)
        fc.save(args.out)
    except (ForecastError, IncidentError, GridError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    ep = fc.history_log.get("epoch_s", [])
    print(f"trained on {maps.days[0]} .. {maps.days[-1]} ({len(maps.days)} days, {int(maps.mask.sum())} cells, "
          f"grid {grid.grid_id}); best epoch {fc.history_log['best_epoch'][0]}, "
          f"{np.mean(ep) if ep else 0:.1f} s/epoch -> {args.out} (curve {curve})")
    return 0


def predict(args: argparse.Namespace) -> int:
    try:
        _settings(args)
        grid = grid_from_args(args)
        fc = Forecaster.load(args.checkpoint, grid_id=grid.grid_id)
        inc, _ = read_all(args.incidents, args)
        start = backtest.default_start(inc)
        maps = daily_maps(inc, grid, start=start, premises_before=fc.trained_until)
        day = len(maps.days) if not args.date else int(
            np.searchsorted(maps.days, np.datetime64(args.date, "D")))
        if args.date and not (fc.train_config.history <= day <= len(maps.days)):
            raise ForecastError(f"--date {args.date} is outside the data ({maps.days[0]} .. {maps.days[-1] + 1})")
        date = str(maps.days[day]) if day < len(maps.days) else str(maps.days[-1] + 1)
        probs, _ = fc.predict(maps, np.array([day]))
        out = DayForecast(grid.grid_id, date, fc.targets, probs[0], version=f"cnn-lstm:{fc.trained_until}")
        write(out, grid, args.out)
    except (ForecastError, IncidentError, GridError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"forecast for {date} ({len(fc.targets)} targets, grid {grid.grid_id}) -> {args.out}")
    for i, t in enumerate(fc.targets):
        top = np.argsort(-probs[0, i][grid.mask])[:3]
        ids = np.array(grid.cell_ids())[top]
        print(f"  {t}: top cells " + ", ".join(f"{c} {probs[0, i][grid.mask][j]:.3f}" for c, j in zip(ids, top)))
    return 0


def format_table(res: dict) -> str:
    lines = [f"test {res['test_from']} .. {res['test_to']} ({res['test_days']} days), {res['cells']} cells of "
             f"{res['cell_size_m']:g} m inside the city, grid {res['grid_id']}; trained on {res['train_days']} days "
             f"in {res['train_seconds']:.0f} s"]
    head = f"{'target':<14}{'method':<20}" + "".join(f"{m:>9}" for m in METRICS)
    for target, methods in res["scores"].items():
        lines += ["", head]
        for name, sc in methods.items():
            lines.append(f"{target:<14}{name:<20}" + "".join(f"{sc[m]:>9.4f}" for m in METRICS))
    return "\n".join(lines)


ROLLING_METRICS = ("auroc", "auroc_active", "ap", "hit@0.5%", "hit@1%", "hit@2%", "hit@5%", "hit@10%", "pai@0.5%",
                   "pai@1%", "pai@2%", "pai@5%", "pai@10%", "pei@0.5%", "pei@1%", "pei@2%", "pei@5%", "pei@10%",
                   "brier", "logscore")


def format_rolling(res: dict) -> str:
    """Per target: each metric's pooled value [95 % interval] per forecaster, then each model minus the best baseline."""
    models = res["models"]
    lines = [f"rolling origins {res['origins'][0]} .. {res['origins'][-1]} ({len(res['origins'])} origins, "
             f"{res['test_days']} days scored, up to {res['horizon_days']} per origin), {res['cells']} cells of "
             f"{res['cell_size_m']:g} m, grid {res['grid_id']}; {res['boot']} bootstrap resamples of the days; "
             f"baselines: {', '.join(res['baselines']) or 'none'}"]
    w = 26
    for target, by_model in res["scores"].items():
        lines += ["", f"{target:<14}" + "".join(f"{m:>{w}}" for m in models)]
        for k in ROLLING_METRICS:
            if k not in by_model[models[0]]:
                continue
            cells = [by_model[m][k] for m in models]
            lines.append(f"{k:<14}" + "".join(f"{_ci(c['value'], c['lo'], c['hi']):>{w}}" for c in cells))
        for m, by_metric in res["paired"].get(target, {}).items():
            lines += ["", f"{target}: {m} minus the best baseline per metric (paired bootstrap 95% interval; "
                      f"* = interval excludes 0; brier and logscore: lower is better)"]
            for k in ROLLING_METRICS:
                if k in by_metric:
                    d = by_metric[k]
                    sig = "" if d["lo"] <= 0 <= d["hi"] else "  *"
                    lines.append(f"  {k:<14}{d['baseline']:<22}{_ci(d['diff'], d['lo'], d['hi'], '+'):>{w}}{sig}")
    lines += ["", "fit s/origin, predict s/day: " + ", ".join(
        f"{m} {t['fit_s']:.2f}, {t['predict_s_per_day']:.4f}" for m, t in res["timing"].items())]
    return "\n".join(lines)


def _ci(v: float, lo: float, hi: float, sign: str = "") -> str:
    if abs(v) >= 10:
        return f"{v:{sign}.2f} [{lo:.2f}, {hi:.2f}]"
    return f"{v:{sign}.4f} [{lo:.4f}, {hi:.4f}]"


def evaluate(args: argparse.Namespace) -> int:
    try:
        _settings(args)
        cfg = _cfg(args)
        grid = grid_from_args(args)
        if not args.rolling and not args.test_from:
            raise ForecastError("give --test-from YYYY-MM-DD, or --rolling N for a rolling-origin backtest")
        inc, _ = read_all(args.incidents, args)
        if args.rolling:
            rres = backtest.rolling(inc, grid, origins=args.rolling, forecasters=args.models,
                                    horizon_days=args.horizon, targets=args.crime_type, cfg=cfg,
                                    train_from=args.train_from, kde_radius=args.kde_radius, boot=args.boot,
                                    progress=sys.stderr.isatty())
            print(json.dumps(rres.as_dict(), indent=1) if args.json else format_rolling(rres.as_dict()))
            return 0
        model = Forecaster.load(args.checkpoint, grid_id=grid.grid_id) if args.checkpoint else None
        res, _ = backtest.run(inc, grid, args.test_from, targets=args.crime_type, cfg=cfg, test_to=args.test_to,
                              train_from=args.train_from, kde_radius=args.kde_radius,
                              progress=sys.stderr.isatty(), curve_png=args.curve, model=model,
                              forecasters=args.models)
    except (ForecastError, IncidentError, GridError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    d = res.as_dict()
    d["beats_every_baseline"] = {t: backtest.beats_all(sc, ("auroc", "ap", "brier")) for t, sc in res.scores.items()}
    print(json.dumps(d, indent=1) if args.json else format_table(d))
    return 0
