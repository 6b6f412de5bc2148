"""Per-(cell, day) features and the shared fit/predict of the scikit-learn forecasters.

Features of target ``k`` for cell ``c`` on day ``d`` are built from days
strictly before ``d`` only (counts ``d-1 .. d-7`` and prefix sums up to ``d``),
so nothing a forecast reads lies on or after its day:

* ``lag1 .. lag7``: the target's count 1 to 7 days before;
* ``sum{7,30,365}_{t}``: log1p of the counts of every target ``t`` (each crime
  type and all crime) over the last 7, 30 and 365 days;
* ``rate``: log1p of 10 x the target's long-run mean count per day (all days before);
* ``nb{3,7}_sum{30,365}``: log1p of the target's 30- and 365-day counts summed
  over the 3x3 and 7x7 cells around (cells outside the city hold none);
* ``dow0 .. dow6``: the forecast day's weekday (Monday = 0), one-hot.

:class:`TabularForecaster` fits one classifier per target on a seeded uniform
sample of (cell, day) rows from the ``fit_days`` days before ``train_end``
(every row when there are fewer than ``rows``), for the ``targets`` given
(default every target: one fit each); its scores are the
classifier's ``predict_proba`` of at least one incident, which are also its
probabilities (the sample is uniform, so they keep the base rate).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import uniform_filter

from mapping.forecast.data import DailyMaps
from mapping.forecast.registry import GridPrediction

LAGS = 7
SUMS = (7, 30, 365)
NB = (3, 7)
NB_SUMS = (30, 365)


class LagFeatures:
    """Features of any target and days from the count prefix sums; see the module docstring."""

    def __init__(self, maps: DailyMaps) -> None:
        self.maps = maps
        self.mask = maps.mask
        self.tc = maps.target_counts()[:, :, maps.mask].astype(np.float32)          # (D, K, N)
        self.cum = np.concatenate([np.zeros_like(self.tc[:1], dtype=np.float64),
                                   np.cumsum(self.tc, axis=0, dtype=np.float64)])    # cum[d] = days < d
        self.dow = (maps.days.astype("datetime64[D]").astype(np.int64) + 3) % 7     # Monday = 0
        targets = maps.targets
        self.names = ([f"lag{i}" for i in range(1, LAGS + 1)]
                      + [f"sum{w}_{t}" for w in SUMS for t in targets] + ["rate"]
                      + [f"nb{n}_sum{w}" for n in NB for w in NB_SUMS] + [f"dow{i}" for i in range(7)])

    def days(self, idx: np.ndarray, k: int) -> np.ndarray:
        """(n, F, N) features of target ``k`` for day indices ``idx`` (1 .. len(days))."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 1 or idx.max() > len(self.maps.days)):
            raise ValueError(f"feature days must lie in 1..{len(self.maps.days)}")
        n, N = len(idx), self.tc.shape[2]
        parts = []
        lag = np.zeros((n, LAGS, N), dtype=np.float32)
        for i in range(1, LAGS + 1):
            ok = idx - i >= 0
            lag[ok, i - 1] = self.tc[idx[ok] - i, k]
        parts.append(lag)
        cum = self.cum
        for w in SUMS:
            parts.append(np.log1p(cum[idx] - cum[np.maximum(0, idx - w)]))
        parts.append(np.log1p(10.0 * cum[idx, k] / idx[:, None])[:, None])
        full = np.zeros((n,) + self.mask.shape)
        for w in NB_SUMS:
            full[:, self.mask] = cum[idx, k] - cum[np.maximum(0, idx - w), k]
            for nb in NB:
                s = uniform_filter(full, size=(1, nb, nb), mode="constant") * nb * nb
                parts.append(np.log1p(np.maximum(s[:, self.mask], 0.0))[:, None])
        dow = np.zeros((n, 7, N), dtype=np.float32)
        wd = np.where(idx < len(self.dow), self.dow[np.minimum(idx, len(self.dow) - 1)],
                      (self.dow[-1] + 1 + idx - len(self.dow)) % 7)
        dow[np.arange(n), wd] = 1.0
        parts.append(dow)
        return np.concatenate(parts, axis=1).astype(np.float32)


class TabularForecaster:
    """One scikit-learn classifier per target on :class:`LagFeatures`; subclasses give :meth:`make`."""

    name = ""

    def __init__(self, rows: int = 100_000, fit_days: int = 3 * 365, seed: int = 0,
                 targets: Sequence[str] | None = None) -> None:
        self.rows, self.fit_days, self.seed = rows, fit_days, seed
        self.targets = tuple(targets) if targets else None      # fit only these (default: every target)
        self.models: dict[str, object] = {}
        self.train_end: int | None = None

    def make(self):
        raise NotImplementedError

    def sample(self, maps: DailyMaps, train_end: int) -> tuple[np.ndarray, np.ndarray]:
        """Seeded (day, cell) rows to fit on: days in [first, train_end), cells inside the city."""
        first = max(1, min(28, train_end - 1), train_end - self.fit_days)
        n_cells = int(maps.mask.sum())
        total = (train_end - first) * n_cells
        if total <= 0:
            raise ValueError(f"{self.name}: no training days before day {train_end}")
        rng = np.random.default_rng(self.seed)
        flat = np.arange(total) if total <= self.rows else np.sort(rng.choice(total, self.rows, replace=False))
        return first + flat // n_cells, flat % n_cells

    def fit(self, maps: DailyMaps, train_end: int) -> None:
        self.train_end = int(train_end)
        feats = LagFeatures(maps)
        days, cells = self.sample(maps, self.train_end)
        self.models = {}
        for k, t in enumerate(maps.targets):
            if self.targets is not None and t not in self.targets:
                continue
            X = np.empty((len(days), len(feats.names)), dtype=np.float32)
            uniq, inv = np.unique(days, return_inverse=True)
            for s in range(0, len(uniq), 128):                    # feature maps of 128 days at a time
                chunk = uniq[s:s + 128]
                F = feats.days(chunk, k)                             # (n, F, N)
                rows = np.nonzero((inv >= s) & (inv < s + len(chunk)))[0]
                X[rows] = F[inv[rows] - s, :, cells[rows]]
            y = feats.tc[days, k, cells] > 0
            if y.all() or not y.any():
                self.models[t] = float(y.mean())                     # one class only: a constant
            else:
                m = self.make()
                m.fit(X, y)
                self.models[t] = m

    def predict(self, maps: DailyMaps, days: np.ndarray, targets: Sequence[str]) -> GridPrediction:
        if self.train_end is None:
            raise ValueError(f"forecaster {self.name} is not fitted: call fit(maps, train_end) first")
        days = np.asarray(days)
        feats = LagFeatures(maps)
        out = np.zeros((len(days), len(targets)) + maps.mask.shape)
        missing = [t for t in targets if t not in self.models]
        if missing:
            raise ValueError(f"forecaster {self.name} was not fitted for {missing}")
        for j, t in enumerate(targets):
            k, m = maps.targets.index(t), self.models[t]
            for s in range(0, len(days), 64):
                chunk = days[s:s + 64]
                if isinstance(m, float):
                    p = np.full((len(chunk), int(maps.mask.sum())), m)
                else:
                    F = feats.days(chunk, k)                             # (n, F, N)
                    X = F.transpose(0, 2, 1).reshape(-1, F.shape[1])
                    p = m.predict_proba(X)[:, 1].reshape(len(chunk), -1)
                out[s:s + len(chunk), j][:, maps.mask] = p
        return GridPrediction(maps.grid_id, days, tuple(targets), out, out)
