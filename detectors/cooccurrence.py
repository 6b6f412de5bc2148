"""Reference co-occurrence matrices for GMCP: P(concept b in a later clip | concept a in an earlier one).

Learned from sequences of ground-truth clip labels (one sequence per video or
camera recording, clips in time order).  Every ordered pair of clips ``i < j``
that fit in one GMCP window (``j - i < window``) adds one count to
``N[label_i, label_j]``; with Laplace smoothing ``alpha``

    P(b | a) = (N[a, b] + alpha) / (sum_b' N[a, b'] + k * alpha)

and a row with no counts at all and ``alpha = 0`` is uniform (1 / k).  The
diagonal holds the persistence of a concept across clips.

Saved as JSON, no pickle: ``{"format": "imminence.cooccurrence", "version": 1,
"concepts": [...], "matrices": {name: {"window", "alpha", "counts", "matrix"}}}``;
several named matrices (one per event class for video classification, or
"default") share one concept vocabulary.  The vocabulary is passed in by the
caller: this module knows nothing of the event schemas.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
from pydantic import BaseModel, model_validator

from geo.jsonfile import check_tag, json_location, read_model

FORMAT = "imminence.cooccurrence"
VERSION = 1

Label = Union[int, str]


class MatrixEntry(BaseModel):
    """One named matrix of the file (unknown keys are ignored)."""

    window: int
    alpha: float
    counts: list[list[int]]
    matrix: list[list[float]]


class CooccurrenceFile(BaseModel):
    """The co-occurrence file (unknown keys are ignored); format and version are checked before the fields."""

    format: str
    version: int
    concepts: Optional[list[str]] = None
    matrices: Optional[dict[str, MatrixEntry]] = None

    @model_validator(mode="before")
    @classmethod
    def _format_first(cls, data: object) -> object:
        check_tag(data, "format", FORMAT, "not a co-occurrence file (format must be {expected!r})")
        return check_tag(data, "version", VERSION, "co-occurrence file version {found!r}, this code reads {expected}")


@dataclass(frozen=True)
class Cooccurrence:
    """One co-occurrence matrix: ``matrix[a, b] = P(b | a)`` over ``concepts``."""

    concepts: tuple[str, ...]
    matrix: np.ndarray
    counts: np.ndarray
    window: int
    alpha: float

    def to_dict(self) -> dict:
        return {"window": self.window, "alpha": self.alpha,
                "counts": self.counts.astype(int).tolist(), "matrix": self.matrix.tolist()}


def _index_of(label: Label, concepts: Sequence[str], lookup: dict[str, int], where: str) -> int:
    if isinstance(label, (str, np.str_)):
        if label not in lookup:
            raise ValueError(f"{where}: unknown concept {label!r} (vocabulary: {list(concepts)})")
        return lookup[label]
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if not 0 <= int(label) < len(concepts):
            raise ValueError(f"{where}: concept index {label} outside [0, {len(concepts)})")
        return int(label)
    raise ValueError(f"{where}: a label must be a concept name or index, got {label!r}")


def count_pairs(sequences: Iterable[Sequence[Label]], concepts: Sequence[str], window: int = 8) -> np.ndarray:
    """``N[a, b]``: ordered clip pairs ``i < j`` with ``j - i < window`` labelled a then b."""
    concepts = list(concepts)
    if not concepts or len(set(concepts)) != len(concepts):
        raise ValueError(f"concepts must be a non-empty list of distinct names, got {concepts!r}")
    if not (isinstance(window, int) and window >= 2):
        raise ValueError(f"window must be an integer >= 2 (clips per GMCP window), got {window!r}")
    lookup = {c: i for i, c in enumerate(concepts)}
    k = len(concepts)
    N = np.zeros((k, k), dtype=np.int64)
    for s, seq in enumerate(sequences):
        idx = np.array([_index_of(lab, concepts, lookup, f"sequence {s}, clip {c}")
                        for c, lab in enumerate(seq)], dtype=np.int64)
        for lag in range(1, min(window, len(idx))):
            np.add.at(N, (idx[:-lag], idx[lag:]), 1)
    return N


def normalise(counts: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Row-normalised, Laplace-smoothed conditional probabilities P(b | a)."""
    if not (alpha >= 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha (Laplace smoothing) must be >= 0, got {alpha}")
    N = np.asarray(counts, dtype=float) + alpha
    k = N.shape[0]
    rows = N.sum(axis=1, keepdims=True)
    return np.divide(N, rows, out=np.full_like(N, 1.0 / k), where=rows > 0)


def learn_cooccurrence(sequences: Iterable[Sequence[Label]], concepts: Sequence[str],
                       window: int = 8, alpha: float = 1.0) -> Cooccurrence:
    """Learn P(b | a) from ground-truth label sequences (names or indices into ``concepts``)."""
    N = count_pairs(sequences, concepts, window)
    return Cooccurrence(tuple(concepts), normalise(N, alpha), N, window, float(alpha))


def learn_per_class(sequences_by_class: Mapping[str, Iterable[Sequence[Label]]], concepts: Sequence[str],
                    window: int = 8, alpha: float = 1.0) -> dict[str, Cooccurrence]:
    """One matrix per event class, for :func:`detectors.gmcp.classify_video`."""
    return {name: learn_cooccurrence(seqs, concepts, window, alpha) for name, seqs in sequences_by_class.items()}


def save_matrices(path: Union[str, Path], matrices: Mapping[str, Cooccurrence]) -> None:
    """Write named matrices sharing one vocabulary to a JSON file."""
    if not matrices:
        raise ValueError("no matrices to save")
    vocabularies = {m.concepts for m in matrices.values()}
    if len(vocabularies) != 1:
        raise ValueError("all matrices in one file must share the same concept vocabulary")
    doc = {"format": FORMAT, "version": VERSION, "concepts": list(vocabularies.pop()),
           "matrices": {name: m.to_dict() for name, m in matrices.items()}}
    Path(path).write_text(json.dumps(doc, indent=1))


def load_matrices(path: Union[str, Path], concepts: Optional[Sequence[str]] = None) -> dict[str, Cooccurrence]:
    """Read a file written by :func:`save_matrices`; checks format, version and, if given, the vocabulary."""
    path = Path(path)
    doc = read_model(path, CooccurrenceFile, ValueError, "co-occurrence file")
    vocab = tuple(doc.concepts or ())
    if concepts is not None and tuple(concepts) != vocab:
        raise ValueError(f"{path}: concept vocabulary {list(vocab)} does not match the expected {list(concepts)}")
    k = len(vocab)
    out = {}
    for name, m in (doc.matrices or {}).items():
        where = f"{path}: {json_location(('matrices', name))}"
        try:
            P = np.array(m.matrix, dtype=float)
            N = np.array(m.counts, dtype=np.int64)
        except ValueError as exc:  # ragged rows
            raise ValueError(f"{where}: malformed ({exc})") from None
        if P.shape != (k, k) or N.shape != (k, k):
            raise ValueError(f"{where}: expected shape ({k}, {k}), got {P.shape}")
        if not np.all(np.isfinite(P)) or P.min() < 0 or not np.allclose(P.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError(f"{where}: rows must be probability distributions")
        out[name] = Cooccurrence(vocab, P, N, m.window, m.alpha)
    if not out:
        raise ValueError(f"{path}: holds no matrices")
    return out
