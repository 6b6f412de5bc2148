"""Replay recorded footage through the same camera worker code as live cameras.

:func:`replay_dataset` plays a dataset folder (:class:`streamer.dataset.Dataset`:
a manifest of videos with camera ids, positions and recording start times) or a
single video file.  Each video runs in its own thread as a
:class:`~streamer.worker.CameraWorker` over a :class:`~streamer.sources.FileSource`
that keeps every frame; frames are sampled to the analysis rate by stream time,
and event times are the recording's start plus stream time.  ``speed`` paces
playback (1 = real time, 4 = four times faster, ``None`` = as fast as it
decodes).

The cameras of a dataset share one clock on the recordings' timeline
(:class:`ReplayClock`): at ``speed`` 1 or 4 a video recorded a minute after
another starts a minute (or 15 s) later, and at any speed no camera runs more
than ``max_skew_s`` of recording time ahead of the slowest, so downstream
event-time windows see the cameras' events interleaved as they happened rather
than one camera's whole recording first.

Deterministic: the same dataset gives the same events, ids included (ids are
uuid5 of camera, clip index and clip start; see :func:`streamer.worker.event_id`),
so a consumer that already saw a replay drops a repeat of it as duplicates.
Pass ``run_id`` to give a run ids of its own.  Only ``published_at`` and
``captured_at`` (wall-clock stamps) differ between runs.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from detectors.config import DetectorsConfig
from geo.grid import Grid
from streamer.bus import Bus
from streamer.config import CameraConfig, Position
from streamer.dataset import MANIFEST, Dataset, DatasetError, VideoEntry
from streamer.sources import FileSource, SourceError, recording_start
from streamer.worker import CameraWorker, WorkerSummary

log = logging.getLogger(__name__)


@dataclass
class ReplaySummary:
    cameras: int = 0
    clips: int = 0
    events: int = 0
    frames_decoded: int = 0
    frames_analysed: int = 0
    elapsed_s: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)  # camera id -> error
    per_camera: dict[str, WorkerSummary] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Frames decoded per second of wall time, all cameras together."""
        return self.frames_decoded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def analysed_fps(self) -> float:
        return self.frames_analysed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def table(self) -> str:
        lines = [f"{'camera':<16}{'clips':>7}{'events':>8}{'decoded':>9}{'analysed':>10}{'s':>8}"]
        for cam, s in sorted(self.per_camera.items()):
            lines.append(f"{cam:<16}{s.clips:>7}{s.events:>8}{s.frames_read:>9}{s.frames_analysed:>10}"
                         f"{s.elapsed_s:>8.1f}")
        for cam, err in sorted(self.failed.items()):
            lines.append(f"{cam:<16} FAILED: {err}")
        lines.append(f"total: {self.cameras} camera(s), {self.clips} clips, {self.events} events, "
                     f"{self.frames_decoded} frames decoded ({self.frames_analysed} analysed) in "
                     f"{self.elapsed_s:.1f} s = {self.fps:.1f} frames/s")
        return "\n".join(lines)


class ReplayClock:
    """One timeline for every camera of a replay: pacing at ``speed`` and a bound on how far one runs ahead."""

    def __init__(self, starts: dict[str, datetime], speed: Optional[float], max_skew_s: float = 2.0,
                 stop_event: Optional[threading.Event] = None) -> None:
        self.origin = min(starts.values()) if starts else datetime.now(timezone.utc)
        self.offset = {cam: (start - self.origin).total_seconds() for cam, start in starts.items()}
        self.position = dict(self.offset)  # recording time reached by each active camera, s from origin
        self.speed = speed
        self.max_skew_s = max_skew_s
        self.stop_event = stop_event or threading.Event()
        self._cond = threading.Condition()
        self._wall0: Optional[float] = None

    def gate(self, camera_id: str) -> Callable[[float], None]:
        """The FileSource gate of one camera: call with each frame's stream time."""
        return lambda t: self.wait(camera_id, t)

    def wait(self, camera_id: str, t: float) -> None:
        when = self.offset[camera_id] + t
        with self._cond:
            self.position[camera_id] = when
            self._cond.notify_all()
            while not self.stop_event.is_set() and when > min(self.position.values()) + self.max_skew_s:
                self._cond.wait(0.5)
            if self._wall0 is None:
                self._wall0 = time.monotonic()
        if self.speed:
            delay = self._wall0 + when / self.speed - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)

    def done(self, camera_id: str) -> None:
        """A camera finished (or failed): it no longer holds the others back."""
        with self._cond:
            self.position.pop(camera_id, None)
            self._cond.notify_all()


@dataclass
class ReplayVideo:
    """One video to replay: where it is, which camera it stands for, when it was recorded."""

    path: Path
    camera: CameraConfig
    start: datetime


def dataset_videos(path: str | Path, *, fps: float = 5.0, clip_seconds: float = 2.0) -> tuple[list[ReplayVideo], Optional[Any]]:
    """The videos of a dataset folder with their camera configs, and the manifest's grid config (or None)."""
    ds = Dataset(path)
    out = []
    for v in ds.videos:
        out.append(ReplayVideo(ds.video_path(v), _camera(v, fps, clip_seconds), v.start))
    return out, ds.manifest.grid


