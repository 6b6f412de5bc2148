"""Subtractive clustering (Chiu 1994), vectorised with numpy.

Used to pick an ANFIS rule base from data: each cluster centre becomes one rule
whose Gaussian membership functions are centred on it, which keeps the rule count
small when a system has many inputs (a grid partition of 7 inputs with 2 MFs
each already has 128 rules).

The data are expected in the unit hypercube (ANFIS scales its inputs to [0, 1]
before calling :func:`subtractive_clustering`).  Each point's potential is the sum
of ``exp(-4 * ||(x_i - x_j) / r_a||^2)`` over all points; the point with the
highest potential becomes a centre, the potentials around it are reduced with
the wider radius ``r_b = squash * r_a``, and Chiu's accept / reject / grey-zone
rule decides the next ones.  The grey zone accepts a candidate when
``d_min / r_a + P_k / P_1 >= 1`` (far enough from every centre or potent enough).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: rows per block when computing the O(n^2) potentials, to bound memory (block x n floats)
_BLOCK = 2048


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of a and b (already divided by the radii)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def subtractive_clustering(X: np.ndarray, radii: float | Sequence[float] = 0.5, *,
                           squash: float = 1.25, accept: float = 0.5, reject: float = 0.15,
                           max_centres: int = 200) -> np.ndarray:
    """Return the cluster centres (k, d) found in ``X`` (n, d), data in the unit hypercube.

    ``radii`` is one radius of influence for every dimension or one per dimension
    (0.2 to 0.5 is usual); ``squash`` scales it into the radius over which an
    accepted centre suppresses the potential of its neighbours; ``accept`` and
    ``reject`` are Chiu's upper and lower potential ratios.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"subtractive clustering needs a non-empty (n, d) array, got shape {X.shape}")
    n, d = X.shape
    ra = np.broadcast_to(np.asarray(radii, dtype=float), (d,)).copy()
    if np.any(ra <= 0) or not np.all(np.isfinite(ra)):
        raise ValueError(f"radii must be positive and finite, got {ra.tolist()}")
    if not (0 < reject <= accept <= 1):
        raise ValueError(f"need 0 < reject <= accept <= 1, got reject={reject}, accept={accept}")
    A = X / ra  # distances in units of the radius of influence
    B = X / (ra * squash)
    potential = np.empty(n)
    for s in range(0, n, _BLOCK):
        potential[s:s + _BLOCK] = np.exp(-4.0 * _sq_dist(A[s:s + _BLOCK], A)).sum(1)

    b2 = (B * B).sum(1)
    centres: list[int] = []
    first = float(potential.max())
    while len(centres) < max_centres:
        k = int(np.argmax(potential))
        pk = float(potential[k])
        if pk <= 0:
            break
        if pk < accept * first:
            if pk < reject * first:
                break
            # grey zone: accept when far enough from every centre relative to its potential
            dmin = float(np.sqrt(_sq_dist(A[k:k + 1], A[centres]).min()))
            if dmin + pk / first < 1.0:
                potential[k] = 0.0  # rejected; try the next most potent point
                continue
        centres.append(k)
        d2 = np.maximum(b2 + b2[k] - 2.0 * (B @ B[k]), 0.0)
        potential -= pk * np.exp(-4.0 * d2)
        potential[k] = 0.0
    return X[centres].copy()
