"""First-order Sugeno ANFIS with Jang's hybrid learning.

Five layers (Jang 1993): Gaussian membership functions of each input, product
firing strength per rule, normalisation, linear consequent per rule, sum.

* Membership grades come from :func:`skfuzzy.gaussmf`, i.e. the convention
  ``exp(-(x - c)^2 / (2 sigma^2))``; the premise gradients below are derived for
  exactly that convention (``d log mu / dc = (x - c) / sigma^2`` and
  ``d log mu / dsigma = (x - c)^2 / sigma^3``).  One public package assumes
  ``exp(-d^2/sigma^2)`` in its derivative while evaluating gaussmf; not here.
* Structure: a grid partition (``ANFIS(n_mfs=2)``: every combination of each
  input's MFs is a rule) or subtractive clustering (``ANFIS(radii=0.5)`` or one
  radius per input; one rule per cluster centre, MF width ``r_a / sqrt(8)`` as
  in Chiu's and MATLAB's genfis2).
* Hybrid learning: in each epoch the consequents are the least-squares solution
  for the current premises (forward pass); then the premises take one gradient
  step of length ``step`` (Jang's normalised step) on the squared error
  (backward pass).  The step grows by 10% after four straight error decreases
  and shrinks by 10% after two up/down alternations.  The premises of the epoch
  with the least checking error (training error without checking data) are
  kept, and training ENDS with a least-squares refit of the consequents for the
  kept premises, so the returned model is the one that was scored (the trap of
  public packages, which hand back consequents fitted before the last premise
  update).
* Inputs are scaled to [0, 1] from the training range (a constant input gets
  range 1).  Firing strengths that underflow for inputs far outside the
  training range are renormalised in the log domain, so no NaN comes out.

Models save to and load from JSON (:data:`FORMAT`, :data:`VERSION`).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from pydantic import BaseModel, ValidationError, model_validator
from skfuzzy import gaussmf
from threadpoolctl import threadpool_limits  # installed with scikit-learn

from geo.jsonfile import check_tag, format_validation_error, read_model
from inference.subclust import subtractive_clustering

log = logging.getLogger(__name__)

FORMAT = "imminence.anfis"
VERSION = 1
_MIN_SIGMA = 1e-3  # in scaled units; keeps MFs from collapsing during gradient descent
_TINY = 1e-280  # below this total firing strength, normalise in the log domain


class ANFISError(ValueError):
    """Bad training data, bad input or an unusable model file."""


class ANFISStructure(BaseModel):
    """How the rule base was built: a grid of ``n_mfs`` or subtractive clustering with ``radii``."""

    n_mfs: Union[int, list[int], None] = None
    radii: Union[float, list[float], None] = None


class ANFISTraining(BaseModel):
    """What :meth:`ANFIS.fit` recorded (step and ridge are written but not read back)."""

    history: Optional[dict[str, Any]] = None
    best_epoch: Optional[int] = None
    seconds: Optional[float] = None


class ANFISFile(BaseModel):
    """The model file written by :meth:`ANFIS.save`; unknown keys are ignored, format and version checked first."""

    format: str
    version: int
    input_names: list[str]
    output_name: str
    x_min: list[float]
    x_range: list[float]
    centres: list[list[float]]
    sigmas: list[list[float]]
    rules: list[list[int]]
    consequents: list[list[float]]
    structure: Optional[ANFISStructure] = None
    training: Optional[ANFISTraining] = None
    meta: Optional[dict[str, Any]] = None

    @model_validator(mode="before")
    @classmethod
    def _format_first(cls, data: Any) -> Any:
        check_tag(data, "format", FORMAT, "not an ANFIS model file (format {found!r}, expected {expected!r})")
        return check_tag(data, "version", VERSION, "model format version {found!r} is not supported "
                         "(this build reads version {expected}); retrain or convert the model")


@dataclass
class Explanation:
    """One rule's part in a prediction: ``sum(strength * output)`` over rules is the prediction."""

    rule: int
    text: str
    strength: float
    output: float

    @property
    def contribution(self) -> float:
        return self.strength * self.output


