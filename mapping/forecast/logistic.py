"""Logistic regression on the lag and long-run features of :mod:`mapping.forecast.tabular` (standardised)."""
from __future__ import annotations

from typing import Sequence

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mapping.forecast.registry import register
from mapping.forecast.tabular import TabularForecaster


@register("logistic")
class Logistic(TabularForecaster):
    def __init__(self, rows: int = 100_000, fit_days: int = 3 * 365, seed: int = 0,
                 targets: Sequence[str] | None = None, C: float = 1.0) -> None:
        super().__init__(rows, fit_days, seed, targets)
        self.C = C

    def make(self):
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=500))
