"""Self-exciting point process on the grid (open_cp's ``seppexp``: Mohler 2015), on daily counts.

Each cell ``n`` has its own background rate ``mu_n`` (incidents per day); every
incident raises the rate of its own cell by ``theta`` expected follow-ups,
spread over the next days by a geometric kernel ``g(lag) = (1 - q) q^(lag - 1)``
(lag >= 1 day: the daily-count analogue of open_cp's exponential ``omega
exp(-omega t)``, summing to 1).  So the rate of day ``d`` is

    lambda_n(d) = mu_n + theta * sum over earlier days d' of c_n(d') g(d - d')

and is fitted by expectation-maximisation on the training days (stochastic
declustering: each day's incidents are split between background and
triggered in proportion to the two terms).  The forecast of day ``d`` is
``lambda_n(d)`` from counts before ``d``; its probability of at least one
incident is ``1 - exp(-lambda)``.  Spatial triggering (open_cp's continuous
SEPP) is not modelled: follow-ups stay in the cell.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mapping.forecast.data import DailyMaps
from mapping.forecast.registry import GridPrediction, register


def _excitation(c: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """S[d] = sum_{d'<d} c[d'] q^(d-d'-1) and T[d] = sum_{d'<d} c[d'] (d-d'-1) q^(d-d'-1), each (D+1, N)."""
    S = np.zeros((len(c) + 1, c.shape[1]))
    T = np.zeros_like(S)
    for d in range(1, len(c) + 1):
        T[d] = q * (T[d - 1] + S[d - 1])
        S[d] = q * S[d - 1] + c[d - 1]
    return S, T


def fit_sepp(c: np.ndarray, iterations: int = 40, theta: float = 0.1, q: float = 0.5,
             tol: float = 1e-6) -> tuple[np.ndarray, float, float]:
    """EM fit of (mu per cell, theta, q) to daily counts ``c`` (D, N)."""
    c = np.asarray(c, dtype=np.float64)
    D = len(c)
    total = c.sum()
    mu = np.maximum(c.mean(0), 0.0)
    if total <= 0:
        return mu, 0.0, q
    for _ in range(iterations):
        S, T = _excitation(c, q)
        trig = theta * (1 - q) * S[:D]
        lam = mu + trig
        w = np.divide(c, lam, out=np.zeros_like(c), where=lam > 0)      # c / lambda
        bg = (w * mu).sum(0)
        trig_mass = (w * trig).sum()
        lag_mass = (w * theta * (1 - q) * T[:D]).sum()
        new_mu = bg / D
        new_theta = trig_mass / total
        m = lag_mass / trig_mass if trig_mass > 0 else 0.0
        new_q = float(np.clip(m / (1 + m), 1e-4, 0.999))
        done = abs(new_theta - theta) < tol and abs(new_q - q) < tol
        mu, theta, q = new_mu, float(new_theta), new_q
        if done:
            break
    return mu, theta, q


@register("sepp")
class SEPP:
    """Grid self-exciting point process; see the module docstring.  Fits one process per target."""

    def __init__(self, fit_days: int = 3 * 365, iterations: int = 40, targets: Sequence[str] | None = None) -> None:
        self.fit_days, self.iterations = fit_days, iterations
        self.targets = tuple(targets) if targets else None
        self.params: dict[str, tuple[np.ndarray, float, float]] = {}
        self.train_end: int | None = None

    def fit(self, maps: DailyMaps, train_end: int) -> None:
        self.train_end = int(train_end)
        tc = maps.target_counts()
        first = max(0, self.train_end - self.fit_days)
        self.params = {}
        for k, t in enumerate(maps.targets):
            if self.targets is None or t in self.targets:
                self.params[t] = fit_sepp(tc[first:self.train_end, k][:, maps.mask], self.iterations)

    def predict(self, maps: DailyMaps, days: np.ndarray, targets: Sequence[str]) -> GridPrediction:
        if self.train_end is None:
            raise ValueError("sepp is not fitted: call fit(maps, train_end) first")
        missing = [t for t in targets if t not in self.params]
        if missing:
            raise ValueError(f"forecaster sepp was not fitted for {missing}")
        days = np.asarray(days)
        tc = maps.target_counts()
        lam = np.zeros((len(days), len(targets)) + maps.mask.shape)
        for j, t in enumerate(targets):
            mu, theta, q = self.params[t]
            c = tc[:, maps.targets.index(t)][:, maps.mask]
            S, _ = _excitation(c[:int(days.max())], q)               # S[d] reads days < d only
            lam[:, j][:, maps.mask] = mu + theta * (1 - q) * S[days]
        return GridPrediction(maps.grid_id, days, tuple(targets), lam, 1.0 - np.exp(-lam))
