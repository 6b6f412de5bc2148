"""Prospective hotspotting (Bowers, Johnson and Pease 2004) on the grid, as open_cp defines it.

open_cp's ``ProspectiveHotSpot`` with its ``ClassicWeight`` and
``DistanceDiagonalsSame``: the risk of a cell at the start of day ``d`` is the
sum over earlier incidents of ``1/(1 + dd) * 1/(1 + dt)``, where ``dd`` is the
distance in cells to the incident's cell (Chebyshev: diagonal neighbours are
1 apart) and ``dt`` the whole weeks elapsed, rounded down; incidents with
``dd >= space_bandwidth`` (8 cells) or ``dt >= time_bandwidth`` (8 weeks) weigh
nothing.  With daily counts an incident of day ``j`` is taken at its midday,
so the lags 1..7 days are week 0, 8..14 week 1, and so on.

The time weights are constant over whole weeks, so each day's map is a weighted
sum of weekly blocks of the count prefix sums, convolved once with the
(2 sb - 1)^2 spatial stencil; cells outside the city hold no incidents and are
scored 0.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve

from mapping.forecast.baselines import Baseline, _prefix
from mapping.forecast.registry import register


def space_stencil(space_bandwidth: int) -> np.ndarray:
    r = space_bandwidth - 1
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return 1.0 / (1.0 + np.maximum(np.abs(yy), np.abs(xx)))


def prospective(counts: np.ndarray, days: np.ndarray, k: int, *, space_bandwidth: int = 8,
                time_bandwidth: int = 8, mask: np.ndarray | None = None) -> np.ndarray:
    """(n, H, W) prospective-hotspot risk of target ``k`` at the start of each of ``days``."""
    days = np.asarray(days)
    cum = _prefix(counts, k)
    recent = np.zeros((len(days),) + counts.shape[2:])
    for w in range(time_bandwidth):  # week w holds lags 7w+1 .. 7w+7
        hi, lo = np.maximum(0, days - 7 * w), np.maximum(0, days - 7 * w - 7)
        recent += (cum[hi] - cum[lo]) / (1.0 + w)
    out = convolve(recent, space_stencil(space_bandwidth)[None], mode="constant")
    if mask is not None:
        out[:, ~mask] = 0.0
    return out


@register("prospective_hotspot")
class ProspectiveHotspot(Baseline):
    def __init__(self, space_bandwidth: int = 8, time_bandwidth: int = 8) -> None:
        super().__init__()
        self.space_bandwidth, self.time_bandwidth = space_bandwidth, time_bandwidth

    def score(self, counts: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
        return prospective(counts, days, k, space_bandwidth=self.space_bandwidth,
                           time_bandwidth=self.time_bandwidth)
