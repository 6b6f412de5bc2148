"""Train-before / test-from evaluation of the forecast against the three baselines.

One place for the no-leakage rule of the whole comparison: the model is fitted
on days before ``test_from`` only; every test day's forecast (model and
baselines) reads days before that day only; baseline probabilities for the
Brier score are calibrated on the last training year.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from mapping.forecast import baselines
from mapping.forecast.data import DailyMaps, daily_maps
from mapping.forecast.evaluate import score_all
from mapping.forecast.train import ForecastError, Forecaster, TrainConfig, fit

log = logging.getLogger(__name__)


@dataclass
class BacktestResult:
    test_from: str
    test_to: str
    grid_id: str
    cells: int
    cell_size_m: float
    train_days: int
    test_days: int
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # target -> method -> metric
    train_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    predict_seconds_per_day: float = 0.0
    best_epoch: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def default_start(incidents) -> pd.Timestamp:
    """First day of the year holding the 2nd percentile of incident times (skips stray old reports)."""
    t = incidents.df["time"]
    q = t.sort_values().iloc[int(0.02 * (len(t) - 1))]
    return pd.Timestamp(year=q.year, month=1, day=1)


def prepare(incidents, grid, test_from: str, *, test_to: Optional[str] = None,
            train_from: Optional[str] = None) -> tuple[DailyMaps, int, int]:
    """Daily maps from ``train_from`` to ``test_to`` and the index range of the test days."""
    start = pd.Timestamp(train_from) if train_from else default_start(incidents)
    last = incidents.df["time"].max().tz_localize(None).normalize() + pd.Timedelta(days=1)
    end = pd.Timestamp(test_to) if test_to else last
    tf = pd.Timestamp(test_from)
    if not (start < tf < end) or tf >= last:
        raise ForecastError(f"--test-from {test_from} is outside the data ({start.date()} .. "
                            f"{(last - pd.Timedelta(days=1)).date()})")
    maps = daily_maps(incidents, grid, start=start, end=end, premises_before=tf)
    return maps, maps.day_index(tf.date()), len(maps.days)


def run(incidents, grid, test_from: str, *, targets: Sequence[str] | None = None, cfg: TrainConfig = TrainConfig(),
        test_to: Optional[str] = None, train_from: Optional[str] = None, kde_radius: float = 1000.0,
        progress: bool = True, curve_png=None, model: Forecaster | None = None) -> tuple[BacktestResult, Forecaster]:
    """Fit on days before ``test_from`` (unless ``model`` is given), forecast every test day, score all methods."""
    maps, t0_idx, t1_idx = prepare(incidents, grid, test_from, test_to=test_to, train_from=train_from)
    need = max(cfg.warmup_days, cfg.history) + cfg.val_days + cfg.block
    if t0_idx < need:
        raise ForecastError(f"--test-from {test_from} leaves {t0_idx} training days; need at least {need}")
    wanted = list(targets) if targets else list(maps.targets)
    unknown = [t for t in wanted if t not in maps.targets]
    if unknown:
        raise ForecastError(f"unknown crime type(s) {unknown}; the data has {list(maps.targets)}")
    t_start = time.perf_counter()
    fc = model if model is not None else fit(maps, t0_idx, cfg, progress=progress, curve_png=curve_png)
    train_s = time.perf_counter() - t_start
    test_days = np.arange(t0_idx, t1_idx)
    t_p = time.perf_counter()
    probs, _ = fc.predict(maps, test_days, progress=progress)
    pred_s = (time.perf_counter() - t_p) / len(test_days)
    tc = maps.target_counts()
    cal_days = np.arange(max(1, t0_idx - 365), t0_idx)
    res = BacktestResult(str(maps.days[t0_idx]), str(maps.days[t1_idx - 1]), maps.grid_id, int(maps.mask.sum()),
                         grid.cell_size, int(t0_idx), len(test_days), train_seconds=train_s,
                         epoch_seconds=list(fc.history_log.get("epoch_s", [])), predict_seconds_per_day=pred_s,
                         best_epoch=int(fc.history_log.get("best_epoch", [0])[0]))
    for name in wanted:
        k = maps.targets.index(name)
        obs = tc[test_days, k]
        p = probs[:, k]
        res.scores[name] = {"model": score_all(p, obs, maps.mask, probs=p)}
        for b in baselines.BASELINES:
            s = baselines.predict(b, tc, test_days, k, grid, kde_radius=kde_radius)
            cal = baselines.calibrate(baselines.predict(b, tc, cal_days, k, grid, kde_radius=kde_radius),
                                      tc[cal_days, k], maps.mask)
            res.scores[name][b] = score_all(s, obs, maps.mask, probs=cal(s))
        log.info("%s: model AUROC %.4f AP %.4f | HA AUROC %.4f AP %.4f", name,
                 res.scores[name]["model"]["auroc"], res.scores[name]["model"]["ap"],
                 res.scores[name]["historical_average"]["auroc"], res.scores[name]["historical_average"]["ap"])
    return res, fc


def beats_all(scores: dict[str, dict[str, float]], metrics: Sequence[str] = ("auroc", "ap")) -> dict[str, bool]:
    """Per metric: does the model score above every baseline (Brier: below)?"""
    out = {}
    for m in metrics:
        mv = scores["model"][m]
        others = [scores[b][m] for b in baselines.BASELINES]
        out[m] = all(mv < o for o in others) if m == "brier" else all(mv > o for o in others)
    return out