def _camera(v: VideoEntry, fps: float, clip_seconds: float) -> CameraConfig:
    return CameraConfig(id=v.camera_id, source=str(v.file), position=v.position, fps=v.fps or fps,
                        clip_seconds=clip_seconds, live=False)


def single_video(path: str | Path, camera_id: str, position: Position, *, start: Optional[datetime] = None,
                 fps: float = 5.0, clip_seconds: float = 2.0) -> ReplayVideo:
    """A lone video file as a replay; ``start`` defaults to the file's modification time (stable per file)."""
    p = Path(path)
    if start is None:
        start = recording_start(p)
    cam = CameraConfig(id=camera_id, source=str(p), position=position, fps=fps, clip_seconds=clip_seconds,
                       live=False)
    return ReplayVideo(p, cam, start)


def replay_videos(videos: list[ReplayVideo], bus: Bus, cfg: Any = None, grid: Optional[Grid] = None,
                  speed: Optional[float] = None, *, run_id: str = "", keep_event_ids: bool = False,
                  stop_event: Optional[threading.Event] = None) -> ReplaySummary:
    """Replay videos concurrently (one thread per camera) and wait for them all."""
    detectors = _detectors_config(cfg)
    summary = ReplaySummary(cameras=len(videos))
    stop_event = stop_event or threading.Event()
    lock = threading.Lock()
    clock = ReplayClock({v.camera.id: v.start for v in videos}, speed, stop_event=stop_event)

    def play(v: ReplayVideo) -> None:
        try:
            source = FileSource(v.path, masks=v.camera.masks, speed=None, gate=clock.gate(v.camera.id))
            worker = CameraWorker(v.camera, detectors, bus, grid, source=source, origin=v.start, replay=True,
                                  run_id=run_id, speed=speed, stop_event=stop_event,
                                  keep_event_ids=keep_event_ids)
            result = worker.run()
        except (SourceError, ValueError, OSError) as exc:
            log.error("replay of camera %s failed: %s", v.camera.id, exc)
            with lock:
                summary.failed[v.camera.id] = str(exc)
            return
        except Exception as exc:  # a detector bug in one camera must not hide the others' results
            log.exception("replay of camera %s crashed", v.camera.id)
            with lock:
                summary.failed[v.camera.id] = f"{type(exc).__name__}: {exc}"
            return
        finally:
            clock.done(v.camera.id)
        with lock:
            summary.per_camera[v.camera.id] = result
        log.info("camera %s replayed: %d clips, %d frames in %.1fs", v.camera.id, result.clips,
                 result.frames_read, result.elapsed_s)

    t0 = time.monotonic()
    threads = [threading.Thread(target=play, args=(v,), name=f"replay:{v.camera.id}", daemon=True)
               for v in videos]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:
        stop_event.set()
        for t in threads:
            t.join(10)
        raise
    finally:
        bus.flush(30)
        summary.elapsed_s = time.monotonic() - t0
        for s in summary.per_camera.values():
            summary.clips += s.clips
            summary.events += s.events
            summary.frames_decoded += s.frames_read
            summary.frames_analysed += s.frames_analysed
    return summary


def replay_dataset(path: str | Path, bus: Bus, cfg: Any = None, grid: Optional[Grid] = None,
                   speed: Optional[float] = None, *, fps: float = 5.0, clip_seconds: float = 2.0,
                   run_id: str = "", keep_event_ids: bool = False,
                   stop_event: Optional[threading.Event] = None) -> ReplaySummary:
    """Replay a dataset folder through camera workers onto ``bus``; returns when every video is done.

    ``cfg`` is a :class:`DetectorsConfig` or any object with a ``detectors``
    attribute (the root configuration); None means the defaults (the OpenCV
    detector).  ``grid`` places the cameras; without it the manifest's grid is
    used, and without either, events have no cell.  ``fps`` is the analysis
    rate of videos whose manifest entry names none.
    """
    p = Path(path)
    if not (p / MANIFEST).exists() and p.is_dir():
        raise DatasetError(f"{p}: no {MANIFEST} in this folder (not a dataset)")
    videos, grid_cfg = dataset_videos(p, fps=fps, clip_seconds=clip_seconds)
    if grid is None and grid_cfg is not None:
        grid = Grid.from_config(grid_cfg, base_dir=p)
    return replay_videos(videos, bus, cfg, grid, speed, run_id=run_id, keep_event_ids=keep_event_ids,
                         stop_event=stop_event)


def _detectors_config(cfg: Any) -> DetectorsConfig:
    if cfg is None:
        return DetectorsConfig()
    if isinstance(cfg, DetectorsConfig):
        return cfg
    det = getattr(cfg, "detectors", None)
    if isinstance(det, DetectorsConfig):
        return det
    raise TypeError(f"expected a DetectorsConfig or a config with .detectors, got {type(cfg).__name__}")
