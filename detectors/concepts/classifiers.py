"""Concept classifier: gradient-boosted trees over clip features, saved as plain JSON.

Training (:func:`train_concept_model`) fits one multiclass scikit-learn
``HistGradientBoostingClassifier`` (softmax over the concepts seen in training,
early stopping on a held-out tenth, class weights that lift rare concepts part of
the way towards the common ones) on the clip feature vectors. Trees capture what a
linear model cannot: "fast *and* close *and* after contact".

The file holds only numbers and names (no pickle, no code): the trees flattened
into arrays (feature, threshold, children, leaf value; one tree per boosting round
and class), the baseline logits, the concept vocabulary, and what the model needs
to know about the data it saw:

* ``analysis``: the analysis rate, clip length and detector it was trained with;
  :meth:`ConceptModel.check_analysis` refuses a camera configured otherwise, since
  speeds, accelerations and shares change with them.
* ``ranges``: per feature, the central range of the training clips; a clip with
  many features far outside it is out of distribution, and the concept stage
  abstains instead of extrapolating (:meth:`ConceptModel.outside`).

:meth:`ConceptModel.scores` evaluates all trees at once with numpy (a test checks
it against scikit-learn's own ``predict_proba``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors.concepts.features import FEATURE_NAMES, FEATURE_VERSION
from geo.jsonfile import check_tag, read_model
from geo.vocabulary import VocabularyError, check_concepts

FORMAT = "imminence.concept-classifiers/2"


class ConceptModelError(ValueError):
    """A concept model file that cannot be used, or training data that cannot train one."""


class AnalysisSpec(BaseModel):
    """How the training clips were cut and analysed; serving must match."""

    model_config = ConfigDict(extra="forbid")
    fps: float = Field(gt=0, description="analysis rate, frames per second")
    clip_seconds: float = Field(gt=0)
    detector: str = Field(description="detector type and weights file name, e.g. 'yolo:scene-yolov8n-416.pt'")


class Trees(BaseModel):
    """All trees flattened: node arrays, plus each tree's root node and class."""

    model_config = ConfigDict(extra="forbid")
    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    missing_left: list[bool]
    leaf: list[bool]
    value: list[float]
    roots: list[int]
    tree_class: list[int]
    depth: int = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> "Trees":
        n = len(self.feature)
        if not all(len(a) == n for a in (self.threshold, self.left, self.right, self.missing_left, self.leaf,
                                         self.value)):
            raise ValueError("node arrays differ in length")
        if len(self.roots) != len(self.tree_class):
            raise ValueError("roots and tree_class differ in length")
        if n and (max(self.roots, default=0) >= n or max(self.left) >= n or max(self.right) >= n):
            raise ValueError("a node index points past the node arrays")
        return self


