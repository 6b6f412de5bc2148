"""The 365-day count: each cell's incidents over the last year (days ``d-365 .. d-1``).

The long-run hotspot map police analysts draw by hand; unlike the historical
average it forgets anything older than a year, so it follows slow drift.
"""
from __future__ import annotations

import numpy as np

from mapping.forecast.baselines import Baseline, _prefix
from mapping.forecast.registry import register


def count_window(counts: np.ndarray, days: np.ndarray, k: int, window: int = 365) -> np.ndarray:
    """(n, H, W): incidents of target ``k`` in the ``window`` days before each of ``days``."""
    days = np.asarray(days)
    cum = _prefix(counts, k)
    return cum[days] - cum[np.maximum(0, days - window)]


@register("count_365d")
class Count365(Baseline):
    def __init__(self, window: int = 365) -> None:
        super().__init__()
        self.window = window

    def score(self, counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
        return count_window(counts, days, k, self.window)
