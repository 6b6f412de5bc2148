"""Train-before / test-from evaluation of any list of forecasters (by default the CNN-LSTM and three baselines).

One place for the no-leakage rule of the whole comparison: every forecaster is
fitted on days before ``test_from`` only; every test day's forecast reads days
before that day only; baseline probabilities for the Brier score are calibrated
on the last training year.  The first forecaster is the model under test: its
scores are reported as ``"model"``, the others under their registry names.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from mapping.forecast import baselines
from mapping.forecast.data import DailyMaps, daily_maps
from mapping.forecast.evaluate import score_all
from mapping.forecast.registry import GridForecaster, create
from mapping.forecast.train import ForecastError, Forecaster, TrainConfig

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
    model_name: str = "cnn_lstm"

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
        progress: bool = True, curve_png=None, model: Forecaster | None = None,
        forecasters: Sequence[Union[str, GridForecaster]] | None = None) -> tuple[BacktestResult, object]:
    """Fit each forecaster on days before ``test_from``, forecast every test day, score them all.

    ``forecasters``: registry names or built forecasters, the model under test
    first; default ``cnn_lstm`` (trained here, or ``model`` when given) and the
    three baselines.  Returns the result and the fitted model under test (for
    the CNN-LSTM, its trained :class:`~mapping.forecast.train.Forecaster`).
    """
    maps, t0_idx, t1_idx = prepare(incidents, grid, test_from, test_to=test_to, train_from=train_from)
    names = list(forecasters) if forecasters else ["cnn_lstm", *baselines.BASELINES]
    need = max(cfg.warmup_days, cfg.history) + cfg.val_days + cfg.block
    if "cnn_lstm" in names and t0_idx < need:
        raise ForecastError(f"--test-from {test_from} leaves {t0_idx} training days; need at least {need}")
    wanted = list(targets) if targets else list(maps.targets)
    unknown = [t for t in wanted if t not in maps.targets]
    if unknown:
        raise ForecastError(f"unknown crime type(s) {unknown}; the data has {list(maps.targets)}")
    options = dict(grid=grid, cfg=cfg, kde_radius=kde_radius, progress=progress, curve_png=curve_png, model=model,
                   targets=wanted)
    built = [create(f, **options) if isinstance(f, str) else f for f in names]
    test_days = np.arange(t0_idx, t1_idx)
    tc = maps.target_counts()
    res = BacktestResult("", "", maps.grid_id, int(maps.mask.sum()), grid.cell_size, int(t0_idx), len(test_days),
                         model_name=built[0].name)
    res.test_from, res.test_to = str(maps.days[t0_idx]), str(maps.days[t1_idx - 1])
    res.scores = {name: {} for name in wanted}
    for i, fc in enumerate(built):
        t_fit = time.perf_counter()
        fc.fit(maps, t0_idx)
        t_pred = time.perf_counter()
        pred = fc.predict(maps, test_days, wanted)
        if i == 0:  # timings are the model under test's
            res.train_seconds = t_pred - t_fit
            res.predict_seconds_per_day = (time.perf_counter() - t_pred) / len(test_days)
            hist = getattr(fc, "history_log", {})
            res.epoch_seconds = list(hist.get("epoch_s", []))
            res.best_epoch = int(hist.get("best_epoch", [0])[0])
        for name in wanted:
            scores, probs = pred.layer(name)
            k = maps.targets.index(name)
            res.scores[name]["model" if i == 0 else fc.name] = score_all(scores, tc[test_days, k], maps.mask,
                                                                         probs=probs)
    for name in wanted:
        sc = res.scores[name]
        log.info("%s: %s", name, " | ".join(f"{m} AUROC {v['auroc']:.4f} AP {v['ap']:.4f}" for m, v in sc.items()))
    return res, getattr(built[0], "model", built[0])


def beats_all(scores: dict[str, dict[str, float]], metrics: Sequence[str] = ("auroc", "ap")) -> dict[str, bool]:
    """Per metric: does the model under test score above every other forecaster (Brier: below)?"""
    out = {}
    for m in metrics:
        mv = scores["model"][m]
        others = [sc[m] for name, sc in scores.items() if name != "model"]
        out[m] = all(mv < o for o in others) if m == "brier" else all(mv > o for o in others)
    return out
