"""One binary classifier per concept, saved as plain JSON; the scorer gives each clip a confidence per concept.

Training (:func:`train_concept_model`) fits, for every concept of the vocabulary,
a scikit-learn logistic regression (class-balanced, L2) one-vs-rest on the clip
feature vectors after a fixed transform (signed ``log1p``, then standardisation).
Logistic regression gives probabilities directly; with balanced class weights they
are pulled towards 0.5 for rare concepts, so a per-concept Platt rescaling
(sigmoid of ``a * margin + b``, fitted on cross-validated margins) restores their
calibration, which GMCP's edge weights rely on.
Alternatively (``link="softmax"``, ``concepts train --link softmax``) one
multinomial logistic regression over all concepts with a fitted temperature; on
the validation seed it lost to the one-vs-rest default (detectors/models/README.md).

The file holds only numbers and names (``format``, feature definition and names,
the transform, scaler mean/scale, per concept weights, bias and Platt pair, the
concept vocabulary): :meth:`ConceptModel.load` reads it with ``json`` and
validates it with pydantic, so no pickle and no code is ever loaded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detectors.concepts.features import FEATURE_NAMES, FEATURE_VERSION

FORMAT = "imminence.concept-classifiers/1"


class ConceptModelError(ValueError):
    """A concept model file that cannot be used, or training data that cannot train one."""


class _ConceptEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: list[float]
    bias: float
    platt_a: float = 1.0
    platt_b: float = 0.0
    positives: int = Field(ge=0, description="training clips labelled with the concept")
    trained: bool = Field(description="false when the training set had no positive (score = prior)")


class ConceptModelFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    format: str = FORMAT
    feature_version: str
    feature_names: list[str]
    transform: str = "signed-log1p"
    link: Literal["sigmoid", "softmax"] = Field(
        default="sigmoid", description="sigmoid: independent one-vs-rest probabilities (Platt pair per concept); "
        "softmax: one multinomial model over all concepts (platt_a is the shared inverse temperature)")
    mean: list[float]
    scale: list[float]
    concepts: list[str] = Field(min_length=2)
    classifiers: dict[str, _ConceptEntry]
    trained_on: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "ConceptModelFile":
        n = len(self.feature_names)
        if len(self.mean) != n or len(self.scale) != n:
            raise ValueError(f"mean/scale have {len(self.mean)}/{len(self.scale)} entries for {n} features")
        if set(self.classifiers) != set(self.concepts):
            raise ValueError(f"classifiers {sorted(self.classifiers)} do not match concepts {sorted(self.concepts)}")
        for c, e in self.classifiers.items():
            if len(e.weights) != n:
                raise ValueError(f"classifier {c!r} has {len(e.weights)} weights for {n} features")
        return self


def transform(X: np.ndarray) -> np.ndarray:
    """Signed log1p: tames heavy-tailed speeds, counts and durations."""
    return np.sign(X) * np.log1p(np.abs(X))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class ConceptModel:
    """Scores clip feature vectors: :meth:`scores` -> (n, k) probabilities in ``concepts`` order."""

    def __init__(self, spec: ConceptModelFile) -> None:
        if spec.format != FORMAT:
            raise ConceptModelError(f"concept model format {spec.format!r}; expected {FORMAT!r}")
        if spec.feature_version != FEATURE_VERSION or tuple(spec.feature_names) != FEATURE_NAMES:
            raise ConceptModelError(
                f"concept model was trained on features {spec.feature_version!r} ({len(spec.feature_names)} names); "
                f"this code computes {FEATURE_VERSION!r} ({len(FEATURE_NAMES)}): retrain with `imminence concepts train`")
        self.spec = spec
        self.concepts: list[str] = list(spec.concepts)
        self.mean = np.asarray(spec.mean)
        self.scale = np.where(np.asarray(spec.scale) > 0, np.asarray(spec.scale), 1.0)
        self.W = np.array([spec.classifiers[c].weights for c in self.concepts])  # k x d
        self.b = np.array([spec.classifiers[c].bias for c in self.concepts])
        self.pa = np.array([spec.classifiers[c].platt_a for c in self.concepts])
        self.pb = np.array([spec.classifiers[c].platt_b for c in self.concepts])

    @property
    def version(self) -> str:
        return f"concepts:{self.spec.feature_version}:{self.spec.trained_on.get('digest', 'untracked')}"

    def margins(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != len(FEATURE_NAMES):
            raise ConceptModelError(f"feature vectors have {X.shape[1]} columns; expected {len(FEATURE_NAMES)}")
        Z = (transform(X) - self.mean) / self.scale
        return Z @ self.W.T + self.b

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of each concept for each clip, shape (n, k)."""
        z = self.pa * self.margins(X) + self.pb
        if self.spec.link == "softmax":
            return _softmax(z)
        return _sigmoid(z)

    def score_dict(self, x: np.ndarray) -> dict[str, float]:
        return {c: float(s) for c, s in zip(self.concepts, self.scores(x)[0])}

    def to_json(self) -> str:
        return self.spec.model_dump_json(indent=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ConceptModel":
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except OSError as exc:
            raise ConceptModelError(f"concept model {str(path)!r}: cannot read: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConceptModelError(f"concept model {str(path)!r}: not JSON: {exc}") from None
        try:
            spec = ConceptModelFile.model_validate(obj)
        except ValidationError as exc:
            errs = "; ".join(f"{' -> '.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
            raise ConceptModelError(f"concept model {str(path)!r}: {errs}") from None
        try:
            return cls(spec)
        except ConceptModelError as exc:
            raise ConceptModelError(f"{path}: {exc}") from None


def _platt(margins: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit sigmoid(a*m + b) to labels (Platt 1999, with his target smoothing)."""
    from sklearn.linear_model import LogisticRegression

    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4).fit(margins.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Inverse temperature a minimising the cross-validated log loss of softmax(a * logits)."""
    from scipy.optimize import minimize_scalar

    def nll(log_a: float) -> float:
        p = _softmax(np.exp(log_a) * logits)
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-4.0, 3.0), method="bounded").x))