def _labels(k: int) -> list[str]:
    return {1: ["any"], 2: ["low", "high"], 3: ["low", "medium", "high"],
            4: ["very low", "low", "high", "very high"],
            5: ["very low", "low", "medium", "high", "very high"]}.get(k, [])


def _label_of(centre: float) -> str:
    """Linguistic label of an MF from where its centre lies in the (scaled) training range."""
    for bound, name in ((0.1, "very low"), (0.35, "low"), (0.65, "medium"), (0.9, "high")):
        if centre < bound:
            return name
    return "very high"


class ANFIS:
    """First-order Sugeno ANFIS: ``ANFIS(n_mfs=2)`` (grid partition) or ``ANFIS(radii=0.5)`` (clustering).

    ``step`` is the initial length of each premise gradient step in scaled units;
    ``ridge`` a small Tikhonov term that keeps the least-squares problem solvable
    when a rule hardly fires.
    """

    def __init__(self, n_mfs: int | Sequence[int] | None = None, radii: float | Sequence[float] | None = None,
                 *, step: float = 0.01, ridge: float = 1e-9, input_names: Optional[Sequence[str]] = None,
                 output_name: str = "y") -> None:
        if (n_mfs is None) == (radii is None):
            if n_mfs is None and radii is None:
                n_mfs = 2
            else:
                raise ANFISError("give either n_mfs (grid partition) or radii (subtractive clustering), not both")
        self.n_mfs = n_mfs
        self.radii = radii
        self.step = float(step)
        self.ridge = float(ridge)
        self.input_names = list(input_names) if input_names is not None else None
        self.output_name = output_name
        self.history_: dict[str, list[float]] = {"train": [], "check": [], "step": []}
        self.best_epoch_: Optional[int] = None
        self.fit_seconds_: Optional[float] = None
        self.meta: dict[str, Any] = {}
        self._fitted = False

    # -- structure -----------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return len(self.x_min)

    @property
    def n_rules(self) -> int:
        return int(self.rule_mfs.shape[0])

    @property
    def n_params(self) -> int:
        """Premise (centre and width of every MF) plus consequent parameters."""
        premise = 2 * sum(len(c) for c in self.centres)
        return premise + self.n_rules * (self.n_inputs + 1)

    def _init_structure(self, Xs: np.ndarray) -> None:
        d = Xs.shape[1]
        if self.radii is not None:
            centres = subtractive_clustering(Xs, self.radii)
            ra = np.broadcast_to(np.asarray(self.radii, dtype=float), (d,))
            k = len(centres)
            self.centres = [centres[:, i].copy() for i in range(d)]
            self.sigmas = [np.full(k, max(ra[i] / math.sqrt(8.0), _MIN_SIGMA)) for i in range(d)]
            self.rule_mfs = np.tile(np.arange(k), (d, 1)).T  # rule r uses MF r of every input
        else:
            counts = np.broadcast_to(np.asarray(self.n_mfs, dtype=int), (d,))
            if np.any(counts < 1):
                raise ANFISError(f"n_mfs must be >= 1 per input, got {counts.tolist()}")
            self.centres, self.sigmas = [], []
            for m in counts:
                if m == 1:
                    self.centres.append(np.array([0.5]))
                    self.sigmas.append(np.array([0.5]))
                else:
                    # neighbouring MFs cross at grade 0.5
                    self.centres.append(np.linspace(0.0, 1.0, m))
                    self.sigmas.append(np.full(m, (0.5 / (m - 1)) / math.sqrt(2 * math.log(2))))
            self.rule_mfs = np.array(np.meshgrid(*[np.arange(m) for m in counts], indexing="ij")).reshape(d, -1).T

    # -- input checks and scaling ------------------------------------------------------
    def _names(self, d: int) -> list[str]:
        if self.input_names is not None:
            if len(self.input_names) != d:
                raise ANFISError(f"{len(self.input_names)} input names for {d} input columns")
            return list(self.input_names)
        return [f"x{i + 1}" for i in range(d)]

    def _check_X(self, X: Any, what: str = "X") -> np.ndarray:
        try:
            X = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ANFISError(f"{what} is not numeric: {exc}") from None
        if X.ndim == 1 and self._fitted and self.n_inputs > 1 and X.shape[0] == self.n_inputs:
            X = X[None, :]
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise ANFISError(f"{what} must be 2-D (samples, inputs), got shape {X.shape}")
        if self._fitted and X.shape[1] != self.n_inputs:
            raise ANFISError(f"{what} has {X.shape[1]} columns, the model has {self.n_inputs} inputs "
                             f"({', '.join(self.input_names or [])})")
        bad = ~np.isfinite(X)
        if bad.any():
            rows, cols = np.nonzero(bad)
            names = self._names(X.shape[1])
            col = int(cols[0])
            raise ANFISError(f"{what}: {int(bad.sum())} NaN/infinite value(s), first in column {col} "
                             f"('{names[col]}') at row {int(rows[0])}")
        return X

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.x_min) / self.x_range

    # -- forward pass ----------------------------------------------------------------------
    def _normalised_firing(self, Xs: np.ndarray) -> np.ndarray:
        """Layers 1-3: normalised firing strength of every rule, shape (n, rules)."""
        n = Xs.shape[0]
        w = np.ones((n, self.n_rules))
        for i in range(self.n_inputs):
            mu = gaussmf(Xs[:, i:i + 1], self.centres[i][None, :], self.sigmas[i][None, :])  # (n, K_i)
            w *= mu[:, self.rule_mfs[:, i]]
        total = w.sum(1)
        ok = total > _TINY
        wbar = np.empty_like(w)
        wbar[ok] = w[ok] / total[ok, None]
        if not ok.all():
            # Far outside the training range every product underflows; the same
            # memberships in the log domain give the normalised strengths exactly.
            lw = np.zeros((int((~ok).sum()), self.n_rules))
            Xb = Xs[~ok]
            for i in range(self.n_inputs):
                c = self.centres[i][self.rule_mfs[:, i]]
                s = self.sigmas[i][self.rule_mfs[:, i]]
                lw -= (Xb[:, i:i + 1] - c[None, :]) ** 2 / (2 * s[None, :] ** 2)
            lw -= lw.max(1, keepdims=True)
            e = np.exp(lw)
            wbar[~ok] = e / e.sum(1, keepdims=True)
        return wbar

    @staticmethod
    def _design(Xs: np.ndarray, wbar: np.ndarray) -> np.ndarray:
        """Least-squares design matrix: column block r is wbar_r * [x, 1]."""
        n = Xs.shape[0]
        xa = np.hstack([Xs, np.ones((n, 1))])
        return (wbar[:, :, None] * xa[:, None, :]).reshape(n, -1)

    def _rule_outputs(self, Xs: np.ndarray) -> np.ndarray:
        """Layer 4 before weighting: each rule's linear consequent, shape (n, rules)."""
        return Xs @ self.consequents[:, :-1].T + self.consequents[:, -1][None, :]

    def _lse(self, Xs: np.ndarray, wbar: np.ndarray, y: np.ndarray) -> np.ndarray:
        A = self._design(Xs, wbar)
        p = A.shape[1]
        if self.ridge > 0:
            A = np.vstack([A, math.sqrt(self.ridge) * np.eye(p)])
            y = np.concatenate([y, np.zeros(p)])
        theta, *_ = np.linalg.lstsq(A, y, rcond=None)
        return theta.reshape(self.n_rules, self.n_inputs + 1)

    # -- training ----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, epochs: int = 100, X_check: Any = None, y_check: Any = None, *,
            input_names: Optional[Sequence[str]] = None, tol: float = 0.0, progress: bool = False) -> "ANFIS":
        """Hybrid learning; keeps the epoch with the least checking (or training) error."""
        # The matrices are small: one BLAS thread is faster than several fighting over shared cores.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y, epochs, X_check, y_check, input_names, tol, progress)

    def _fit(self, X: Any, y: Any, epochs: int, X_check: Any, y_check: Any,
             input_names: Optional[Sequence[str]], tol: float, progress: bool) -> "ANFIS":
        t0 = time.perf_counter()
        if input_names is not None:
            self.input_names = list(input_names)
        self._fitted = False
        X = self._check_X(X, "X")
        y = self._check_y(y, X.shape[0], "y")
        if X.shape[0] == 0:
            raise ANFISError("empty training set: X has no rows")
        self.input_names = self._names(X.shape[1])
        has_check = X_check is not None or y_check is not None
        if has_check:
            if X_check is None or y_check is None:
                raise ANFISError("give both X_check and y_check, or neither")
            Xc = self._check_X(X_check, "X_check")
            if Xc.shape[1] != X.shape[1]:
                raise ANFISError(f"X_check has {Xc.shape[1]} columns, X has {X.shape[1]}")
            yc = self._check_y(y_check, Xc.shape[0], "y_check")
            if Xc.shape[0] == 0:
                raise ANFISError("empty checking set: X_check has no rows")
        if epochs < 1:
            raise ANFISError(f"epochs must be >= 1, got {epochs}")

        self.x_min = X.min(0)
        rng = X.max(0) - self.x_min
        self.x_range = np.where(rng > 0, rng, 1.0)
        Xs = self._scale(X)
        self._init_structure(Xs)
        if X.shape[0] < self.n_params:
            raise ANFISError(f"{X.shape[0]} training samples for {self.n_params} parameters "
                             f"({self.n_rules} rules x {self.n_inputs + 1} consequents + premises); "
                             f"give more data, fewer MFs or larger radii")
        Xcs = self._scale(Xc) if has_check else None

        self.history_ = {"train": [], "check": [], "step": []}
        step = self.step
        best = (math.inf, -1, None)
        last_dir: list[int] = []  # +1 error went up, -1 went down
        prev_err = math.inf
        iterator = range(epochs)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, desc="anfis", unit="epoch", leave=False)
        for epoch in iterator:
            wbar = self._normalised_firing(Xs)
            self.consequents = self._lse(Xs, wbar, y)
            Y = self._rule_outputs(Xs)
            f = (wbar * Y).sum(1)
            e = f - y
            err = float(np.sqrt(np.mean(e ** 2)))
            chk = float(np.sqrt(np.mean((self._predict_scaled(Xcs) - yc) ** 2))) if has_check else math.nan
            self.history_["train"].append(err)
            self.history_["check"].append(chk)
            self.history_["step"].append(step)
            score = chk if has_check else err
            if score < best[0]:
                best = (score, epoch, self._premises_copy())
            if err <= tol:
                break
            # step-size rules (Jang): +10% after 4 straight decreases, -10% after two alternations
            if epoch > 0:
                last_dir.append(1 if err > prev_err else -1)
                last_dir = last_dir[-4:]
                if len(last_dir) == 4 and all(d == -1 for d in last_dir):
                    step *= 1.1
                    last_dir = []
                elif len(last_dir) == 4 and last_dir in ([1, -1, 1, -1], [-1, 1, -1, 1]):
                    step *= 0.9
                    last_dir = []
            prev_err = err
            if epoch == epochs - 1:
                break
            self._premise_step(Xs, wbar, Y, f, e, step)

        _, self.best_epoch_, premises = best
        self.centres, self.sigmas = premises
        # the returned model: kept premises with consequents refitted by least squares for them
        self.consequents = self._lse(Xs, self._normalised_firing(Xs), y)
        self._fitted = True
        self.fit_seconds_ = time.perf_counter() - t0
        self.train_rmse_ = float(np.sqrt(np.mean((self.predict(X) - y) ** 2)))
        self.check_rmse_ = float(np.sqrt(np.mean((self.predict(Xc) - yc) ** 2))) if has_check else None
        return self

    def _check_y(self, y: Any, n: int, what: str) -> np.ndarray:
        try:
            y = np.asarray(y, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            raise ANFISError(f"{what} is not numeric: {exc}") from None
        if y.shape[0] != n:
            raise ANFISError(f"{what} has {y.shape[0]} values for {n} rows")
        bad = ~np.isfinite(y)
        if bad.any():
            raise ANFISError(f"{what}: {int(bad.sum())} NaN/infinite value(s), first at row {int(np.argmax(bad))}")
        return y

    def _premises_copy(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [c.copy() for c in self.centres], [s.copy() for s in self.sigmas]

    def _premise_step(self, Xs: np.ndarray, wbar: np.ndarray, Y: np.ndarray, f: np.ndarray,
                      e: np.ndarray, step: float) -> None:
        """One normalised gradient step on E = 1/2 sum e^2 for every MF centre and width."""
        # dE/dlog w_r = e * wbar_r * (y_r - f)
        G = e[:, None] * wbar * (Y - f[:, None])
        gc, gs = [], []
        for i in range(self.n_inputs):
            idx = self.rule_mfs[:, i]
            c = self.centres[i][idx]
            s = self.sigmas[i][idx]
            diff = Xs[:, i:i + 1] - c[None, :]
            dc = (G * diff).sum(0) / s ** 2
            ds = (G * diff ** 2).sum(0) / s ** 3
            k = len(self.centres[i])
            gc.append(np.bincount(idx, weights=dc, minlength=k))
            gs.append(np.bincount(idx, weights=ds, minlength=k))
        norm = math.sqrt(sum(float((g ** 2).sum()) for g in gc + gs))
        if norm == 0 or not math.isfinite(norm):
            return
        eta = step / norm
        for i in range(self.n_inputs):
            self.centres[i] = self.centres[i] - eta * gc[i]
            self.sigmas[i] = np.maximum(self.sigmas[i] - eta * gs[i], _MIN_SIGMA)

    # -- inference ---------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self._fitted:
            raise ANFISError("the model is not trained: call fit() or load() first")

    def _predict_scaled(self, Xs: np.ndarray) -> np.ndarray:
        wbar = self._normalised_firing(Xs)
        return (wbar * self._rule_outputs(Xs)).sum(1)

    def predict(self, X: Any) -> np.ndarray:
        """Output for each row of X (n, inputs); a single row may be given as a 1-D array."""
        self._require_fitted()
        X = self._check_X(X, "X")
        if X.shape[0] == 0:
            return np.zeros(0)
        return self._predict_scaled(self._scale(X))

    def strengths(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Normalised firing strengths and consequent outputs, both (n, rules), for many rows.

        The prediction of row j is ``(strengths * outputs)[j].sum()``; this is
        :meth:`explain` vectorised, for services that explain every score.
        """
        self._require_fitted()
        Xs = self._scale(self._check_X(X, "X"))
        return self._normalised_firing(Xs), self._rule_outputs(Xs)

    def mf_label(self, i: int, k: int) -> str:
        """Linguistic label of MF k of input i: by rank for a grid partition, else by its centre."""
        centres = self.centres[i]
        names = _labels(len(centres)) if self.radii is None else []
        if names:
            return names[int(np.argsort(np.argsort(centres, kind="stable"))[k])]
        return _label_of(float(centres[k]))

    def rule_text(self, r: int, consequent: bool = True) -> str:
        """Rule r in words; without ``consequent`` only 'IF ... THEN output' (the value is per input)."""
        parts = []
        for i, name in enumerate(self.input_names):
            k = int(self.rule_mfs[r, i])
            c = self.centres[i][k] * self.x_range[i] + self.x_min[i]
            parts.append(f"{name} is {self.mf_label(i, k)} (~{c:.3g})")
        if not consequent:
            return f"IF {' AND '.join(parts)} THEN {self.output_name}"
        th = self.consequents[r]
        lin = " + ".join(f"{th[i]:.3g}*{n}" for i, n in enumerate(self.input_names))
        return f"IF {' AND '.join(parts)} THEN {self.output_name} = {lin} + {th[-1]:.3g} (scaled inputs)"

    def rules(self) -> list[str]:
        """The rule base in words, e.g. 'IF hour is high (~22) AND violent_movement is low (~0) THEN ...'."""
        self._require_fitted()
        return [self.rule_text(r) for r in range(self.n_rules)]

    def explain(self, x: Any, top: Optional[int] = None) -> list[Explanation]:
        """Each rule's normalised firing strength and consequent output for one input, strongest first.

        ``sum(e.strength * e.output)`` over all rules equals ``predict(x)``; with
        ``top`` only the strongest rules are returned.
        """
        self._require_fitted()
        X = self._check_X(np.asarray(x, dtype=float).reshape(1, -1), "x")
        Xs = self._scale(X)
        wbar = self._normalised_firing(Xs)[0]
        out = self._rule_outputs(Xs)[0]
        order = np.argsort(-wbar, kind="stable")
        if top is not None:
            order = order[:top]
        return [Explanation(int(r), self.rule_text(int(r)), float(wbar[r]), float(out[r])) for r in order]

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._require_fitted()
        return {
            "format": FORMAT, "version": VERSION,
            "input_names": self.input_names, "output_name": self.output_name,
            "x_min": self.x_min.tolist(), "x_range": self.x_range.tolist(),
            "centres": [c.tolist() for c in self.centres], "sigmas": [s.tolist() for s in self.sigmas],
            "rules": self.rule_mfs.tolist(), "consequents": self.consequents.tolist(),
            "structure": {"n_mfs": self.n_mfs if not isinstance(self.n_mfs, np.ndarray) else self.n_mfs.tolist(),
                          "radii": self.radii},
            "training": {"history": self.history_, "best_epoch": self.best_epoch_,
                         "seconds": self.fit_seconds_, "step": self.step, "ridge": self.ridge},
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (format ``imminence.anfis``, version :data:`VERSION`)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, d: Any, source: str = "<dict>") -> "ANFIS":
        """A model from the dict :meth:`to_dict` made; ``source`` names it in error messages."""
        try:
            spec = ANFISFile.model_validate(d)
        except ValidationError as exc:
            raise ANFISError(format_validation_error(source, exc)) from None
        return cls._from_file(spec, source)

    @classmethod
    def _from_file(cls, d: ANFISFile, source: str) -> "ANFIS":
        st = d.structure or ANFISStructure()
        m = cls(radii=st.radii) if st.radii is not None else cls(n_mfs=st.n_mfs or 2)
        m.input_names = list(d.input_names)
        m.output_name = d.output_name
        m.x_min = np.asarray(d.x_min, dtype=float)
        m.x_range = np.asarray(d.x_range, dtype=float)
        m.centres = [np.asarray(c, dtype=float) for c in d.centres]
        m.sigmas = [np.asarray(s, dtype=float) for s in d.sigmas]
        try:
            m.rule_mfs = np.asarray(d.rules, dtype=int)
            m.consequents = np.asarray(d.consequents, dtype=float)
        except ValueError as exc:  # ragged rows
            raise ANFISError(f"{source}: malformed field: {exc}") from None
        dd = len(m.input_names)
        problems = []
        if m.x_min.shape != (dd,) or m.x_range.shape != (dd,) or len(m.centres) != dd or len(m.sigmas) != dd:
            problems.append(f"{dd} input names but scaler/MF lists of other lengths")
        if m.rule_mfs.ndim != 2 or m.rule_mfs.shape[1] != dd:
            problems.append(f"'rules' must be (rules, {dd})")
        elif m.consequents.shape != (m.rule_mfs.shape[0], dd + 1):
            problems.append(f"'consequents' must be ({m.rule_mfs.shape[0]}, {dd + 1}), got {m.consequents.shape}")
        else:
            for i in range(dd):
                if m.centres[i].shape != m.sigmas[i].shape or m.rule_mfs[:, i].max(initial=0) >= len(m.centres[i]):
                    problems.append(f"MFs of input {i} ('{m.input_names[i]}') do not match the rules")
        arrays = [m.x_min, m.x_range, m.consequents, *m.centres, *m.sigmas]
        if not problems and not all(np.all(np.isfinite(a)) for a in arrays):
            problems.append("non-finite parameters")
        if not problems and (np.any(m.x_range <= 0) or any(np.any(s <= 0) for s in m.sigmas)):
            problems.append("ranges and MF widths must be positive")
        if problems:
            raise ANFISError(f"{source}: invalid model: {'; '.join(problems)}")
        tr = d.training or ANFISTraining()
        m.history_ = tr.history or {"train": [], "check": [], "step": []}
        m.best_epoch_ = tr.best_epoch
        m.fit_seconds_ = tr.seconds
        m.meta = d.meta or {}
        m._fitted = True
        return m

    @classmethod
    def load(cls, path: str | Path) -> "ANFIS":
        """Read a model written by :meth:`save`; a clear ANFISError for other versions or missing fields."""
        spec = read_model(path, ANFISFile, ANFISError, "model")
        return cls._from_file(spec, str(path))