class ConceptModelFile(BaseModel):
    """The concept model file: unknown keys are refused; the format tag is checked before anything else."""

    model_config = ConfigDict(extra="forbid")
    format: str
    feature_version: str
    feature_names: list[str]
    concepts: list[str] = Field(min_length=2)
    classes: list[str] = Field(min_length=2, description="concepts seen in training, in logit order")
    positives: dict[str, int] = Field(description="training clips per concept")
    baseline: list[float]
    trees: Trees
    analysis: AnalysisSpec
    ranges: dict[str, list[float]] = Field(description="feature -> [lo, hi] central range of the training clips")
    trained_on: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "ConceptModelFile":
        if not set(self.classes) <= set(self.concepts):
            raise ValueError(f"classes {self.classes} are not all in concepts {self.concepts}")
        if len(self.baseline) != len(self.classes):
            raise ValueError(f"{len(self.baseline)} baseline logits for {len(self.classes)} classes")
        if any(c < 0 or c >= len(self.classes) for c in self.trees.tree_class):
            raise ValueError("a tree's class index is out of range")
        if set(self.ranges) != set(self.feature_names) or any(len(v) != 2 for v in self.ranges.values()):
            raise ValueError("ranges must give [lo, hi] for every feature")
        return self

    @model_validator(mode="before")
    @classmethod
    def _format_first(cls, data: Any) -> Any:
        return check_tag(data, "format", FORMAT, "concept model format {found!r}; this code reads {expected!r}: "
                         "retrain with `imminence concepts train`")


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
        t = spec.trees
        self._feat = np.asarray(t.feature, dtype=np.int64)
        self._thr = np.asarray(t.threshold, dtype=np.float64)
        self._left = np.asarray(t.left, dtype=np.int64)
        self._right = np.asarray(t.right, dtype=np.int64)
        self._mleft = np.asarray(t.missing_left, dtype=bool)
        self._leaf = np.asarray(t.leaf, dtype=bool)
        self._value = np.asarray(t.value, dtype=np.float64)
        self._roots = np.asarray(t.roots, dtype=np.int64)
        self._tree_class = np.asarray(t.tree_class, dtype=np.int64)
        self._depth = int(t.depth)
        self._baseline = np.asarray(spec.baseline, dtype=np.float64)
        self._cols = np.array([self.concepts.index(c) for c in spec.classes])
        self._lo = np.array([spec.ranges[n][0] for n in FEATURE_NAMES])
        self._hi = np.array([spec.ranges[n][1] for n in FEATURE_NAMES])

    @property
    def version(self) -> str:
        return f"concepts:{self.spec.feature_version}:{self.spec.trained_on.get('digest', 'untracked')}"

    @property
    def analysis(self) -> AnalysisSpec:
        return self.spec.analysis

    def check_analysis(self, fps: float, clip_seconds: float, detector: str) -> None:
        """Refuse a camera whose analysis differs from the training clips' (rate, clip length, detector)."""
        a = self.spec.analysis
        problems = []
        if abs(a.fps - fps) > 1e-6:
            problems.append(f"analysis rate {fps:g} fps (trained at {a.fps:g})")
        if abs(a.clip_seconds - clip_seconds) > 1e-6:
            problems.append(f"clips of {clip_seconds:g} s (trained on {a.clip_seconds:g} s)")
        if a.detector != detector:
            problems.append(f"detector {detector!r} (trained with {a.detector!r})")
        if problems:
            raise ConceptModelError(
                "concept model does not fit this camera: " + "; ".join(problems)
                + ": set the camera's fps/clip_seconds and the detector to the model's, or train a model for them "
                  "with `imminence concepts train`")

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Raw boosted scores, shape (n, classes seen in training)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != len(FEATURE_NAMES):
            raise ConceptModelError(f"feature vectors have {X.shape[1]} columns; expected {len(FEATURE_NAMES)}")
        n = X.shape[0]
        node = np.broadcast_to(self._roots, (n, len(self._roots))).copy()  # one walker per (clip, tree)
        rows = np.arange(n)[:, None]
        for _ in range(self._depth):
            leaf = self._leaf[node]
            if leaf.all():
                break
            x = X[rows, self._feat[node]]
            go_left = np.where(np.isnan(x), self._mleft[node], x <= self._thr[node])
            node = np.where(leaf, node, np.where(go_left, self._left[node], self._right[node]))
        out = np.tile(self._baseline, (n, 1))
        np.add.at(out.T, self._tree_class, self._value[node].T)
        return out

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Probability of each concept for each clip, shape (n, k); concepts never seen in training get 0."""
        p = _softmax(self.logits(X))
        out = np.zeros((p.shape[0], len(self.concepts)))
        out[:, self._cols] = p
        return out

    def score_dict(self, x: np.ndarray) -> dict[str, float]:
        return {c: float(s) for c, s in zip(self.concepts, self.scores(x)[0])}

    def outside(self, x: np.ndarray) -> list[str]:
        """Features of one clip outside the training clips' central range (widened by half its width)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        span = self._hi - self._lo
        bad = (x < self._lo - 0.5 * span - 1e-9) | (x > self._hi + 0.5 * span + 1e-9)
        return [FEATURE_NAMES[i] for i in np.flatnonzero(bad)]

    def to_json(self) -> str:
        return self.spec.model_dump_json()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ConceptModel":
        spec = read_model(path, ConceptModelFile, ConceptModelError, "concept model")
        try:  # the file stores its own concept names: they must be the vocabulary's
            check_concepts(spec.concepts, f"concept model {str(path)!r}")
        except VocabularyError as exc:
            raise ConceptModelError(str(exc)) from None
        try:
            return cls(spec)
        except ConceptModelError as exc:
            raise ConceptModelError(f"{path}: {exc}") from None


