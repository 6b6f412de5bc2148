"""GMCP clip labelling: one concept per clip, chosen jointly over a window of clips.

The generalized maximum clique problem of the design notes: a graph with one
cluster per clip (h clips) and one node per concept (k concepts); pick exactly
one node per cluster so that the summed weight of the edges between the picked
nodes is largest.  With ``W`` of shape (h, k, h, k) the objective of a labelling
``a`` is ``sum_{i<j} W[i, a_i, j, a_j]`` (plus an optional unary term
``sum_i U[i, a_i]``).  Only the upper triangle ``i < j`` of ``W`` is read.

Formulation (mixed binary program, built with PuLP):

* ``x[i,a]`` binary, ``sum_a x[i,a] = 1`` for every clip;
* ``y[i,a,j,b]`` continuous in [0, 1] for every pair ``i < j``, with the
  marginalisation constraints ``sum_b y[i,a,j,b] = x[i,a]`` and
  ``sum_a y[i,a,j,b] = x[j,b]``.

The marginalisation constraints make the LP relaxation the local polytope, far
tighter than the textbook linearisation (``y <= x``, ``y >= x + x - 1``), which
the design notes measured as hopeless at h = 8, k = 10.  Once ``x`` is integral
they force ``y[i,a,j,b] = x[i,a] x[j,b]``, so ``y`` needs no integrality.

Solving: HiGHS in process (default).  The model is built once per window shape
(h, k) through PuLP, handed to a persistent ``highspy.Highs`` object, and each
call only rewrites the objective coefficients (``changeColsCost``).  The LP
relaxation is solved first (a second persistent copy, re-solved from the last
basis); when its x is integral it is the optimum, proved, with no branching
(every realistic window of the benchmark).  Otherwise HiGHS branches and bounds,
warm-started (``setSolution``) from an ICM labelling.  ``solver="cbc"`` solves the
same PuLP model with CBC (``PULP_CBC_CMD``, a subprocess, warm-started).

Fallbacks (flagged in :class:`GMCPResult`): when the solver fails or stops at the
time limit, the best of the solver's incumbent and the ICM labelling is returned
with ``optimal=False`` and ``fallback_reason`` set; ``method`` is ``"gmcp"`` when
the solver's incumbent won and ``"greedy-fallback"`` when ICM did.  A window of
one clip has no edges: its label is the arg-max of the unary term
(``method="argmax-fallback"``).

Edge weights from detector confidences and a co-occurrence matrix
(:func:`label_clips`), video classification with one matrix per event class
(:func:`classify_video`) and the per-camera sliding window used by the workers
(:class:`GMCPWindow`) sit on top of :func:`solve_edges`.
"""
from __future__ import annotations

import logging
import numbers
import threading
import time
import warnings
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal, Mapping, Optional, Sequence

import highspy
import numpy as np
import pulp

log = logging.getLogger(__name__)

Solver = Literal["highs", "cbc"]
_SOLVERS = ("highs", "cbc")
# Absolute optimality gap: labellings closer than this in objective count as ties.
_ABS_GAP = 1e-9
_MODEL_CACHE_SIZE = 32


@dataclass(frozen=True)
class GMCPResult:
    """Outcome of one GMCP solve.

    ``labels``: concept index per clip (h ints).  ``objective``: the objective of
    ``labels`` (edges plus unary), recomputed from the weights.  ``optimal``: the
    solver proved the labels optimal.  ``method``: ``"gmcp"`` (solver's labels),
    ``"greedy-fallback"`` (ICM labels; solver failed or timed out) or
    ``"argmax-fallback"`` (one clip: arg-max of the unary term).  ``bound``: the
    solver's upper bound on the optimum when it has one.  ``build_ms``: model
    building in this call (0 when the model for this shape was cached);
    ``solve_ms``: the whole call, building included.  ``stage``: ``"lp"`` when
    the LP relaxation was integral (optimal without branching), ``"mip"`` when
    branch and bound ran.
    """

    labels: np.ndarray
    objective: float
    optimal: bool
    method: str
    fallback_reason: Optional[str] = None
    solve_ms: float = 0.0
    build_ms: float = 0.0
    bound: Optional[float] = None
    solver: str = "highs"
    stage: Optional[str] = None  # "lp": relaxation integral, "mip": branch and bound


