"""The naive forecasts every model must beat, with one signature: scores for given days.

Each ``predict(counts, days, ...)`` takes the full (D, K, H, W) count maps and
the indices of the days to forecast, and returns (n, H, W) scores for target
``k`` built from days strictly before each forecast day:

* :func:`yesterday`: the day before's count; most cells are 0 on most days, so
  ties are broken by the historical average (a tiebreak below one incident,
  so it never reorders distinct counts).
* :func:`historical_average`: mean count per day over every earlier day.
* :func:`kde_recent`: quartic KDE (``mapping.kde``) of the last 30 days' incidents.

:func:`calibrate` maps a baseline's scores to probabilities (isotonic
regression fitted on training days) so that Brier scores compare fairly.

Each baseline is also a registered forecaster (:mod:`mapping.forecast.registry`)
whose probabilities are calibrated on the last training year before its
``train_end``, as the backtest has always done.
"""
from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

from geo.grid import Grid
from mapping.forecast.data import DailyMaps
from mapping.forecast.registry import GridPrediction, register
from mapping.kde import surface_from_cells


def _prefix(counts: np.ndarray, k: int) -> np.ndarray:
    c = counts[:, k].astype(np.float64)
    return np.concatenate([np.zeros_like(c[:1]), np.cumsum(c, axis=0)], axis=0)


def historical_average(counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
    days = np.asarray(days)
    if days.min() < 1:
        raise ValueError("day 0 has no history")
    cum = _prefix(counts, k)
    return cum[days] / days[:, None, None]


def yesterday(counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
    days = np.asarray(days)
    ha = historical_average(counts, days, k)
    top = ha.max(axis=(1, 2), keepdims=True)
    tiebreak = 0.5 * ha / np.where(top > 0, top, 1.0)          # in [0, 0.5]: below one incident
    return counts[days - 1, k] + tiebreak


def kde_recent(counts: np.ndarray, days: np.ndarray, k: int, grid: Grid, *, window: int = 30,
               radius: float = 1000.0, kernel: str = "quartic") -> np.ndarray:
    days = np.asarray(days)
    cum = _prefix(counts, k)
    out = np.empty((len(days),) + grid.shape)
    for i, d in enumerate(days):
        recent = cum[d] - cum[max(0, d - window)]
        out[i] = surface_from_cells(recent, grid, radius=radius, kernel=kernel, mode="density")
    return out


BASELINES = ("yesterday", "historical_average", "kde_30d")


def predict(name: str, counts: np.ndarray, days: np.ndarray, k: int, grid: Grid,
            kde_radius: float = 1000.0) -> np.ndarray:
    """Scores of baseline ``name`` for ``days`` and target ``k``."""
    if name == "yesterday":
        return yesterday(counts, days, k)
    if name == "historical_average":
        return historical_average(counts, days, k)
    if name == "kde_30d":
        return kde_recent(counts, days, k, grid, radius=kde_radius)
    raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")


def calibrate(scores_fit: np.ndarray, counts_fit: np.ndarray, mask: np.ndarray):
    """An isotonic map score -> P(hotspot), fitted on earlier (training) days; returns a function."""
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(scores_fit[:, mask].ravel(), (counts_fit[:, mask] > 0).ravel().astype(float))

    def apply(scores: np.ndarray) -> np.ndarray:
        return iso.predict(scores.reshape(-1)).reshape(scores.shape)

    return apply


# -- the baselines as registered forecasters ----------------------------------------------------
class Baseline:
    """Scores from :meth:`score`; probabilities from them, calibrated on the year before ``train_end``."""

    name = ""
    #: a baseline (no learned parameters): the rolling backtest compares every other forecaster with the best of these
    baseline = True
    calibration_days = 365

    def __init__(self) -> None:
        self.train_end: int | None = None

    def score(self, counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def fit(self, maps: DailyMaps, train_end: int) -> None:
        self.train_end = int(train_end)

    def predict(self, maps: DailyMaps, days: np.ndarray, targets) -> GridPrediction:
        if self.train_end is None:
            raise ValueError(f"baseline {self.name} is not fitted: call fit(maps, train_end) first")
        days = np.asarray(days)
        tc = maps.target_counts()
        cal_days = np.arange(max(1, self.train_end - self.calibration_days), self.train_end)
        scores, probs = [], []
        for t in targets:
            k = maps.targets.index(t)
            s = self.score(tc, days, k)
            cal = calibrate(self.score(tc, cal_days, k), tc[cal_days, k], maps.mask)
            scores.append(s)
            probs.append(cal(s))
        return GridPrediction(maps.grid_id, days, tuple(targets), np.stack(scores, 1), np.stack(probs, 1))


@register("yesterday")
class Yesterday(Baseline):
    def score(self, counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
        return yesterday(counts, days, k)


@register("historical_average")
class HistoricalAverage(Baseline):
    def score(self, counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
        return historical_average(counts, days, k)


@register("kde_30d")
class KDERecent(Baseline):
    def __init__(self, grid: Grid, kde_radius: float = 1000.0) -> None:
        super().__init__()
        self.grid, self.radius = grid, kde_radius

    def score(self, counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
        return kde_recent(counts, days, k, self.grid, radius=self.radius)
