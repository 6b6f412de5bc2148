"""Forecast scores as pure functions, over the cells inside the city only.

Inputs are arrays of shape (D, H, W) (days x grid) of scores and observed
counts plus an (H, W) mask; cells outside the mask never enter a score, so
padding the grid with empty cells changes nothing.  Hotspot capture follows
the crime-mapping convention: each day the top ``k`` share of the city's cells
is flagged (ties broken deterministically: higher score first, then lower
flat cell index), the hit rate is the share of that day's incidents in flagged
cells, pooled over days as caught / total, and PAI = hit rate / area share.
PEI (predictive efficiency index, Hunt 2016) is the incidents caught over the
most any choice of as many cells could have caught each day (the oracle: the
day's busiest cells), pooled the same way.  AUROC and average precision
(sklearn) are pooled over every (day, cell) pair with hotspot = at least one
incident; ``auroc_active`` is AUROC over the cells that saw crime (``active``:
by default the cells with at least one incident in the scored days), which
removes the easy wins on cells that never see any.  Brier scores
probabilities in 0..1; the Poisson log score is the mean negative
log-likelihood of the observed counts under Poisson(lambda), lambda = -log(1 - p)
(the rate whose chance of at least one incident is p, p clipped to 1e-6 ..
1 - 1e-6).  Lower is better for Brier and the log score, higher for the rest.

:func:`day_stats` and :func:`pooled` give every score of a forecast for any
weighting of its days (one bootstrap resample per row of weights), so that
confidence intervals need no refit: per-day sums for the hit rates, PAI, PEI,
Brier and log score, and per-day histograms of the scores of hotspot and
quiet cells for AUROC and AP (exact when the forecast has at most ``bins``
distinct scores, else over that many quantile bins of its scores).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from scipy.special import gammaln
from sklearn.metrics import average_precision_score, roc_auc_score

SHARES = (0.005, 0.01, 0.02, 0.05, 0.10)
#: metrics where lower is better
LOWER_BETTER = ("brier", "logscore")


def pct(share: float) -> str:
    """0.005 -> '0.5', 0.1 -> '10': the share in the metric names (hit@0.5%)."""
    return f"{share * 100:g}"


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


def pei(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray, share: float) -> float:
    """Predictive efficiency index: incidents caught over the most the same number of cells could catch."""
    s, c = _flat(scores, mask), _flat(counts, mask)
    k = max(1, math.ceil(share * c.shape[1]))
    best = np.sort(c, axis=1)[:, ::-1][:, :k].sum()
    if best <= 0:
        return float("nan")
    return float(c[flagged(s, share)].sum() / best)


def auroc(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> float:
    y = (_flat(counts, mask) > 0).ravel()
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, _flat(scores, mask).ravel()))


def active_cells(counts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W): cells inside the city with at least one incident in ``counts`` (D, H, W)."""
    return mask & (np.asarray(counts).reshape((-1,) + mask.shape).sum(0) > 0)


