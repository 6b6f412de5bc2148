"""Gradient boosting (scikit-learn's histogram GBM) on the lag and long-run features of :mod:`mapping.forecast.tabular`."""
from __future__ import annotations

from typing import Sequence

from sklearn.ensemble import HistGradientBoostingClassifier

from mapping.forecast.registry import register
from mapping.forecast.tabular import TabularForecaster


@register("gradient_boosting")
class GradientBoosting(TabularForecaster):
    def __init__(self, rows: int = 100_000, fit_days: int = 3 * 365, seed: int = 0,
                 targets: Sequence[str] | None = None, iterations: int = 200,
                 learning_rate: float = 0.05, min_leaf: int = 100) -> None:
        super().__init__(rows, fit_days, seed, targets)
        self.iterations, self.learning_rate, self.min_leaf = iterations, learning_rate, min_leaf

    def make(self):
        return HistGradientBoostingClassifier(max_iter=self.iterations, learning_rate=self.learning_rate,
                                              min_samples_leaf=self.min_leaf, early_stopping=False,
                                              random_state=self.seed)
