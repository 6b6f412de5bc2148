"""Concept accuracy of GMCP labels against the per-clip arg-max, with confusion matrices (also PNG).

Input: per camera (video), the clips' concept scores (n, k) in time order and
their ground-truth labels. The GMCP labels are produced exactly as a worker
produces them: a :class:`detectors.gmcp.GMCPWindow` per camera over the last h
clips, labelling each newest clip. The baseline is the arg-max of each clip's
scores.

Reported per method: overall accuracy (share of clips right), per-concept
accuracy (share of the clips of that true concept labelled right, i.e. recall)
and their mean over the concepts present (balanced accuracy), and the confusion
matrix (rows: truth, columns: label).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


@dataclass
class MethodScores:
    method: str
    accuracy: float
    balanced_accuracy: float
    per_concept: dict[str, float]
    support: dict[str, int]
    confusion: np.ndarray
    labels: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"method": self.method, "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "per_concept": self.per_concept, "support": self.support, "confusion": self.confusion.tolist()}


def score_labels(method: str, truth: Sequence[int], pred: Sequence[int], concepts: Sequence[str]) -> MethodScores:
    from sklearn.metrics import confusion_matrix

    truth, pred = np.asarray(truth, int), np.asarray(pred, int)
    k = len(concepts)
    cm = confusion_matrix(truth, pred, labels=list(range(k)))
    support = cm.sum(axis=1)
    per = {concepts[i]: float(cm[i, i] / support[i]) for i in range(k) if support[i] > 0}
    return MethodScores(method=method, accuracy=float((truth == pred).mean()) if len(truth) else 0.0,
                        balanced_accuracy=float(np.mean(list(per.values()))) if per else 0.0, per_concept=per,
                        support={concepts[i]: int(support[i]) for i in range(k)}, confusion=cm,
                        labels=pred.tolist())


def gmcp_labels(scores: np.ndarray, cooccurrence: np.ndarray, h: int, time_limit: float = 1.0,
                solver: str = "highs", beta: float = 0.1, lookahead: int = 0,
                decay: float = 0.6, weighting: str = "log") -> tuple[list[int], list[str]]:
    """Label one camera's clips in order with a sliding GMCP window; returns labels and methods used.

    ``lookahead`` d = 0 is the worker's causal window: clip i is the newest of
    clips i-h+1..i.  With d > 0 clip i is labelled once clips i+1..i+d are in:
    the window is clips i+d-h+1..i+d (cut at the ends of the video) and clip i's
    label is read from its position in the optimum.  This is the study's offline
    labelling (past and future context); live, it would publish each label d clips
    late (d * clip_seconds of latency).
    """
    from detectors.gmcp import GMCPWindow, label_clips

    scores = np.asarray(scores, float)
    if not (isinstance(lookahead, (int, np.integer)) and 0 <= lookahead < max(h, 1)):
        raise ValueError(f"lookahead must be an integer in [0, h), got {lookahead!r} for h={h}")
    labels, methods = [], []
    if lookahead == 0:
        win = GMCPWindow(np.asarray(cooccurrence, float), h=h, weighting=weighting, beta=beta, decay=decay,
                         time_limit=time_limit, solver=solver)
        for conf in scores:
            res = win.push(conf)
            ok = res.method == "gmcp" and res.optimal
            labels.append(int(res.label) if ok or res.window == 1 else int(np.argmax(conf)))
            methods.append(res.method if ok else "argmax-fallback")
        return labels, methods
    n = len(scores)
    for i in range(n):
        hi = min(n, i + lookahead + 1)
        lo = max(0, hi - h)
        window = scores[lo:hi]
        if len(window) < 2:
            labels.append(int(np.argmax(scores[i])))
            methods.append("argmax-fallback")
            continue
        res = label_clips(window, np.asarray(cooccurrence, float), weighting=weighting, beta=beta, decay=decay,
                          time_limit=time_limit, solver=solver)
        ok = res.method == "gmcp" and res.optimal
        labels.append(int(res.labels[i - lo]) if ok else int(np.argmax(scores[i])))
        methods.append(res.method if ok else "argmax-fallback")
    return labels, methods


def evaluate(videos: Sequence[tuple[np.ndarray, Sequence[int]]], concepts: Sequence[str],
             cooccurrence: Optional[np.ndarray], h: int = 8, time_limit: float = 1.0,
             solver: str = "highs", beta: float = 0.1, lookahead: int = 0,
             decay: float = 0.6, weighting: str = "log") -> dict[str, MethodScores]:
    """Scores of ``argmax`` and (with a co-occurrence matrix) ``gmcp`` over all clips of all videos."""
    truth: list[int] = []
    am: list[int] = []
    gm: list[int] = []
    for scores, labels in videos:
        scores = np.asarray(scores, float)
        truth.extend(int(v) for v in labels)
        am.extend(int(v) for v in scores.argmax(axis=1))
        if cooccurrence is not None and len(scores):
            gm.extend(gmcp_labels(scores, cooccurrence, h, time_limit, solver, beta, lookahead, decay, weighting)[0])
    out = {"argmax": score_labels("argmax", truth, am, concepts)}
    if cooccurrence is not None:
        out["gmcp"] = score_labels("gmcp", truth, gm, concepts)
    return out


def plot_confusion(ms: MethodScores, concepts: Sequence[str], path: str | Path) -> Path:
    """Row-normalised confusion matrix with counts, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = ms.confusion.astype(float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    k = len(concepts)
    ax.set_xticks(range(k), concepts, rotation=50, ha="right", fontsize=8)
    ax.set_yticks(range(k), concepts, fontsize=8)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("label")
    ax.set_ylabel("truth")
    ax.set_title(f"{ms.method}: accuracy {ms.accuracy:.1%}, balanced {ms.balanced_accuracy:.1%}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(results: dict[str, MethodScores], concepts: Sequence[str]) -> str:
    methods = list(results)
    lines = [f"{'concept':<20}{'clips':>7}" + "".join(f"{m:>10}" for m in methods)]
    first = results[methods[0]]
    for c in concepts:
        if first.support.get(c, 0) == 0:
            continue
        lines.append(f"{c:<20}{first.support[c]:>7}" + "".join(f"{results[m].per_concept.get(c, 0):>10.1%}"
                                                              for m in methods))
    lines.append(f"{'average (balanced)':<20}{sum(first.support.values()):>7}"
                 + "".join(f"{results[m].balanced_accuracy:>10.1%}" for m in methods))
    lines.append(f"{'overall accuracy':<20}{'':>7}" + "".join(f"{results[m].accuracy:>10.1%}" for m in methods))
    return "\n".join(lines)
