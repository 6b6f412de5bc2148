"""Per-camera analysis of sampled frames, summarised per clip: the one seam between a worker and the detectors.

A camera worker owns one :class:`ClipAnalyzer`.  It feeds every sampled frame to
:meth:`ClipAnalyzer.process` and, at each clip boundary, calls
:meth:`ClipAnalyzer.end_clip`, which returns the clip's :class:`ClipAnalysis`
(counts per class averaged over analysed frames, max counts, ``camera:track``
ids, motion, frames with a person, concept, model versions) and starts the next
clip.  Everything per camera lives here (background model, tracker, concept
window), so cameras never share state.

The detector is built from ``cfg.detector`` by :func:`build_detector`, which
looks its ``type`` up in :data:`DETECTORS` (the module and class of each
backend, imported only when used, so torch loads only for YOLO).  A detector is
any object with ``name``, ``version``, ``from_config(cfg)`` and ``detect(frame) ->
list[Detection]``; one that also measures motion exposes the last frame's
foreground share as ``motion`` (the OpenCV detector does), otherwise the analyzer
runs its own :class:`MotionEstimator`.  Tracks, concept scores and the GMCP label
are added on this same path: detections gain ``track_id`` before they are
accumulated, and ``end_clip`` fills ``ClipAnalysis.concept``.

Key frames (uploads only): with ``key_frames = N`` the analyzer keeps, per clip,
up to N analysed frames with their boxes (:func:`pick_key_frames`) in
``ClipAnalysis.key_frames``; workers leave it at 0, so frames are never kept or published.
"""
from __future__ import annotations

import importlib
from collections import Counter
from typing import Any, Optional, Protocol

import numpy as np

from detectors.concepts.stage import ConceptStage
from detectors.config import DetectorsConfig
from detectors.opencv_detector import MotionEstimator
from detectors.tracking import CameraTracker
from detectors.types import ClipAnalysis, Detection, FrameAnalysis


class Detector(Protocol):
    name: str
    version: str

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


#: ``detectors.detector.type`` -> "module:Class" of the backend (its config class is in detectors.config)
DETECTORS = {
    "opencv": "detectors.opencv_detector:OpenCVDetector",
    "yolo": "detectors.yolo:YOLODetector",
}


def build_detector(cfg: Any) -> Detector:
    """The detector a ``detectors.detector`` config section names (chosen by its ``type``)."""
    kind = getattr(cfg, "type", None)
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector type {kind!r}; known: {', '.join(DETECTORS)}")
    module, cls = DETECTORS[kind].split(":")
    return getattr(importlib.import_module(module), cls).from_config(cfg)


KeyFrame = tuple[int, np.ndarray, list[Detection]]  # frame index, image (BGR), its boxes


def pick_key_frames(cands: list[KeyFrame], n: int) -> list[KeyFrame]:
    """Up to ``n`` of ``cands`` in time order: most tracked boxes first, then most boxes, then earliest."""
    if n <= 0 or not cands:
        return []

    def rank(i: int) -> tuple:
        boxes = cands[i][2]
        return -sum(b.track_id is not None for b in boxes), -len(boxes), i

    best = sorted(range(len(cands)), key=rank)[:n]
    return [cands[i] for i in sorted(best)]


def detector_id(cfg: DetectorsConfig) -> str:
    """What a concept model records as its detector: ``opencv`` or ``yolo:WEIGHTS-FILE-NAME:IMGSZ``.

    With a held-object classifier configured ``+held:WEIGHTS-FILE-NAME`` is appended: its
    bags and weapons are part of what the concept features saw.
    """
    from pathlib import Path

    base = cfg.detector.model_id()
    return f"{base}+held:{Path(cfg.held_objects.weights).name}" if cfg.held_objects is not None else base


