"""Evidence before accusation: what a clip must show before a concept may be chosen for it.

Every crime-indicator concept declares the evidence it needs, as tests on the clip
features (:data:`detectors.concepts.features.FEATURE_NAMES`), any one of which
suffices, and the detector class families it cannot be seen without. A concept
whose evidence is missing in a clip gets score 0 there, so neither the arg-max nor
GMCP can choose it; a concept whose class family the configured detector cannot
detect at all is switched off for the camera (and said so once at start-up).

``lethal_object`` needs a weapon detected near a person, the seizures a bag near a
person, ``traffic_violation`` a vehicle, ``camera_tampering`` a global change of the
frame against the camera's own baseline; the concepts of people need people (two
close together for ``violent_movement``, someone standing about for
``loitering``, someone in view for ``sneaking`` and ``suspicious_exit``). The share of
training clips of each concept that show its evidence is printed by ``imminence
concepts train`` (the gate's recall on data the detector really produced).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from detectors.concepts.features import FEATURE_NAMES, family_of
from geo.vocabulary import CONCEPTS, QUIET_CONCEPTS, check_concepts

_INDEX = {n: i for i, n in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class Evidence:
    """``any_of``: (feature, threshold) pairs; the evidence holds when some feature exceeds its threshold."""

    text: str
    any_of: tuple[tuple[str, float], ...]
    families: tuple[str, ...] = ()  # detector class families without which the concept cannot be seen

    def holds(self, x: np.ndarray) -> bool:
        return any(x[_INDEX[f]] > thr for f, thr in self.any_of)


#: concept -> the evidence it needs (``normal`` needs none)
EVIDENCE: dict[str, Evidence] = {
    "loitering": Evidence("a person standing about for 1 s or more", (("dwell_slow_max_s", 1.0),), ("person",)),
    "violent_movement": Evidence("two people within 1.5 body heights", (("pair_share", 0.0),), ("person",)),
    "item_seizure": Evidence("a bag near a person", (("bag_near_person", 0.0),), ("person", "bag")),
    "forceful_seizure": Evidence("a bag near a person", (("bag_near_person", 0.0),), ("person", "bag")),
    "sneaking": Evidence("a person in view", (("person_share", 0.0),), ("person",)),
    "lethal_object": Evidence("a weapon detected near a person", (("weapon_near_person", 0.0),), ("person", "weapon")),
    "traffic_violation": Evidence("a vehicle in view", (("vehicle_present", 0.0),), ("vehicle",)),
    "camera_tampering": Evidence(
        "a global change of the frame against the camera's baseline",
        (("brightness_drop_max", 0.35), ("contrast_drop_max", 0.5), ("blur_drop_max", 0.6),
         ("hist_baseline_max", 0.3), ("brightness_jump_max", 0.3))),
    # leaving is seen only as a track that ends, often a clip late or short of the border: a person suffices
    "suspicious_exit": Evidence("a person in view", (("person_share", 0.0),), ("person",)),
}
_unknown = [(c, f) for c, e in EVIDENCE.items() for f, _ in e.any_of if f not in _INDEX]
if _unknown:  # a typo here must fail at import, not silently never fire
    raise ImportError(f"evidence names unknown clip features: {_unknown}")
if set(EVIDENCE) | {"normal"} != set(CONCEPTS):  # every indicator concept of the vocabulary declares its evidence
    raise ImportError(f"EVIDENCE covers {sorted(EVIDENCE)}, not the indicator concepts of geo.vocabulary.CONCEPTS")


#: concept -> (clips, what): evidence found only in the camera's recent labels. Leaving is an indicator
#: only after an incident: on its own, people walk out of every view all day (on real footage a per-clip
#: classifier called 10-38 % of a quiet plaza's clips suspicious exits without this).
CONTEXT: dict[str, tuple[int, str]] = {
    "suspicious_exit": (4, "an incident (not normal or loitering) labelled in the camera's last 4 clips"),
}
QUIET = QUIET_CONCEPTS + ("suspicious_exit",)  # labels that are no incident for CONTEXT
check_concepts([*CONTEXT, *QUIET], "detectors.concepts.evidence")


def context_mask(concepts: Sequence[str], recent: Sequence[str]) -> np.ndarray:
    """Boolean (k,): False for concepts whose contextual evidence is missing from ``recent`` labels (oldest first)."""
    out = []
    for c in concepts:
        ctx = CONTEXT.get(c)
        out.append(ctx is None or any(lab not in QUIET for lab in list(recent)[-ctx[0]:]))
    return np.array(out)


def evidence_mask(x: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
    """Boolean (k,): True where the clip features ``x`` show the evidence concept needs."""
    x = np.asarray(x, dtype=float).ravel()
    return np.array([c not in EVIDENCE or EVIDENCE[c].holds(x) for c in concepts])


def missing(x: np.ndarray, concept: str) -> str | None:
    """Why ``concept`` cannot be chosen for features ``x`` (None when its evidence holds)."""
    ev = EVIDENCE.get(concept)
    if ev is None or ev.holds(np.asarray(x, dtype=float).ravel()):
        return None
    return f"{concept} needs {ev.text}"


def unseeable(concepts: Iterable[str], detector_classes: Iterable[str]) -> dict[str, str]:
    """Concepts the detector cannot support, with the reason: concept -> 'needs a bag detector'."""
    have = {family_of(c) for c in detector_classes}
    out = {}
    for c in concepts:
        ev = EVIDENCE.get(c)
        if ev is None:
            continue
        lacking = [f for f in ev.families if f not in have]
        if lacking:
            out[c] = f"the detector has no {'/'.join(lacking)} class"
    return out


def share_with_evidence(X: np.ndarray, labels: Sequence[str]) -> Mapping[str, float]:
    """Per concept: share of the clips labelled with it whose features show its evidence (gate recall)."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    out: dict[str, float] = {}
    for c in sorted(set(labels)):
        rows = [i for i, lab in enumerate(labels) if lab == c]
        out[c] = float(np.mean([evidence_mask(X[i], [c])[0] for i in rows])) if rows else float("nan")
    return out