def log_score(probs: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> float:
    """Mean negative Poisson log-likelihood per cell-day (lambda = -log(1 - p)); lower is better."""
    return float(_nll(_flat(probs, mask), _flat(counts, mask)).mean())


def _nll(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("the log score needs probabilities in 0..1")
    lam = -np.log1p(-np.clip(p, 1e-6, 1 - 1e-6))
    return lam - y * np.log(lam) + gammaln(y + 1.0)


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
              shares: Sequence[float] = SHARES, active: Optional[np.ndarray] = None) -> dict[str, float]:
    """Every score of one forecast: auroc, auroc_active, ap, hit@k, pai@k, pei@k (k in percent of the
    city's cells), and brier and logscore (when ``probs``)."""
    act = active_cells(counts, mask) if active is None else (active & mask)
    out = {"auroc": auroc(scores, counts, mask), "auroc_active": auroc(scores, counts, act),
           "ap": average_precision(scores, counts, mask)}
    for s in shares:
        out[f"hit@{pct(s)}%"] = hit_rate(scores, counts, mask, s)
        out[f"pai@{pct(s)}%"] = pai(scores, counts, mask, s)
        out[f"pei@{pct(s)}%"] = pei(scores, counts, mask, s)
    if probs is not None:
        out["brier"] = brier(probs, counts, mask)
        out["logscore"] = log_score(probs, counts, mask)
    out["days"] = int(np.asarray(counts).shape[0])
    out["incidents"] = float(_flat(counts, mask).sum())
    return out


# -- every score for any weighting of the days (bootstrap) ----------------------------------------
def day_stats(scores: np.ndarray, counts: np.ndarray, mask: np.ndarray, probs: np.ndarray | None = None,
              shares: Sequence[float] = SHARES, active: Optional[np.ndarray] = None, bins: int = 4096) -> dict:
    """Per-day sufficient statistics of one forecast (arrays (D, ...)); see :func:`pooled`."""
    s, c = _flat(scores, mask).astype(np.float64), _flat(counts, mask).astype(np.float64)
    d, n = c.shape
    act = (active_cells(counts, mask) if active is None else (active & mask))[mask]
    out: dict = {"cells": n, "shares": tuple(shares), "total": c.sum(1)}
    order = np.lexsort((np.broadcast_to(np.arange(n), s.shape), -s), axis=1)   # score desc, then index asc
    ranked = np.take_along_axis(c, order, axis=1).cumsum(1)
    best = np.sort(c, axis=1)[:, ::-1].cumsum(1)
    for sh in shares:
        k = max(1, math.ceil(sh * n))
        out[f"caught@{pct(sh)}"], out[f"best@{pct(sh)}"] = ranked[:, k - 1], best[:, k - 1]
    u = np.unique(s)
    if len(u) <= bins:
        b, nb = np.searchsorted(u, s), len(u)
    else:
        edges = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1]))
        b, nb = np.searchsorted(edges, s, side="right"), len(edges) + 1
    y = c > 0
    key = np.arange(d)[:, None] * nb + b
    for name, sel in (("", np.ones(n, dtype=bool)), ("_active", act)):
        kk, yy = key[:, sel].ravel(), y[:, sel].ravel()
        out["pos" + name] = np.bincount(kk[yy], minlength=d * nb).reshape(d, nb)
        out["neg" + name] = np.bincount(kk[~yy], minlength=d * nb).reshape(d, nb)
    if probs is not None:
        p = _flat(probs, mask).astype(np.float64)
        if p.size and (p.min() < 0 or p.max() > 1):
            raise ValueError("Brier score needs probabilities in 0..1")
        out["sq"] = ((p - y) ** 2).sum(1)
        out["nll"] = _nll(p, c).sum(1)
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(1)
    den = pos.sum(1) * neg.sum(1)
    return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _ap(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    pd_, nd = pos[:, ::-1], neg[:, ::-1]                     # highest scores first
    tp, allc = np.cumsum(pd_, axis=1), np.cumsum(pd_ + nd, axis=1)
    prec = np.divide(tp, allc, out=np.zeros_like(tp, dtype=np.float64), where=allc > 0)
    tot = pos.sum(1)
    return np.where(tot > 0, (pd_ * prec).sum(1) / np.where(tot > 0, tot, 1), np.nan)


def pooled(stats: dict, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every score of :func:`day_stats` for each row of ``weights`` (R, D) (days counted that often)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n = stats["cells"]
    total = w @ stats["total"]
    out = {"auroc": _auc(w @ stats["pos"], w @ stats["neg"]),
           "auroc_active": _auc(w @ stats["pos_active"], w @ stats["neg_active"]),
           "ap": _ap(w @ stats["pos"], w @ stats["neg"])}
    for sh in stats["shares"]:
        caught = w @ stats[f"caught@{pct(sh)}"]
        best = w @ stats[f"best@{pct(sh)}"]
        hit = np.divide(caught, total, out=np.full_like(caught, np.nan), where=total > 0)
        out[f"hit@{pct(sh)}%"] = hit
        out[f"pai@{pct(sh)}%"] = hit / (max(1, math.ceil(sh * n)) / n)
        out[f"pei@{pct(sh)}%"] = np.divide(caught, best, out=np.full_like(caught, np.nan), where=best > 0)
    if "sq" in stats:
        cells = w.sum(1) * n
        out["brier"] = (w @ stats["sq"]) / cells
        out["logscore"] = (w @ stats["nll"]) / cells
    return out

