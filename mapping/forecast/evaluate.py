"""Forecast scores as pure functions, over the cells inside the city only.

Inputs are arrays of shape (D, H, W) (days x grid) of scores and observed
counts plus an (H, W) mask; cells outside the mask never enter a score, so
padding the grid with empty cells changes nothing.  Hotspot capture follows
the crime-mapping convention: each day the top ``k`` share of the city's cells
is flagged (ties broken deterministically: higher score first, then lower
flat cell index), the hit rate is the share of that day's incidents in flagged
cells, pooled over days as caught / total, and PAI = hit rate / area share.
AUROC and average precision (sklearn) are pooled over every (day, cell) pair
with hotspot = at least one incident; Brier scores probabilities in 0..1.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

SHARES = (0.01, 0.05, 0.10)


def _flat(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(D, H, W) -> (D, N) over the cells inside the mask, in row-major cell order."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.shape[-2:] != mask.shape:
        raise ValueError(f"array of shape {a.shape} does not match the mask {mask.shape}")
    return a[:, mask]


def flagged(scores: np.ndarray, share: float) -> np.ndarray:
    """Boolean (D, N): the top ``ceil(share * N)`` cells of each day, ties by lower index."""
    d, n = scores.shape
    k = max(1, math.ceil(share * n))
    idx = np.arange(n)
    out = np.zeros((d, n), dtype=bool)
    for i in range(d):
        order = np.lexsort((idx, -scores[i]))  # last key first: score desc, then index asc
        out[i, order[:k]] = True
    return out


def hit_rate(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray, share: float) -> float:
    """Share of incidents (over all days) that fall in the flagged ``share`` of the city's cells."""
    s, c = _flat(scores, mask), _flat(counts, mask)
    total = c.sum()
    if total <= 0:
        return float("nan")
    return float(c[flagged(s, share)].sum() / total)


def pai(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray, share: float) -> float:
    """Predictive accuracy index: hit rate over the share of area actually flagged."""
    n = int(mask.sum())
    k = max(1, math.ceil(share * n))
    return hit_rate(scores, counts, mask, share) / (k / n)


def auroc(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> float:
    y = (_flat(counts, mask) > 0).ravel()
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, _flat(scores, mask).ravel()))


def average_precision(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> float:
    y = (_flat(counts, mask) > 0).ravel()
    if not y.any():
        return float("nan")
    return float(average_precision_score(y, _flat(scores, mask).ravel()))


def brier(probs: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> float:
    p = _flat(probs, mask).ravel()
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("Brier score needs probabilities in 0..1")
    y = (_flat(counts, mask) > 0).ravel().astype(float)
    return float(np.mean((p - y) ** 2))


def score_all(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray, probs: np.ndarray | None = None,
              shares: Sequence[float] = SHARES) -> dict[str, float]:
    """Every score of one forecast: auroc, ap, hit@k, pai@k (k in percent), brier (when ``probs``)."""
    out = {"auroc": auroc(scores, counts, mask), "ap": average_precision(scores, counts, mask)}
    for s in shares:
        pct = f"{round(s * 100):g}"
        out[f"hit@{pct}%"] = hit_rate(scores, counts, mask, s)
        out[f"pai@{pct}%"] = pai(scores, counts, mask, s)
    if probs is not None:
        out["brier"] = brier(probs, counts, mask)
    out["days"] = int(np.asarray(counts).shape[0])
    out["incidents"] = float(_flat(counts, mask).sum())
    return out