class ClipAnalyzer:
    """Detections per frame, summaries per clip, for one camera."""

    def __init__(self, cfg: DetectorsConfig, camera_id: str, fps: float,
                 detector: Optional[Detector] = None, clip_seconds: Optional[float] = None) -> None:
        """``clip_seconds`` (the camera's) is checked against the concept model's training clips when given."""
        self.cfg = cfg
        self.camera_id = camera_id
        self.fps = float(fps)
        self.detector: Detector = detector if detector is not None else build_detector(cfg.detector)
        self._own_motion = None if hasattr(self.detector, "motion") else MotionEstimator()
        self.held = None
        classes = getattr(self.detector, "classes", None)
        if cfg.held_objects is not None:
            from detectors.held_objects import HeldObjectNet, HeldObjectStage  # noqa: PLC0415 - torch only when asked

            h = cfg.held_objects
            self.held = HeldObjectStage(HeldObjectNet.load(h.weights), window=h.window, persist=h.persist,
                                        max_people=h.max_people)
            if classes is not None:
                classes = [c for c in classes if c not in self.held.net.families] + list(self.held.net.families)
        # one tracker and one concept stage (features -> scores -> GMCP window) per camera
        self.tracker = CameraTracker(camera_id, cfg.tracker, self.fps)
        self.concepts = ConceptStage(cfg, self.fps, clip_seconds=clip_seconds, detector_id=detector_id(cfg),
                                     detector_classes=classes)
        self.last_features: Optional[np.ndarray] = None  # the last clip's concept features (training reads them)
        self.frames_analysed = 0
        self.key_frames = 0  # key frames kept per clip (uploads); 0 = none
        self._reset()

    @property
    def models(self) -> dict[str, str]:
        """Model name -> version of everything that contributed to the clip's result."""
        held = {"held_objects": self.held.version} if self.held is not None else {}
        return {"detector": f"{getattr(self.detector, 'name', type(self.detector).__name__)}:"
                            f"{getattr(self.detector, 'version', 'unknown')}",
                "tracker": self.tracker.version, **held, **self.concepts.versions}

    def _reset(self) -> None:
        self._frames = 0
        self._sum: Counter[str] = Counter()
        self._max: Counter[str] = Counter()
        self._tracks: dict[str, list[tuple[float, float, float]]] = {}  # insertion-ordered: foot points
        self._motion_sum = 0.0
        self._with_person = 0
        self._key_cands: list[KeyFrame] = []

    def process(self, frame: np.ndarray, frame_index: int, t: float) -> FrameAnalysis:
        """Analyse one sampled frame (BGR) at stream time ``t`` and add it to the current clip."""
        detections = self.tracker.update(self.detector.detect(frame), frame)
        if self.held is not None:
            # the classifier's bags and weapons replace the detector's own (a nano detector's are noise)
            detections = self.held.update(frame, [d for d in detections if d.cls not in self.held.net.families], t)
        self.concepts.add(frame, detections, t)
        if self._own_motion is not None:
            motion, _ = self._own_motion.apply(frame)
        else:
            motion = float(getattr(self.detector, "motion"))
        counts = Counter(d.cls for d in detections)
        self._frames += 1
        self.frames_analysed += 1
        self._sum.update(counts)
        for cls, n in counts.items():
            self._max[cls] = max(self._max[cls], n)
        for d in detections:
            if d.track_id is not None:
                x1, _, x2, y2 = d.xyxy
                self._tracks.setdefault(f"{self.camera_id}:{d.track_id}", []).append(
                    (round(float(t), 4), round((x1 + x2) / 2.0, 1), round(float(y2), 1)))
        self._motion_sum += motion
        self._with_person += counts.get("person", 0) > 0
        if self.key_frames > 0:
            self._key_cands.append((frame_index, frame.copy(),
                                    [Detection(d.xyxy, d.cls, d.score, d.track_id) for d in detections]))
            if len(self._key_cands) > 4 * self.key_frames:  # bound memory: keep the best candidates so far
                self._key_cands = pick_key_frames(self._key_cands, 2 * self.key_frames)
        return FrameAnalysis(frame_index=frame_index, t=t, detections=detections, motion=motion)

    def end_clip(self, clip_index: int) -> ClipAnalysis:
        """Summarise the clip that ends here and start a new one."""
        n = self._frames
        concept, self.last_features = self.concepts.end_clip(had_detections=sum(self._sum.values()) > 0)
        clip = ClipAnalysis(
            frames=n,
            counts={c: round(v / n, 4) for c, v in sorted(self._sum.items())} if n else {},
            max_counts=dict(sorted(self._max.items())),
            tracks=list(self._tracks),
            track_points=self._tracks,
            motion=round(self._motion_sum / n, 5) if n else 0.0,
            frames_with_person=self._with_person,
            concept=concept,
            models=self.models,
            key_frames=pick_key_frames(self._key_cands, self.key_frames),
        )
        self._reset()
        return clip
