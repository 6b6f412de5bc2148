"""Plain data types the detectors stage hands out: detections, per-frame and per-clip analyses.

No Kafka, no schemas: the camera worker turns :class:`ClipAnalysis` into an
``IndicatorEvent``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Detection:
    """One box in pixel coordinates of the analysed frame."""

    xyxy: tuple[float, float, float, float]
    cls: str
    score: float
    track_id: Optional[int] = None

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.xyxy
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0


@dataclass
class FrameAnalysis:
    frame_index: int
    t: float  # stream time, seconds
    detections: list[Detection]
    motion: float = 0.0  # share of foreground pixels, 0..1


@dataclass
class ConceptLabel:
    """The resolved concept of one clip (see detectors.gmcp)."""

    label: str
    score: float
    scores: dict[str, float]
    method: str  # "gmcp" | "argmax" | "argmax-fallback" | "abstain"
    objective: Optional[float] = None
    window: int = 1
    fallback_reason: Optional[str] = None  # why GMCP was not used, or why the stage abstained
    uncertain: bool = False  # abstained: the clip is unlike the training clips, or showed nothing


@dataclass
class ClipAnalysis:
    """Everything the detectors stage says about one clip."""

    frames: int
    counts: dict[str, float] = field(default_factory=dict)  # mean per analysed frame, by class
    max_counts: dict[str, int] = field(default_factory=dict)
    tracks: list[str] = field(default_factory=list)  # "camera:track"
    # "camera:track" -> [(stream time, x, y)] foot point (bottom centre of the box) per analysed frame; zone dwell
    track_points: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    motion: float = 0.0
    frames_with_person: int = 0
    concept: Optional[ConceptLabel] = None
    models: dict[str, str] = field(default_factory=dict)
    key_frames: list[tuple[int, np.ndarray, list[Detection]]] = field(default_factory=list)  # only when asked (uploads)