# -- input checks and objective ------------------------------------------------------
def _check_weights(W, name: str = "W") -> np.ndarray:
    W = np.asarray(W, dtype=float)
    if W.ndim != 4 or W.shape[0] != W.shape[2] or W.shape[1] != W.shape[3]:
        raise ValueError(f"{name} must have shape (h, k, h, k), got {W.shape}")
    h, k = W.shape[:2]
    if h < 1:
        raise ValueError(f"{name} has no clips (h = 0)")
    if k < 1:
        raise ValueError(f"{name} has no concepts (k = 0)")
    # Only the upper triangle i < j is read, so only it must be finite.
    iu, ju = np.triu_indices(h, 1)
    used = W[iu, :, ju, :]
    if not np.all(np.isfinite(used)):
        p, a, b = (int(v) for v in np.argwhere(~np.isfinite(used))[0])
        raise ValueError(f"{name}[{iu[p]}, {a}, {ju[p]}, {b}] is {used[p, a, b]}: weights must be finite")
    return W


def _check_unary(unary, h: int, k: int) -> Optional[np.ndarray]:
    if unary is None:
        return None
    U = np.asarray(unary, dtype=float)
    if U.shape != (h, k):
        raise ValueError(f"unary must have shape (h, k) = {(h, k)}, got {U.shape}")
    if not np.all(np.isfinite(U)):
        i, a = (int(v) for v in np.argwhere(~np.isfinite(U))[0])
        raise ValueError(f"unary[{i}, {a}] is {U[i, a]}: must be finite")
    return U


def edge_objective(W: np.ndarray, labels: Sequence[int], unary: Optional[np.ndarray] = None) -> float:
    """``sum_{i<j} W[i, l_i, j, l_j]`` (+ ``sum_i unary[i, l_i]``) of one labelling."""
    W = np.asarray(W, dtype=float)
    lab = np.asarray(labels, dtype=np.int64)
    iu, ju = np.triu_indices(len(lab), 1)
    total = float(W[iu, lab[iu], ju, lab[ju]].sum())
    if unary is not None:
        total += float(np.asarray(unary)[np.arange(len(lab)), lab].sum())
    return total


def _symmetric_pairs(W: np.ndarray) -> np.ndarray:
    """S[i,a,j,b] = W[i,a,j,b] for i<j, W[j,b,i,a] for i>j, 0 on the diagonal clips."""
    h = W.shape[0]
    upper = np.triu(np.ones((h, h), dtype=bool), 1)
    S = np.where(upper[:, None, :, None], W, 0.0)
    return S + S.transpose(2, 3, 0, 1)


def icm_labelling(W: np.ndarray, unary: Optional[np.ndarray] = None,
                  starts: Sequence[np.ndarray] = (), max_sweeps: int = 50) -> np.ndarray:
    """Greedy start plus iterated conditional modes: a good labelling, not a proven optimum.

    Starts from each labelling in ``starts`` and from the "best partner" greedy
    labelling (each clip's concept maximising its unary plus, for every other
    clip, the best edge to it), improves each by moving one clip at a time to its
    best concept given the others, and returns the best local optimum.
    """
    h, k = W.shape[:2]
    S = _symmetric_pairs(W)
    U = np.zeros((h, k)) if unary is None else unary
    greedy = np.argmax(U + S.max(axis=3).sum(axis=2), axis=1)
    candidates = [np.asarray(s, dtype=np.int64).copy() for s in starts] + [greedy]
    best, best_obj = None, -np.inf
    cols = np.arange(h)
    for lab in candidates:
        for _ in range(max_sweeps):
            changed = False
            for i in range(h):
                # Score of each concept for clip i with the other clips fixed.
                score = U[i] + S[i, :, cols, lab].sum(axis=0)
                a = int(np.argmax(score))
                if score[a] > score[lab[i]] + 1e-12:
                    lab[i] = a
                    changed = True
            if not changed:
                break
        obj = edge_objective(W, lab, unary)
        if obj > best_obj:
            best, best_obj = lab, obj
    return best