def _train_softmax(Zs: np.ndarray, y_all: np.ndarray, concepts: Sequence[str], C: float, folds: int, seed: int,
                   balanced: bool) -> tuple[dict[str, "_ConceptEntry"], float]:
    """One multinomial logistic regression over the concepts seen; unseen ones get a Laplace-prior bias."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    seen = [c for c in concepts if (y_all == c).any()]
    idx = {c: i for i, c in enumerate(seen)}
    y = np.array([idx[v] for v in y_all])
    make = lambda: LogisticRegression(C=C, class_weight="balanced" if balanced else None, max_iter=3000)  # noqa: E731
    clf = make().fit(Zs, y)
    k = min(folds, int(np.bincount(y).min()))
    a = 1.0
    if k >= 2:
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        logits = cross_val_predict(make(), Zs, y, cv=cv, method="decision_function")
        a = _temperature(logits, y)
    entries: dict[str, _ConceptEntry] = {}
    low = float(clf.intercept_.min()) - np.log(len(y) + 2)  # never seen: far below every trained concept
    for c in concepts:
        if c in idx:
            i = idx[c]
            entries[c] = _ConceptEntry(weights=clf.coef_[i].tolist(), bias=float(clf.intercept_[i]), platt_a=a,
                                       platt_b=0.0, positives=int((y == i).sum()), trained=True)
        else:
            entries[c] = _ConceptEntry(weights=[0.0] * Zs.shape[1], bias=low / max(a, 1e-6), platt_a=a,
                                       platt_b=0.0, positives=0, trained=False)
    return entries, a


def train_concept_model(X: np.ndarray, labels: Sequence[str], concepts: Sequence[str], *, C: float = 0.5,
                        folds: int = 4, seed: int = 0, meta: Optional[dict] = None,
                        link: str = "sigmoid", balanced: bool = True) -> ConceptModel:
    """Fit calibrated concept classifiers from clip features and ground-truth labels.

    ``link="sigmoid"``: one class-balanced binary classifier per concept with a
    Platt pair each; ``"softmax"``: one multinomial model over all concepts
    (class-balanced when ``balanced``) with a temperature fitted on
    cross-validated logits, so the scores of a clip sum to one.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X = np.asarray(X, dtype=np.float64)
    labels = list(labels)
    if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
        raise ConceptModelError(f"training features must be (n, {len(FEATURE_NAMES)}); got {X.shape}")
    if len(labels) != len(X):
        raise ConceptModelError(f"{len(X)} feature rows but {len(labels)} labels")
    unknown = sorted(set(labels) - set(concepts))
    if unknown:
        raise ConceptModelError(f"labels {unknown} are not in the concept vocabulary {list(concepts)}")
    if len(set(labels)) < 2:
        raise ConceptModelError(f"training clips carry {len(set(labels))} distinct concept(s); need at least 2")
    Z = transform(X)
    mean, scale = Z.mean(axis=0), Z.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    Zs = (Z - mean) / scale
    y_all = np.asarray(labels)
    if link not in ("sigmoid", "softmax"):
        raise ConceptModelError(f"link must be 'sigmoid' or 'softmax', got {link!r}")
    entries: dict[str, _ConceptEntry] = {}
    if link == "softmax":
        entries, _ = _train_softmax(Zs, y_all, concepts, C, folds, seed, balanced)
    for c in (concepts if link == "sigmoid" else ()):
        y = (y_all == c).astype(int)
        pos = int(y.sum())
        if pos == 0:
            prior = 1.0 / (len(X) + 2)  # Laplace: never seen, almost never predicted
            entries[c] = _ConceptEntry(weights=[0.0] * Zs.shape[1], bias=float(np.log(prior / (1 - prior))),
                                       positives=0, trained=False)
            continue
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
        clf.fit(Zs, y)
        k = min(folds, pos, len(y) - pos)
        if k >= 2:
            cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            m = cross_val_predict(LogisticRegression(C=C, class_weight="balanced", max_iter=2000), Zs, y, cv=cv,
                                  method="decision_function")
            a, b = _platt(m, y)
        else:
            a, b = 1.0, 0.0
        entries[c] = _ConceptEntry(weights=clf.coef_[0].tolist(), bias=float(clf.intercept_[0]), platt_a=a,
                                   platt_b=b, positives=pos, trained=True)
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(X).tobytes() + "|".join(labels).encode()).hexdigest()[:12]
    spec = ConceptModelFile(feature_version=FEATURE_VERSION, feature_names=list(FEATURE_NAMES),
                            mean=mean.tolist(), scale=scale.tolist(), concepts=list(concepts), link=link,
                            classifiers=entries, trained_on={"clips": len(X), "digest": digest, **(meta or {})})
    return ConceptModel(spec)
