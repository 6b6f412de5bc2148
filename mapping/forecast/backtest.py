"""Train-before / test-from evaluation of any list of forecasters (by default the CNN-LSTM and three baselines).

:func:`run` scores one train/test split; :func:`rolling` refits every
forecaster at monthly origins and pools the months, with bootstrap confidence
intervals and a paired comparison against the best baseline.

One place for the no-leakage rule of the whole comparison
(:func:`forecast_from`): every forecaster is fitted on days before the cutoff
only; every test day's forecast reads days
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
from mapping.forecast import evaluate as ev
from mapping.forecast.evaluate import score_all
from mapping.forecast.registry import GridForecaster, GridPrediction, create
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


def forecast_from(fc: GridForecaster, maps: DailyMaps, origin: int, days: np.ndarray,
                  targets: Sequence[str]) -> tuple[GridPrediction, float, float]:
    """Fit ``fc`` on the days before ``origin``, forecast ``days`` (each >= ``origin``); + fit and predict seconds.

    The one place where every backtest (:func:`run`, :func:`rolling`) trains and
    forecasts: ``tests/test_zoo.py`` checks, for every registered forecaster,
    that the forecast of the origin day does not change when every count on or
    after it is replaced by garbage.
    """
    days = np.asarray(days)
    if days.size and days.min() < origin:
        raise ValueError(f"forecast days must not precede the training cutoff (day {origin})")
    t_fit = time.perf_counter()
    fc.fit(maps, origin)
    t_pred = time.perf_counter()
    pred = fc.predict(maps, days, targets)
    return pred, t_pred - t_fit, time.perf_counter() - t_pred


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
        pred, fit_s, predict_s = forecast_from(fc, maps, t0_idx, test_days, wanted)
        if i == 0:  # timings are the model under test's
            res.train_seconds = fit_s
            res.predict_seconds_per_day = predict_s / len(test_days)
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


# -- rolling origins ----------------------------------------------------------------------------
@dataclass
class RollingResult:
    origins: list[str]
    horizon_days: int
    test_days: int
    grid_id: str
    cells: int
    cell_size_m: float
    models: list[str]
    baselines: list[str]
    boot: int
    #: target -> forecaster -> metric -> {"value": pooled score, "lo", "hi": bootstrap 95 % interval}
    scores: dict = field(default_factory=dict)
    #: target -> forecaster (not a baseline) -> metric -> {"baseline", "diff", "lo", "hi"}: forecaster - best baseline
    paired: dict = field(default_factory=dict)
    #: target -> forecaster -> [{"origin", "days", "auroc", "ap"}] per origin
    per_origin: dict = field(default_factory=dict)
    #: forecaster -> {"fit_s": mean seconds per origin, "predict_s_per_day": mean}
    timing: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def monthly_origins(maps_first, last_day, n: int, horizon_days: int) -> list[pd.Timestamp]:
    """The ``n`` latest first-days-of-month whose ``horizon_days`` fit in the data, oldest first."""
    end = pd.Timestamp(last_day) + pd.Timedelta(days=1)                 # first day after the data
    o = (end - pd.Timedelta(days=horizon_days)).to_period("M").to_timestamp()
    if o + pd.Timedelta(days=horizon_days) > end:
        o -= pd.offsets.MonthBegin(1)
    out = [o - pd.offsets.MonthBegin(i) for i in range(n)][::-1]
    if out[0] <= pd.Timestamp(maps_first):
        raise ForecastError(f"{n} monthly origins start at {out[0].date()}, before the data ({maps_first})")
    return out


def rolling(incidents, grid, *, origins: Union[int, Sequence[str]] = 12,
            forecasters: Sequence[Union[str, GridForecaster]] | None = None, horizon_days: int = 30,
            targets: Sequence[str] | None = None, cfg: TrainConfig = TrainConfig(), train_from: Optional[str] = None,
            kde_radius: float = 1000.0, boot: int = 1000, seed: int = 0, progress: bool = False) -> RollingResult:
    """Rolling-origin backtest: at each origin refit every forecaster on the days before it, score the days
    from it to the next origin (at most ``horizon_days``), pool each forecaster's days over the origins.

    ``origins``: a count of monthly origins (the latest first-days-of-month with a
    full horizon in the data) or a list of dates.  Every metric of
    :func:`mapping.forecast.evaluate.score_all` is pooled over all scored days,
    with a 95 % percentile interval from ``boot`` bootstrap resamples of the
    days; each forecaster that is not a baseline is compared, per metric, with
    the baseline that scores best on it, on the same resamples (paired).
    ``auroc_active`` counts the cells with at least one incident of any type
    in the whole period read (training and test).
    """
    start = pd.Timestamp(train_from) if train_from else default_start(incidents)
    last = incidents.df["time"].max().tz_localize(None).normalize()
    if isinstance(origins, int):
        if origins < 1:
            raise ForecastError("--rolling needs at least one origin")
        ts = monthly_origins(start, last, origins, horizon_days)
    else:
        ts = sorted(pd.Timestamp(o) for o in origins)
        if not ts or ts[0] <= start or ts[-1] > last:
            raise ForecastError(f"origins must lie inside the data ({start.date()} .. {last.date()})")
    end = min(ts[-1] + pd.Timedelta(days=horizon_days), last + pd.Timedelta(days=1))
    maps = daily_maps(incidents, grid, start=start, end=end, premises_before=ts[0])
    o_idx = [maps.day_index(t.date()) for t in ts]
    wanted = list(targets) if targets else list(maps.targets)
    unknown = [t for t in wanted if t not in maps.targets]
    if unknown:
        raise ForecastError(f"unknown crime type(s) {unknown}; the data has {list(maps.targets)}")
    names = list(forecasters) if forecasters else ["cnn_lstm", *baselines.BASELINES]
    options = dict(grid=grid, cfg=cfg, kde_radius=kde_radius, progress=progress, targets=wanted)
    built = [create(f, **options) if isinstance(f, str) else f for f in names]
    labels = [fc.name for fc in built]
    if len(set(labels)) != len(labels):
        raise ForecastError(f"each forecaster once, please: {labels}")
    tc = maps.target_counts()
    mask = maps.mask
    kept: dict = {(m, t): ([], []) for m in labels for t in wanted}
    per_origin: dict = {t: {m: [] for m in labels} for t in wanted}
    timing = {m: {"fit_s": 0.0, "predict_s": 0.0} for m in labels}
    all_days = []
    for j, o in enumerate(o_idx):
        stop = min(o + horizon_days, o_idx[j + 1] if j + 1 < len(o_idx) else len(maps.days), len(maps.days))
        days = np.arange(o, stop)
        all_days.append(days)
        for fc, m in zip(built, labels):
            pred, fit_s, pred_s = forecast_from(fc, maps, o, days, wanted)
            timing[m]["fit_s"] += fit_s
            timing[m]["predict_s"] += pred_s
            for t in wanted:
                s_, p_ = pred.layer(t)
                kept[m, t][0].append(s_[:, mask].astype(np.float32))
                kept[m, t][1].append(None if p_ is None else p_[:, mask].astype(np.float32))
                y = tc[days, maps.targets.index(t)]
                per_origin[t][m].append({"origin": str(maps.days[o]), "days": len(days),
                                         "auroc": ev.auroc(s_, y, mask), "ap": ev.average_precision(s_, y, mask)})
        log.info("origin %s: %d days scored", maps.days[o], len(days))
    days = np.concatenate(all_days)
    n_days = len(days)
    active = (tc[:, -1].sum(0) > 0)[mask][None]                           # (1, N): saw crime of any type
    flat_mask = np.ones((1, int(mask.sum())), dtype=bool)
    is_base = {m: bool(getattr(fc, "baseline", False)) for fc, m in zip(built, labels)}
    rng = np.random.default_rng(seed)
    W = rng.multinomial(n_days, np.full(n_days, 1.0 / n_days), size=boot)
    res = RollingResult([str(maps.days[o]) for o in o_idx], horizon_days, n_days, maps.grid_id, int(mask.sum()),
                        grid.cell_size, labels, [m for m in labels if is_base[m]], boot)
    res.per_origin = per_origin
    res.timing = {m: {"fit_s": v["fit_s"] / len(o_idx), "predict_s_per_day": v["predict_s"] / n_days}
                  for m, v in timing.items()}
    for t in wanted:
        y = tc[days, maps.targets.index(t)][:, mask][:, None]               # (n, 1, N)
        point, draws = {}, {}
        for m in labels:
            s_ = np.concatenate(kept[m, t][0])[:, None]
            p_ = None if kept[m, t][1][0] is None else np.concatenate(kept[m, t][1])[:, None]
            point[m] = score_all(s_, y, flat_mask, probs=p_, active=active)
            draws[m] = ev.pooled(ev.day_stats(s_, y, flat_mask, probs=p_, active=active), W)
        res.scores[t] = {m: {k: {"value": point[m][k], "lo": float(np.nanpercentile(v, 2.5)),
                                 "hi": float(np.nanpercentile(v, 97.5))} for k, v in draws[m].items()}
                         for m in labels}
        res.paired[t] = {}
        for m in labels:
            if is_base[m] or not res.baselines:
                continue
            res.paired[t][m] = {}
            for k in draws[m]:
                cands = [b for b in res.baselines if k in draws[b]]
                if not cands:
                    continue
                key = (lambda b: point[b][k]) if k in ev.LOWER_BETTER else (lambda b: -point[b][k])
                best = min(cands, key=key)
                diff = draws[m][k] - draws[best][k]
                res.paired[t][m][k] = {"baseline": best, "diff": point[m][k] - point[best][k],
                                       "lo": float(np.nanpercentile(diff, 2.5)),
                                       "hi": float(np.nanpercentile(diff, 97.5))}
    return res
