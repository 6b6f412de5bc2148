"""Random forest on the lag and long-run features of :mod:`mapping.forecast.tabular`.

Leaves of at least 50 rows keep the probabilities smooth (cell-days with an
incident are rare); ``n_jobs`` threads.
"""
from __future__ import annotations

from typing import Sequence

from sklearn.ensemble import RandomForestClassifier

from mapping.forecast.registry import register
from mapping.forecast.tabular import TabularForecaster


@register("random_forest")
class RandomForest(TabularForecaster):
    def __init__(self, rows: int = 100_000, fit_days: int = 3 * 365, seed: int = 0,
                 targets: Sequence[str] | None = None, trees: int = 100,
                 min_leaf: int = 50, n_jobs: int = 2) -> None:
        super().__init__(rows, fit_days, seed, targets)
        self.trees, self.min_leaf, self.n_jobs = trees, min_leaf, n_jobs

    def make(self):
        return RandomForestClassifier(n_estimators=self.trees, min_samples_leaf=self.min_leaf, max_features="sqrt",
                                      n_jobs=self.n_jobs, random_state=self.seed)
