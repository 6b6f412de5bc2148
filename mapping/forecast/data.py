"""Forecast inputs: daily count maps (T, C, H, W), targets, and leak-free per-cell features.

The no-leakage rule lives here, in one place: every feature for day ``d`` is
built from days strictly before ``d`` (cumulative sums up to ``d``), and the
premises mix from incidents before the training cutoff.  Targets are the
counts of day ``d`` per crime type plus ``all`` (every type summed); a cell is
a hotspot of a target on a day when it has at least one incident of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.ndimage import uniform_filter

#: windows (days) of the recent-count features, besides the long-run (expanding) rate
WINDOWS = (1, 7, 30, 365)
#: edge (cells) of the neighbourhoods whose mean long-run rate is a feature (shrinks sparse types)
NEIGHBOURHOODS = (3, 7)
ALL = "all"


@dataclass
class DailyMaps:
    """Counts per day, type and cell, with the calendar and the cells inside the city."""

    counts: np.ndarray          # (D, C, H, W) float32
    days: np.ndarray            # (D,) datetime64[D], local days
    types: tuple[str, ...]
    mask: np.ndarray            # (H, W) bool
    grid_id: str
    premises: Optional[np.ndarray] = None   # (P, H, W) share of premises kinds before the training cutoff
    premises_kinds: tuple[str, ...] = ()

    @property
    def targets(self) -> tuple[str, ...]:
        return self.types + (ALL,)

    def target_counts(self) -> np.ndarray:
        """(D, C+1, H, W): each type then all types summed."""
        return np.concatenate([self.counts, self.counts.sum(1, keepdims=True)], axis=1)

    def day_index(self, day) -> int:
        d = np.datetime64(str(day)[:10], "D")
        if d < self.days[0] or d > self.days[-1]:
            raise ValueError(f"date {d} is outside the data ({self.days[0]} .. {self.days[-1]})")
        return int(np.searchsorted(self.days, d))


class CellFeatures:
    """Per-cell features for any day from prefix sums, so day ``d`` only sees days < ``d``.

    Per target (types and all): log1p of 10 x the expanding mean count per day
    (the long-run rate), of the mean rate over the 3x3 and 7x7 cells around
    (inside the city) and of the counts in the last 1, 7, 30 and 365 days; then
    the premises mix and the day of week.  Only cells inside the mask are
    kept: :meth:`days` returns (n, F, N) with N = cells inside the city, row-major.
    """

    def __init__(self, maps: DailyMaps) -> None:
        self.maps = maps
        tc = maps.target_counts()[:, :, maps.mask]                  # (D, K, N)
        # cum[d] = sum over days < d; float64 keeps long sums exact
        self.cum = np.concatenate([np.zeros_like(tc[:1], dtype=np.float64),
                                   np.cumsum(tc, axis=0, dtype=np.float64)], axis=0)
        self.n_targets = tc.shape[1]
        self.names = ([f"rate_{t}" for t in maps.targets]
                      + [f"rate{n}x{n}_{t}" for n in NEIGHBOURHOODS for t in maps.targets]
                      + [f"last{w}_{t}" for w in WINDOWS for t in maps.targets]
                      + [f"premises_{p}" for p in maps.premises_kinds]
                      + [f"dow{i}" for i in range(7)])
        self.premises = (maps.premises[:, maps.mask].astype(np.float32)
                         if maps.premises is not None and len(maps.premises_kinds) else None)
        self.dow = ((maps.days.astype("datetime64[D]").astype(np.int64) + 3) % 7).astype(int)  # Monday = 0

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def rate_index(self) -> list[int]:
        return list(range(self.n_targets))

    def days(self, idx) -> np.ndarray:
        """Features of day indices ``idx`` (each >= 1, may be len(days) = the day after the data): (n, F, N)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 1 or idx.max() > len(self.maps.days)):
            raise ValueError(f"feature days must lie in 1..{len(self.maps.days)}")
        cum = self.cum
        n = cum.shape[2]
        dd = idx[:, None, None].astype(np.float64)
        rate = cum[idx] / dd
        parts = [np.log1p(10.0 * rate)]
        m = self.maps.mask
        full = np.zeros(rate.shape[:2] + m.shape)
        full[:, :, m] = rate
        for nb in NEIGHBOURHOODS:
            num = uniform_filter(full, size=(1, 1, nb, nb), mode="constant")
            den = uniform_filter(m.astype(float), size=nb, mode="constant")
            parts.append(np.log1p(10.0 * num[:, :, m] / den[m]))
        for w in WINDOWS:
            lo = np.maximum(0, idx - w)
            # a partial window at the start of the data is scaled to a full one
            scale = (w / (idx - lo))[:, None, None]
            parts.append(np.log1p((cum[idx] - cum[lo]) * scale))
        if self.premises is not None:
            parts.append(np.broadcast_to(self.premises, (len(idx),) + self.premises.shape))
        dow = np.zeros((len(idx), 7, n))
        dows = (self.dow[np.minimum(idx, len(self.dow) - 1)] + (idx >= len(self.dow))) % 7
        dow[np.arange(len(idx)), dows] = 1.0
        parts.append(dow)
        return np.concatenate(parts, axis=1).astype(np.float32)


def hotspots(counts: np.ndarray) -> np.ndarray:
    """A cell-day is a hotspot when it has at least one incident."""
    return (counts > 0).astype(np.float32)


def daily_maps(incidents, grid, *, start=None, end=None, premises_before=None,
               types: Sequence[str] | None = None) -> DailyMaps:
    """Aggregate an :class:`mapping.incidents.Incidents` table to daily maps on ``grid``.

    ``premises_before`` (a date) sets the cutoff of the premises-mix feature; give the
    first test day so that it uses training incidents only.
    """
    from mapping.incidents import aggregate, premises_mix

    im = aggregate(incidents, grid, start=start, end=end, freq="D", types=types)
    days = np.array([p.strftime("%Y-%m-%d") for p in im.periods], dtype="datetime64[D]")
    prem, kinds = None, ()
    if premises_before is not None:
        prem, kinds = premises_mix(incidents, grid, before=premises_before)
    return DailyMaps(im.counts, days, im.types, grid.mask.copy(), grid.grid_id, prem, kinds)
