"""Analyse a finite run of in-memory frames through one camera's :class:`detectors.analyzer.ClipAnalyzer`.

:func:`analyze_frames` builds one analyzer (its own detector state, tracker and
GMCP window, as a camera would have), feeds the frames, cuts clips every
``clip_seconds`` of stream time and returns one :class:`ClipAnalysis` per clip:
detections, ``camera:track`` ids, concept scores and the GMCP label; with
``key_frames=N`` each clip keeps up to N frames with their boxes.  Video files
(console uploads included) go through :mod:`streamer.offline` instead, the
camera worker's own source, sampling and clip cutting; :func:`analysis_slot`
is the sampling rule both share.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import numpy as np

from detectors.types import ClipAnalysis


def analysis_slot(t: float, fps: float) -> int:
    """The analysis slot of stream time ``t`` at ``fps``: a worker analyses the first frame of each slot.

    By stream time, not by frame count, so any source rate gives the same analysed
    instants (the camera workers, offline analysis and uploads all sample with it).
    """
    return math.floor(t * fps + 1e-6)


def analyze_frames(frames: Iterable[np.ndarray], cfg: Any, fps: float, *, clip_seconds: float = 2.0,
                   camera_id: str = "upload", key_frames: int = 0, analyzer: Any = None,
                   detector: Any = None, source_fps: Optional[float] = None) -> list[ClipAnalysis]:
    """One ClipAnalysis per ``clip_seconds`` of ``frames`` (BGR arrays), analysed at ``fps``.

    ``source_fps``: the frames' own rate; the frames are then sampled at ``fps`` by
    :func:`analysis_slot`, as a camera worker samples its stream. Without it every
    frame is analysed and taken to be ``1/fps`` apart.
    """
    from detectors.analyzer import ClipAnalyzer

    if not fps > 0 or not clip_seconds > 0:
        raise ValueError(f"fps and clip_seconds must be positive (got {fps!r}, {clip_seconds!r})")
    an = analyzer or ClipAnalyzer(cfg, camera_id, fps, detector=detector,
                                  clip_seconds=clip_seconds if source_fps else None)
    an.key_frames = key_frames  # the analyzer keeps each clip's key frames (detectors.analyzer)
    out: list[ClipAnalysis] = []
    clip_index = 0
    seen = 0
    last_slot = -1
    for i, frame in enumerate(frames):
        t = i / (source_fps or fps)
        if source_fps:
            slot = analysis_slot(t, fps)
            if slot <= last_slot:
                continue
            last_slot = slot
        idx = int(t // clip_seconds)
        if idx != clip_index:
            out.append(an.end_clip(clip_index))
            clip_index = idx
        an.process(frame, i, t)
        seen += 1
    if seen == 0:
        raise ValueError("no frames to analyse")
    out.append(an.end_clip(clip_index))
    return out


def analyze_clip(frames: Iterable[np.ndarray], cfg: Any, fps: float, *, camera_id: str = "upload",
                 key_frames: int = 3, detector: Optional[Any] = None) -> ClipAnalysis:
    """All ``frames`` as a single clip (no cut), with up to ``key_frames`` key frames and their boxes."""
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to analyse")
    return analyze_frames(frames, cfg, fps, clip_seconds=len(frames) / fps + 1.0, camera_id=camera_id,
                          key_frames=key_frames, detector=detector)[0]