# -- the model, built once per window shape -------------------------------------------
class _WindowModel:
    """The tight GMCP program for one (h, k), as a PuLP problem plus a persistent HiGHS copy."""

    def __init__(self, h: int, k: int, solver: str) -> None:
        t0 = time.perf_counter()
        self.h, self.k = h, k
        self.lock = threading.Lock()
        pi, pj = np.triu_indices(h, 1)
        self.pi, self.pj = pi, pj
        # Posed as a minimisation of the negated objective: CBC 2.10 given a MIP
        # start on a maximisation ("-max") cuts off the whole LP with the start's
        # cost and calls the start optimal (seen here on log-weighted windows).
        prob = pulp.LpProblem(f"gmcp_h{h}_k{k}", pulp.LpMinimize)
        x = [[prob.add_variable(f"x_{i}_{a}", 0, 1, cat=pulp.LpBinary) for a in range(k)] for i in range(h)]
        y = [[[prob.add_variable(f"y_{p}_{a}_{b}", 0, 1) for b in range(k)]
              for a in range(k)] for p in range(len(pi))]
        for i in range(h):
            prob += pulp.lpSum(x[i]) == 1, f"one_{i}"
        for p, (i, j) in enumerate(zip(pi, pj)):
            for a in range(k):
                prob += pulp.lpSum(y[p][a]) == x[i][a], f"mi_{p}_{a}"
            for b in range(k):
                prob += pulp.lpSum(y[p][a][b] for a in range(k)) == x[j][b], f"mj_{p}_{b}"
        # PuLP needs an objective expression mentioning the variables; the real
        # coefficients are written per call.
        prob += pulp.lpSum(v for row in x for v in row)
        self.prob, self.x, self.y = prob, x, y
        self.highs = None
        if solver == "highs":
            hs = pulp.HiGHS(msg=False)
            hs.createAndConfigureSolver(prob)
            hs.buildSolverModel(prob)  # sets var.index to the HiGHS column
            self.highs = prob.solverModel
            self.highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
            self.highs.setOptionValue("mip_rel_gap", 0.0)
            self.highs.setOptionValue("mip_abs_gap", _ABS_GAP)
            self.ncols = self.highs.getNumCol()
            self.xcol = np.array([[v.index for v in row] for row in x], dtype=np.int32)
            self.ycol = np.array([[[v.index for v in ra] for ra in yp] for yp in y], dtype=np.int32)
            self.allcols = np.arange(self.ncols, dtype=np.int32)
        self.lp: Optional[highspy.Highs] = None  # the relaxation, made on first use
        self.build_ms = (time.perf_counter() - t0) * 1e3

    def costs(self, W: np.ndarray, U: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Objective coefficients of x (h, k) and y (pairs, k, k)."""
        cx = np.zeros((self.h, self.k)) if U is None else U
        cy = W[self.pi, :, self.pj, :]  # (pairs, k, k)
        return cx, cy

    def warm_values(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.zeros((self.h, self.k))
        X[np.arange(self.h), labels] = 1.0
        Y = X[self.pi][:, :, None] * X[self.pj][:, None, :]
        return X, Y

    # -- HiGHS, in process ---------------------------------------------------------
    def _highs_costs(self, W, U) -> np.ndarray:
        cx, cy = self.costs(W, U)
        cost = np.empty(self.ncols)
        cost[self.xcol.ravel()] = cx.ravel()
        cost[self.ycol.ravel()] = cy.ravel()
        return cost

    def solve_lp(self, W, U, time_limit: float):
        """The LP relaxation (the local polytope): labels and bound when its x is integral.

        An integral optimum of the relaxation is an optimum of the program (the
        relaxation's value bounds it from above), so no branching is needed; on
        windows weighted from detectors and co-occurrence this is the common case.
        """
        if self.lp is None:
            self.lp = highspy.Highs()
            self.lp.setOptionValue("output_flag", False)
            self.lp.passModel(self.highs.getLp())
            self.lp.changeColsIntegrality(self.ncols, self.allcols, np.zeros(self.ncols, dtype=np.uint8))
            self.lp.changeObjectiveSense(highspy.ObjSense.kMaximize)
        lp = self.lp
        lp.changeColsCost(self.ncols, self.allcols, self._highs_costs(W, U))
        lp.setOptionValue("time_limit", float(time_limit))
        lp.run()
        if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None, None
        X = np.asarray(lp.getSolution().col_value)[self.xcol]
        if np.abs(X - np.round(X)).max() > 1e-6:
            return None, float(lp.getInfo().objective_function_value)
        return np.argmax(X, axis=1), float(lp.getInfo().objective_function_value)

    def solve_highs(self, W, U, warm: np.ndarray, time_limit: float):
        hs = self.highs
        hs.changeColsCost(self.ncols, self.allcols, self._highs_costs(W, U))
        X, Y = self.warm_values(warm)
        start = np.empty(self.ncols)
        start[self.xcol.ravel()] = X.ravel()
        start[self.ycol.ravel()] = Y.ravel()
        hs.setSolution(self.ncols, self.allcols, start)
        hs.setOptionValue("time_limit", float(time_limit))
        hs.run()
        status = hs.getModelStatus()
        info = hs.getInfo()
        optimal = status == highspy.HighsModelStatus.kOptimal
        labels = None
        if info.primal_solution_status == 2:  # kSolutionStatusFeasible
            col = np.asarray(hs.getSolution().col_value)
            labels = np.argmax(col[self.xcol], axis=1)
        bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
        return labels, optimal, hs.modelStatusToString(status), bound

    # -- CBC through PuLP ---------------------------------------------------------
    def solve_cbc(self, W, U, warm: np.ndarray, time_limit: float):
        cx, cy = self.costs(W, U)
        terms = [(v, -c) for row, crow in zip(self.x, cx) for v, c in zip(row, crow) if c != 0.0]
        for yp, cp in zip(self.y, cy):
            for ra, ca in zip(yp, cp):
                terms.extend((v, -c) for v, c in zip(ra, ca) if c != 0.0)
        # A zero objective still has to mention the variables for PuLP.
        self.prob.setObjective(pulp.LpAffineExpression(terms) if terms
                               else pulp.LpAffineExpression([(self.x[0][0], 0.0)]))
        X, Y = self.warm_values(warm)
        for row, xr in zip(self.x, X):
            for v, val in zip(row, xr):
                v.setInitialValue(val)
        for yp, yv in zip(self.y, Y):
            for ra, ya in zip(yp, yv):
                for v, val in zip(ra, ya):
                    v.setInitialValue(val)
        with warnings.catch_warnings():  # PuLP 3.3 deprecates its bundled CBC, the one we have
            warnings.simplefilter("ignore", DeprecationWarning)
            cmd = pulp.PULP_CBC_CMD(msg=False, timeLimit=min(max(1e-3, float(time_limit)), 1e6), warmStart=True,
                                    gapRel=0.0, gapAbs=_ABS_GAP)
        self.prob.solve(cmd)
        optimal = (self.prob.status == pulp.LpStatusOptimal
                   and self.prob.sol_status == pulp.LpSolutionOptimal)
        labels = None
        if self.prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
            vals = np.array([[v.varValue if v.varValue is not None else 0.0 for v in row] for row in self.x])
            labels = np.argmax(vals, axis=1)
        status = f"{pulp.LpStatus[self.prob.status]}/{pulp.LpSolution[self.prob.sol_status]}"
        return labels, optimal, status, None


_cache: "OrderedDict[tuple[int, int, str], _WindowModel]" = OrderedDict()
_cache_lock = threading.Lock()


def _model_for(h: int, k: int, solver: str) -> tuple[_WindowModel, float]:
    """The cached model of this shape, and the ms spent building it now (0 if cached)."""
    key = (h, k, solver)
    with _cache_lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model, 0.0
    model = _WindowModel(h, k, solver)
    with _cache_lock:
        _cache[key] = model
        while len(_cache) > _MODEL_CACHE_SIZE:
            _cache.popitem(last=False)
    return model, model.build_ms


def clear_model_cache() -> None:
    """Forget every cached window model (the benchmark uses it to time model building)."""
    with _cache_lock:
        _cache.clear()


# -- public solver ---------------------------------------------------------------------
def solve_edges(W, *, unary=None, time_limit: float = 1.0, solver: Solver = "highs",
                warm_start: Optional[Sequence[int]] = None, lp_first: bool = True) -> GMCPResult:
    """Exact GMCP: labels maximising ``sum_{i<j} W[i,a_i,j,a_j]`` (+ ``sum_i unary[i,a_i]``).

    ``W``: array (h, k, h, k), finite where ``i < j`` (the rest is ignored).
    ``unary``: optional (h, k) node weights.  ``time_limit``: seconds given to the
    solver.  ``solver``: ``"highs"`` (in process, default) or ``"cbc"``.
    ``warm_start``: an optional labelling tried besides the ICM one; the better
    of the two is handed to the solver as its first incumbent.  ``lp_first``
    (HiGHS only): solve the LP relaxation first and stop there when it is
    integral, which proves optimality; otherwise run branch and bound.

    Raises ValueError for a wrong shape, non-finite weights, h or k of 0, a
    warm start of the wrong length or range, an unknown solver or a time limit
    that is not positive.  Never raises for solver trouble: see the module's
    fallback rules.
    """
    t0 = time.perf_counter()
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    if isinstance(time_limit, bool) or not (isinstance(time_limit, numbers.Real) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    W = _check_weights(W)
    h, k = W.shape[:2]
    U = _check_unary(unary, h, k)
    starts = []
    if warm_start is not None:
        ws = np.asarray(warm_start)
        if ws.shape != (h,) or not np.issubdtype(ws.dtype, np.integer) or ws.min() < 0 or ws.max() >= k:
            raise ValueError(f"warm_start must be {h} concept indices in [0, {k}), got {warm_start!r}")
        starts.append(ws.astype(np.int64))

    def done(labels, optimal, method, reason=None, build_ms=0.0, bound=None, stage=None) -> GMCPResult:
        labels = np.asarray(labels, dtype=np.int64)
        return GMCPResult(labels=labels, objective=edge_objective(W, labels, U), optimal=optimal,
                          method=method, fallback_reason=reason,
                          solve_ms=(time.perf_counter() - t0) * 1e3, build_ms=build_ms,
                          bound=bound, solver=solver, stage=stage)

    if h == 1:
        lab = [int(np.argmax(U[0]))] if U is not None else [0]
        return done(lab, True, "argmax-fallback",
                    "one clip: no edges, label is the arg-max of the unary term"
                    + ("" if U is not None else " (none given: concept 0, every label ties)"))
    if k == 1:
        return done(np.zeros(h, dtype=np.int64), True, "gmcp")

    greedy = icm_labelling(W, U, starts)
    build_ms = 0.0
    try:
        model, build_ms = _model_for(h, k, solver)
        remaining = time_limit - (time.perf_counter() - t0)
        if remaining <= 0:
            return done(greedy, False, "greedy-fallback",
                        f"time limit {time_limit:g} s spent before the solver started (model build)",
                        build_ms)
        with model.lock:
            if solver == "highs" and lp_first:
                labels, lp_bound = model.solve_lp(W, U, remaining)
                # Trust the relaxation only when its labels reach its value (tolerance).
                if labels is not None and edge_objective(W, labels, U) >= lp_bound - 1e-7 * (1 + abs(lp_bound)):
                    return done(labels, True, "gmcp", None, build_ms, lp_bound, "lp")
                remaining = time_limit - (time.perf_counter() - t0)
                if remaining <= 0:
                    return done(greedy, False, "greedy-fallback",
                                f"time limit {time_limit:g} s spent on the LP relaxation", build_ms, lp_bound)
            if solver == "highs":
                labels, optimal, status, bound = model.solve_highs(W, U, greedy, remaining)
            else:
                labels, optimal, status, bound = model.solve_cbc(W, U, greedy, remaining)
    except Exception as exc:  # a solver crash must not stop a camera worker
        log.warning("GMCP solver %s failed (%s); using the ICM labelling", solver, exc)
        return done(greedy, False, "greedy-fallback", f"{solver} failed: {exc}", build_ms)
    if optimal and labels is not None:
        return done(labels, True, "gmcp", None, build_ms, bound, "mip")
    reason = f"{solver} stopped without proving optimality ({status}, limit {time_limit:g} s)"
    if labels is not None and edge_objective(W, labels, U) > edge_objective(W, greedy, U):
        return done(labels, False, "gmcp", reason + "; solver incumbent used", build_ms, bound, "mip")
    return done(greedy, False, "greedy-fallback", reason + "; ICM labelling used", build_ms, bound)


# -- edge weights from detectors and co-occurrence ------------------------------------------
def _check_confidences(conf, k: Optional[int] = None) -> np.ndarray:
    C = np.asarray(conf, dtype=float)
    if C.ndim != 2:
        raise ValueError(f"confidences must have shape (clips, concepts), got {C.shape}")
    if C.shape[0] < 1 or C.shape[1] < 1:
        raise ValueError(f"confidences must hold at least one clip and one concept, got {C.shape}")
    if k is not None and C.shape[1] != k:
        raise ValueError(f"confidences have {C.shape[1]} concepts but the co-occurrence matrix has {k}")
    if not np.all(np.isfinite(C)):
        i, a = (int(v) for v in np.argwhere(~np.isfinite(C))[0])
        raise ValueError(f"confidences[{i}, {a}] is {C[i, a]}: must be finite")
    if C.min() < 0:
        i, a = (int(v) for v in np.argwhere(C < 0)[0])
        raise ValueError(f"confidences[{i}, {a}] = {C[i, a]} is negative: expected scores in [0, 1]")
    return C


def _check_cooccurrence(M, name: str = "cooccurrence") -> np.ndarray:
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 1:
        raise ValueError(f"{name} must be a square (k, k) matrix, got shape {M.shape}")
    if not np.all(np.isfinite(M)) or M.min() < 0:
        raise ValueError(f"{name} must hold finite non-negative probabilities P(b|a)")
    return M


Weighting = Literal["log", "lift", "product"]


def stationary(P: np.ndarray) -> np.ndarray:
    """Stationary distribution pi = pi P of a row-stochastic co-occurrence matrix: the concepts' base rates.

    Rows that do not sum to one are normalised first; a matrix with a zero row
    gets the uniform distribution for that row.
    """
    P = _check_cooccurrence(P)
    rows = P.sum(axis=1, keepdims=True)
    T = np.where(rows > 0, P / np.where(rows > 0, rows, 1.0), 1.0 / P.shape[0])
    w, V = np.linalg.eig(T.T)
    pi = np.abs(np.real(V[:, int(np.argmin(np.abs(w - 1.0)))]))
    return pi / pi.sum()


def pair_weights(h: int, decay: float) -> np.ndarray:
    """``omega[i, j]`` for ``i < j``: ``decay^(j-i-1)`` scaled to sum to h - 1 (zero elsewhere).

    The scaling gives every window the total pairwise weight of a chain of
    adjacent clips, so ``beta`` means the same whatever h and the decay.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    dist = np.arange(h)[None, :] - np.arange(h)[:, None]
    omega = np.where(dist > 0, float(decay) ** np.clip(dist - 1, 0, None), 0.0)
    total = omega.sum()
    return omega * (h - 1) / total if total > 0 else omega


def clip_edge_weights(confidences, cooccurrence, *, weighting: Weighting = "log", beta: float = 0.5,
                      decay: float = 0.6, floor: float = 1e-3) -> np.ndarray:
    """Edge weights W (h, k, h, k) of the GMCP graph from detector confidences and co-occurrence.

    ``P(b|a) = cooccurrence[a, b]`` is the probability of concept b in a later
    clip of the window given concept a in an earlier one (see
    :mod:`detectors.cooccurrence`); ``c[i, a]`` the detector confidence of concept
    a in clip i, floored at ``floor``; ``omega`` from :func:`pair_weights`
    (temporal decay per clip of distance beyond adjacent; 1 = no decay).  For i < j:

    * ``"log"`` (default): ``W[i,a,j,b] = beta*omega[i,j]*log P(b|a)
      + (log c[i,a] + log c[j,b]) / (h-1)``.  Each clip sits in h - 1 pairs, so the
      objective is exactly ``sum_i log c[i,a_i] + beta * sum_{i<j} omega[i,j] *
      log P(a_j|a_i)``: the MAP labelling of a pairwise random field whose unary
      terms are the detectors and whose pairwise terms are the co-occurrences.
    * ``"lift"``: as ``"log"`` with ``log P(b|a)`` replaced by the lift
      ``log(P(b|a) / pi(b))``, pi the concepts' base rates (:func:`stationary`).
      ``log P(b|a)`` also carries the prior of b, so with a larger beta it drags
      every clip towards the commonest concept ("normal") and the rare ones
      are lost; the lift rewards only what co-occurs more than chance.  On
      held-out generated clips (validation seed 5) it was the only form whose
      accuracy rose with beta (see detectors/models/README.md).
    * ``"product"``: ``W[i,a,j,b] = omega[i,j] * c[i,a] * c[j,b] * P(b|a) / (h-1)``,
      a weighted mean pair score in [0, 1] (strong when both detectors fire and
      the concepts go together).

    Measured on synthetic windows (bench/bench_gmcp.py: Markov-chain labels,
    a fifth of the clips with a confident wrong detection) both forms beat the
    per-clip arg-max by two to four points of clip accuracy, and which of the
    two is ahead changes with the seed; ``beta`` and ``decay`` (and the form)
    are worth tuning on held-out clips.
    """
    conf = _check_confidences(confidences)
    P = _check_cooccurrence(cooccurrence)
    if P.shape[0] != conf.shape[1]:
        raise ValueError(f"confidences have {conf.shape[1]} concepts but the co-occurrence matrix has {P.shape[0]}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be >= 0, got {beta}")
    if not 0 < floor < 1:
        raise ValueError(f"floor must be in (0, 1), got {floor}")
    h, k = conf.shape
    omega = pair_weights(h, decay)
    if h < 2:
        return np.zeros((h, k, h, k))
    upper = (omega > 0).astype(float)
    c = np.clip(conf, floor, None)
    if weighting in ("log", "lift"):
        logc = np.log(c) / (h - 1)
        logP = np.log(np.clip(P, 1e-12, None))
        if weighting == "lift":
            logP = logP - np.log(np.clip(stationary(P), 1e-12, None))[None, :]
        W = beta * np.einsum("ij,ab->iajb", omega, logP)
        W += np.einsum("ij,ia->iaj", upper, logc)[:, :, :, None]
        W += np.einsum("ij,jb->ijb", upper, logc)[:, None, :, :]
        return W
    if weighting == "product":
        return np.einsum("ij,ia,jb,ab->iajb", omega, c, c, P) / (h - 1)
    raise ValueError(f"weighting must be 'log', 'lift' or 'product', got {weighting!r}")


def label_clips(confidences, cooccurrence, *, weighting: Weighting = "log", beta: float = 0.5,
                decay: float = 0.6, time_limit: float = 1.0, solver: Solver = "highs",
                warm_start: Optional[Sequence[int]] = None, lp_first: bool = True) -> GMCPResult:
    """Label h clips jointly from detector confidences (h, k) and a co-occurrence matrix (k, k).

    Edge weights as in :func:`clip_edge_weights`; one clip is labelled by the
    arg-max of its confidences (``method="argmax-fallback"``).
    """
    conf = _check_confidences(confidences)
    W = clip_edge_weights(conf, cooccurrence, weighting=weighting, beta=beta, decay=decay)
    unary = conf if conf.shape[0] == 1 else None
    return solve_edges(W, unary=unary, time_limit=time_limit, solver=solver, warm_start=warm_start,
                       lp_first=lp_first)


def classify_video(confidences, matrices: Mapping[str, np.ndarray], *, window: Optional[int] = None,
                   weighting: Weighting = "log", beta: float = 0.5, decay: float = 0.6,
                   time_limit: float = 1.0, solver: Solver = "highs") -> tuple[str, dict[str, float]]:
    """Event class of a video: the class whose co-occurrence matrix gives the largest GMCP optimum.

    ``confidences``: (clips, k) detector scores of the whole video; ``matrices``:
    class name -> (k, k) co-occurrence matrix.  ``window``: None solves the whole
    video as one graph; a number of clips splits it into consecutive windows of
    that length (the last may be shorter) and sums their optima, which bounds
    the cost of long videos.  Returns the winning class and the objective per
    class (ties go to the first class in ``matrices``' order).  An objective that
    the solver could not prove optimal within ``time_limit`` is logged.
    """
    if not matrices:
        raise ValueError("classify_video needs at least one class matrix")
    conf = _check_confidences(confidences)
    if conf.shape[0] < 2:
        raise ValueError("classify_video needs at least two clips: one clip has no co-occurrence edges")
    if window is not None and not (isinstance(window, int) and window >= 2):
        raise ValueError(f"window must be None or an integer >= 2, got {window!r}")
    step = window or conf.shape[0]
    chunks = [conf[i:i + step] for i in range(0, conf.shape[0], step)]
    objectives: dict[str, float] = {}
    for name, M in matrices.items():
        P = _check_cooccurrence(M, f"matrix of class {name!r}")
        total = 0.0
        for chunk in chunks:
            res = label_clips(chunk, P, weighting=weighting, beta=beta, decay=decay,
                              time_limit=time_limit, solver=solver)
            if not res.optimal:
                log.warning("classify_video: class %r, %d clips: %s", name, len(chunk), res.fallback_reason)
            total += res.objective
        objectives[name] = total
    best = max(objectives, key=lambda n: objectives[n])  # max keeps the first of equal keys
    return best, objectives


# -- the per-camera sliding window ---------------------------------------------------------
@dataclass(frozen=True)
class ClipLabel:
    """Label of the newest clip of a camera's window."""

    label: int
    score: float  # detector confidence of ``label`` in the newest clip
    objective: float
    method: str
    optimal: bool
    window: int  # clips in the window that produced the label
    fallback_reason: Optional[str] = None
    solve_ms: float = 0.0
    window_labels: tuple[int, ...] = field(default=())


class GMCPWindow:
    """The last h clips' confidences of one camera; labels each new clip with GMCP.

    Call :meth:`push` with the (k,) confidences of every new clip.  Fewer than h
    clips at start-up: the smaller window is solved; one clip: arg-max.  The
    previous window's labels, shifted by one, warm-start the next solve.
    """

    def __init__(self, cooccurrence, h: int = 8, *, weighting: Weighting = "log", beta: float = 0.5,
                 decay: float = 0.6, time_limit: float = 1.0, solver: Solver = "highs") -> None:
        self.P = _check_cooccurrence(cooccurrence)
        if not (isinstance(h, int) and h >= 1):
            raise ValueError(f"window h must be an integer >= 1, got {h!r}")
        if solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
        # Checks weighting, beta and decay now rather than at the first clip.
        clip_edge_weights(np.full((2, self.P.shape[0]), 0.5), self.P, weighting=weighting, beta=beta, decay=decay)
        self.h, self.weighting, self.beta, self.decay = h, weighting, beta, decay
        self.time_limit, self.solver = time_limit, solver
        self.k = self.P.shape[0]
        self._clips: deque[np.ndarray] = deque(maxlen=h)
        self._labels: deque[int] = deque(maxlen=h)

    def __len__(self) -> int:
        return len(self._clips)

    def push(self, confidences) -> ClipLabel:
        conf = np.asarray(confidences, dtype=float)
        if conf.shape != (self.k,):
            raise ValueError(f"clip confidences must have shape ({self.k},), got {conf.shape}")
        _check_confidences(conf[None, :])
        self._clips.append(conf)
        self._labels.append(int(np.argmax(conf)))
        window = np.stack(self._clips)
        res = label_clips(window, self.P, weighting=self.weighting, beta=self.beta, decay=self.decay,
                          time_limit=self.time_limit,
                          solver=self.solver, warm_start=np.array(self._labels, dtype=np.int64))
        self._labels = deque((int(v) for v in res.labels), maxlen=self.h)
        lab = int(res.labels[-1])
        return ClipLabel(label=lab, score=float(conf[lab]), objective=res.objective, method=res.method,
                         optimal=res.optimal, window=len(window), fallback_reason=res.fallback_reason,
                         solve_ms=res.solve_ms, window_labels=tuple(int(v) for v in res.labels))
