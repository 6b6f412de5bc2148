"""Offline analysis of a video file through the camera worker's own path.

Training, evaluation, benchmarks and console uploads must see clips exactly as a live worker
does: the same decoding (:class:`streamer.sources.FileSource`, privacy masks
applied right after decode), the same sampling at the analysis rate (one frame
per slot of ``camera.fps`` by stream time), the same clip cutting and the same
:class:`detectors.analyzer.ClipAnalyzer`. So :func:`analyse_file` simply runs a
:class:`streamer.worker.CameraWorker` over the file, unpaced, onto an in-memory
bus, and collects every clip as it closes (analysis, concept label, features).
A still image (``still=True``) is a one-frame stream (:class:`streamer.sources.ImageSource`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from detectors.analyzer import ClipAnalyzer
from detectors.config import DetectorsConfig
from detectors.types import ClipAnalysis
from streamer.config import CameraConfig


@dataclass
class AnalysedClip:
    """One clip as the worker closed it."""

    index: int  # clip k covers stream time [k * clip_seconds, (k + 1) * clip_seconds)
    analysis: ClipAnalysis
    features: Optional[np.ndarray]


def analyse_file(path: str | Path, camera: CameraConfig, detectors: DetectorsConfig, *,
                 collect_features: bool = False, detector: Any = None, max_seconds: Optional[float] = None,
                 on_frame: Optional[Callable[[float], None]] = None, key_frames: int = 0,
                 still: bool = False) -> list[AnalysedClip]:
    """Every clip of a video file, analysed as camera ``camera`` would analyse it live.

    ``collect_features`` computes clip features even without a concept model
    (training). ``key_frames`` keeps up to that many masked frames with their
    boxes per clip (uploads; :attr:`detectors.analyzer.ClipAnalyzer.key_frames`).
    ``still``: ``path`` is an image, analysed as a one-clip stream of one frame. ``max_seconds`` stops after that much stream time (clips starting
    later are not returned). ``on_frame(t)`` is called with each decoded frame's
    stream time (progress bars).
    """
    from streamer.bus import InMemoryBus
    from streamer.sources import FileSource, ImageSource, Source
    from streamer.worker import CameraWorker

    analyzer = ClipAnalyzer(detectors, camera.id, camera.fps, detector=detector, clip_seconds=camera.clip_seconds)
    analyzer.concepts.collect_features = collect_features
    analyzer.key_frames = key_frames
    clips: list[AnalysedClip] = []
    worker: Optional[CameraWorker] = None

    def gate(t: float) -> None:
        if on_frame is not None:
            on_frame(t)
        if max_seconds is not None and t >= max_seconds and worker is not None:
            worker.stop()

    def keep(index: int, analysis: ClipAnalysis, features: Any) -> None:
        if max_seconds is None or index * camera.clip_seconds < max_seconds:
            clips.append(AnalysedClip(index, analysis, None if features is None else np.array(features)))

    source: Source = (ImageSource(path, masks=camera.masks) if still
                      else FileSource(path, masks=camera.masks, speed=None, gate=gate))
    with InMemoryBus() as bus:
        worker = CameraWorker(camera, detectors, bus, source=source, analyzer=analyzer, replay=True,
                              status_interval_s=3600.0, on_clip=keep)
        worker.run()
    return clips


@dataclass
class VideoClips:
    """One camera's clips of a dataset: features, ground truth, and (when a model ran) labels and scores."""

    camera_id: str
    features: list[np.ndarray] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)
    labels: list[Optional[str]] = field(default_factory=list)
    methods: list[Optional[str]] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # clip index (in the ground truth) of each kept clip
    detected: list[bool] = field(default_factory=list)  # the clip had any detection
    episodes: list[tuple[str, int, int]] = field(default_factory=list)  # staged incidents: kind, first, end clip
    frames: int = 0
    seconds: float = 0.0


def analyse_dataset(root: str | Path, detectors: DetectorsConfig, *, fps: float = 5.0,
                    max_seconds: Optional[float] = None, progress: bool = True,
                    detector_factory: Optional[Callable[[], Any]] = None) -> list[VideoClips]:
    """Every video of a dataset with ground truth through :func:`analyse_file`; one :class:`VideoClips` each.

    Each camera is analysed at its manifest's analysis rate, else ``fps`` (the
    replay's default), with the ground truth's clip length, as ``imminence
    replay`` would run it. Clips without ground truth are skipped.
    """
    from tqdm import tqdm

    from streamer.dataset import Dataset, DatasetError

    ds = Dataset(root)
    out: list[VideoClips] = []
    for entry in ds.videos:
        gt = ds.ground_truth(entry)
        if gt is None or not gt.clips:
            raise DatasetError(f"{ds.root}: video {entry.file!r} has no ground-truth clips to learn from")
        truth = {c.index: c.concept for c in gt.clips}
        camera = CameraConfig(id=entry.camera_id, source=str(ds.video_path(entry)), position=entry.position,
                              fps=entry.fps or fps, clip_seconds=gt.clip_seconds)
        bar = tqdm(total=len(gt.frames) or None, desc=f"{Path(root).name}/{entry.camera_id}", unit="frame",
                   disable=not progress, leave=False)
        last = [0.0]

        def tick(t: float) -> None:
            bar.update(1)
            last[0] = t

        clips = analyse_file(ds.video_path(entry), camera, detectors, collect_features=True,
                             detector=detector_factory() if detector_factory else None, max_seconds=max_seconds,
                             on_frame=tick)
        bar.close()
        vc = VideoClips(camera_id=entry.camera_id, episodes=[(e.kind, e.first_clip, e.end_clip) for e in gt.episodes])
        for c in clips:
            vc.frames += c.analysis.frames
            if c.analysis.frames == 0 or c.index not in truth:
                continue
            concept = c.analysis.concept
            vc.features.append(c.features)
            vc.truth.append(truth[c.index])
            vc.indices.append(c.index)
            vc.detected.append(sum(c.analysis.counts.values()) > 0)
            vc.labels.append(concept.label if concept else None)
            vc.methods.append(concept.method if concept else None)
            vc.scores.append(dict(concept.scores) if concept else {})
        vc.seconds = last[0]
        out.append(vc)
    return out


def save_clips(path: str | Path, videos: list[VideoClips]) -> Path:
    """Cache analysed clips (features, truth, detections, episodes) as one ``.npz`` (no pickle)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = [{"camera_id": v.camera_id, "truth": v.truth, "indices": v.indices, "detected": v.detected,
             "episodes": v.episodes, "frames": v.frames, "seconds": v.seconds} for v in videos]
    arrays = {f"x{i}": np.asarray(v.features, dtype=np.float64).reshape(len(v.features), -1)
              for i, v in enumerate(videos)}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_clips(path: str | Path) -> list[VideoClips]:
    """Read clips cached by :func:`save_clips` (labels and scores are not cached: re-label them)."""
    import json

    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        out = []
        for i, m in enumerate(meta):
            X = z[f"x{i}"]
            out.append(VideoClips(camera_id=m["camera_id"], features=[row for row in X], truth=m["truth"],
                                  indices=m["indices"], detected=m["detected"],
                                  episodes=[tuple(e) for e in m["episodes"]], frames=m["frames"],
                                  seconds=m["seconds"]))
    return out
