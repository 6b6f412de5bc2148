"""The vocabularies of Imminence, in one place: concepts, crime types and the study's crime table.

Every stage reads these names from here (``geo`` is the bottom package every
stage may import): the message schemas (:mod:`streamer.schemas` re-exports
:data:`CONCEPTS` and :data:`CRIME_TYPES`), the scene generator, the synthetic
ANFIS data, the crime-model configuration (:data:`CRIME_CONCEPTS` is the
default of ``crimes:`` in ``configs/crime_models.yaml``), the detectors' evidence
table and the console, whose page gets them from ``GET /api/config``.

Learned model files store the concept names they were trained with; their
loaders check them against :data:`CONCEPTS` with :func:`check_concepts`, so a
model of another vocabulary fails at load with a clear message.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Iterable, Mapping

#: The visual crime-indicator concepts of the study plus ``normal`` (no indicator),
#: in their canonical order (k = 10; every clip gets exactly one label), each with a
#: one-line meaning the console shows.  ``verbal_threat`` needs audio, which the
#: workers do not decode; it is not part of the vocabulary.
CONCEPT_MEANINGS: Mapping[str, str] = MappingProxyType({
    "normal": "no crime indicator: people and vehicles going about their business",
    "loitering": "someone hanging about in one place for a while, waiting or pacing",
    "violent_movement": "two or more people fighting, pushing or hitting",
    "item_seizure": "someone picking up and taking an item (a bag) that is not theirs",
    "forceful_seizure": "someone snatching an item (a bag) from a person by force",
    "sneaking": "someone moving crouched or furtively, keeping out of sight",
    "lethal_object": "someone holding a weapon (knife, gun) near people",
    "traffic_violation": "a vehicle speeding, driving the wrong way or not stopping at the crossing",
    "camera_tampering": "the camera's view blacked out, covered, blurred or moved",
    "suspicious_exit": "someone hurrying out of view right after an incident",
})
CONCEPTS: tuple[str, ...] = tuple(CONCEPT_MEANINGS)

#: Labels that are no crime indicator on their own: loitering does not always lead to crime.
QUIET_CONCEPTS: tuple[str, ...] = ("normal", "loitering")

#: The crime types whose imminence is scored (one ANFIS system each), in canonical order.
CRIME_TYPES: tuple[str, ...] = ("robbery", "burglary", "larceny", "battery")

#: Colour of each crime type (and of "all", the merged map) in the console's charts and legends.
CRIME_COLOURS: Mapping[str, str] = MappingProxyType({
    "robbery": "#d62728", "burglary": "#1f77b4", "larceny": "#2ca02c", "battery": "#9467bd", "all": "#444",
})

#: The study's table the ANFIS inputs are built from: crime type -> input name -> the
#: indicator concepts whose counts in a window are summed into that input.  Every
#: system also has the inputs ``rate`` and ``hour`` before these.  The robbery system
#: follows the study: violent movements, item seizures, sneaking, lethal objects,
#: traffic violations.  A deployment may override it (``crimes:`` in
#: ``configs/crime_models.yaml``); :func:`crime_concepts` gives a mutable copy.
CRIME_CONCEPTS: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "robbery": MappingProxyType({
        "violent_movement": ("violent_movement",),
        "item_seizure": ("item_seizure", "forceful_seizure"),
        "sneaking": ("sneaking",),
        "lethal_object": ("lethal_object",),
        "traffic_violation": ("traffic_violation",),
    }),
    "burglary": MappingProxyType({
        "loitering": ("loitering",),
        "sneaking": ("sneaking",),
        "camera_tampering": ("camera_tampering",),
        "suspicious_exit": ("suspicious_exit",),
        "item_seizure": ("item_seizure", "forceful_seizure"),
    }),
    "larceny": MappingProxyType({
        "item_seizure": ("item_seizure",),
        "sneaking": ("sneaking",),
        "loitering": ("loitering",),
        "suspicious_exit": ("suspicious_exit",),
        "traffic_violation": ("traffic_violation",),
    }),
    "battery": MappingProxyType({
        "violent_movement": ("violent_movement",),
        "forceful_seizure": ("forceful_seizure",),
        "lethal_object": ("lethal_object",),
        "loitering": ("loitering",),
        "traffic_violation": ("traffic_violation",),
    }),
})


class VocabularyError(ValueError):
    """Names outside the vocabulary (a model or table written for another vocabulary)."""


def crime_concepts() -> dict[str, dict[str, list[str]]]:
    """A mutable copy of :data:`CRIME_CONCEPTS` (crime -> input name -> concept list)."""
    return {crime: {name: list(cs) for name, cs in inputs.items()} for crime, inputs in CRIME_CONCEPTS.items()}


def check_concepts(names: Iterable[str], where: str) -> None:
    """Raise :class:`VocabularyError` naming ``where`` when some of ``names`` are not concepts."""
    bad = [n for n in names if n not in CONCEPT_MEANINGS]
    if bad:
        raise VocabularyError(f"{where}: concept(s) {bad} are not in the vocabulary (geo.vocabulary.CONCEPTS: "
                              f"{list(CONCEPTS)}); it was made for another vocabulary: retrain it")


def check_crime_types(names: Iterable[str], where: str) -> None:
    """Raise :class:`VocabularyError` naming ``where`` when some of ``names`` are not crime types."""
    bad = [n for n in names if n not in CRIME_TYPES]
    if bad:
        raise VocabularyError(f"{where}: crime type(s) {bad} are not in the vocabulary "
                              f"(geo.vocabulary.CRIME_TYPES: {list(CRIME_TYPES)})")


def _check_self() -> None:
    if set(CRIME_CONCEPTS) != set(CRIME_TYPES) or set(CRIME_COLOURS) != set(CRIME_TYPES) | {"all"}:
        raise ImportError("geo.vocabulary: CRIME_CONCEPTS and CRIME_COLOURS must cover exactly CRIME_TYPES")
    check_concepts(QUIET_CONCEPTS, "QUIET_CONCEPTS")
    for crime, inputs in CRIME_CONCEPTS.items():
        for name, cs in inputs.items():
            check_concepts(cs, f"CRIME_CONCEPTS[{crime!r}][{name!r}]")


_check_self()