def _flatten(clf: Any, n_classes: int) -> tuple[Trees, list[float]]:
    """The fitted HistGradientBoostingClassifier's trees as flat arrays (thresholds on raw feature values)."""
    feat, thr, left, right, mleft, leaf, value, roots, tree_class = ([] for _ in range(9))
    depth = 0
    for per_iter in clf._predictors:  # noqa: SLF001 - the fitted trees; sklearn has no public export
        for k, pred in enumerate(per_iter):
            nodes = pred.nodes
            off = len(feat)
            roots.append(off)
            tree_class.append(k if n_classes > 2 else 0)
            depth = max(depth, int(nodes["depth"].max()) + 1)
            for nd in nodes:
                is_leaf = bool(nd["is_leaf"])
                feat.append(int(nd["feature_idx"]) if not is_leaf else 0)
                thr.append(float(nd["num_threshold"]) if not is_leaf else 0.0)
                left.append(off + int(nd["left"]) if not is_leaf else off)
                right.append(off + int(nd["right"]) if not is_leaf else off)
                mleft.append(bool(nd["missing_go_to_left"]))
                leaf.append(is_leaf)
                value.append(float(nd["value"]) if is_leaf else 0.0)
    base = np.asarray(clf._baseline_prediction, dtype=float).ravel()  # noqa: SLF001
    return (Trees(feature=feat, threshold=thr, left=left, right=right, missing_left=mleft, leaf=leaf, value=value,
                  roots=roots, tree_class=tree_class, depth=depth), base.tolist())


def train_concept_model(X: np.ndarray, labels: Sequence[str], concepts: Sequence[str], *,
                        analysis: AnalysisSpec | dict, seed: int = 0, max_iter: int = 300,
                        learning_rate: float = 0.08, max_leaf_nodes: int = 15, l2: float = 1.0,
                        balance: float = 0.5, meta: Optional[dict] = None) -> ConceptModel:
    """Fit the gradient-boosted concept classifier on clip features and ground-truth labels.

    ``balance`` in [0, 1]: class weights ``(n_max / n_c) ** balance`` (0 = none,
    1 = fully balanced); half-way keeps the scores close to calibrated while rare
    concepts still count.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = np.asarray(X, dtype=np.float64)
    labels = [str(v) for v in labels]
    if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
        raise ConceptModelError(f"training features must be (n, {len(FEATURE_NAMES)}); got {X.shape}")
    if len(labels) != len(X):
        raise ConceptModelError(f"{len(X)} feature rows but {len(labels)} labels")
    unknown = sorted(set(labels) - set(concepts))
    if unknown:
        raise ConceptModelError(f"labels {unknown} are not in the concept vocabulary {list(concepts)}")
    classes = [c for c in concepts if c in set(labels)]
    if len(classes) < 2:
        raise ConceptModelError(f"training clips carry {len(classes)} distinct concept(s); need at least 2")
    counts = {c: labels.count(c) for c in classes}
    top = max(counts.values())
    weights = np.array([(top / counts[v]) ** balance for v in labels])
    y = np.array([classes.index(v) for v in labels])
    clf = HistGradientBoostingClassifier(
        learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes, l2_regularization=l2,
        early_stopping=len(X) >= 200, validation_fraction=0.1, n_iter_no_change=15, random_state=seed)
    clf.fit(X, y, sample_weight=weights)
    trees, base = _flatten(clf, len(classes))
    if len(classes) == 2:  # binary: one logit for class 1; make it a two-column softmax
        trees = trees.model_copy(update={"tree_class": [1] * len(trees.roots)})
        base = [0.0, base[0]]
    lo, hi = np.percentile(X, 1, axis=0), np.percentile(X, 99, axis=0)
    digest = hashlib.sha256(np.ascontiguousarray(X).tobytes() + "|".join(labels).encode()).hexdigest()[:12]
    spec = ConceptModelFile(
        format=FORMAT, feature_version=FEATURE_VERSION, feature_names=list(FEATURE_NAMES), concepts=list(concepts),
        classes=classes, positives={c: counts.get(c, 0) for c in concepts}, baseline=base, trees=trees,
        analysis=AnalysisSpec.model_validate(analysis),
        ranges={n: [float(a), float(b)] for n, a, b in zip(FEATURE_NAMES, lo, hi)},
        trained_on={"clips": len(X), "digest": digest, "rounds": int(clf.n_iter_), **(meta or {})})
    model = ConceptModel(spec)
    model.sklearn = clf  # kept for the test that checks the JSON trees against scikit-learn
    return model
