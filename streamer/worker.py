"""One camera worker: source -> sample at the analysis rate -> ClipAnalyzer -> clips -> IndicatorEvents.

:class:`CameraWorker` reads frames from a :mod:`streamer.sources` source, keeps
those that fall in a new slot of the analysis rate (``camera.fps``; by stream
time, so a file gives the same frames every run), feeds them to the camera's
:class:`detectors.analyzer.ClipAnalyzer`, and cuts stream time into fixed
clips of ``clip_seconds``: clip ``k`` covers ``[k*L, (k+1)*L)``.  When a frame
of a later clip arrives (or the live stream time passes the clip's end, or the
source ends, or the worker stops) the clip is summarised and published as an
:class:`~streamer.schemas.IndicatorEvent` on ``imminence.indicators`` (key:
camera id).  A clip in which no frame was analysed (a live outage) produces no
event.

Times.  Every event carries the clip's times on the footage's clock
(``clip_start = origin + k*L``, where ``origin`` is the recording start for a
replay and the wall-clock time of stream time 0 for a live camera), its stream
times and frame range, and ``captured_at``: the wall-clock time its last frame
was decoded, so capture-to-subscriber latency can be measured.

Event ids are deterministic: uuid5 of (run id, camera id, clip index, clip
start).  Replaying the same dataset gives identical ids (consumers drop the
repeats as duplicates); pass ``run_id`` to make a run's ids distinct.

Situations (:mod:`streamer.situations`): each published clip also feeds the
camera's :class:`~streamer.situations.SituationTracker`, whose ``new`` /
``update`` / ``end`` messages go to ``imminence.situations`` right after the
clip's event; the open situation's ``end`` is published when the worker stops.

Camera state heartbeats (:class:`~streamer.schemas.CameraStatus`) go to
``imminence.cameras`` every ``status_interval_s`` and on every state change.
"""
from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from prometheus_client import Counter, Gauge

from detectors.analyzer import ClipAnalyzer
from detectors.clip import analysis_slot
from detectors.config import DetectorsConfig
from detectors.types import ClipAnalysis
from geo.grid import Grid, GridError
from streamer import schemas
from streamer.bus import Bus
from streamer.config import CameraConfig
from streamer.observability import MODEL_INFO, STAGE_SECONDS
from streamer.situations import SituationTracker
from streamer.sources import Frame, Source, open_source

log = logging.getLogger(__name__)

FRAMES_READ = Counter("imminence_camera_frames_read_total", "Frames decoded", ["camera"])
FRAMES_ANALYSED = Counter("imminence_camera_frames_analysed_total", "Frames analysed by the detectors", ["camera"])
FRAMES_DROPPED = Counter("imminence_camera_frames_dropped_total",
                         "Live frames replaced by a newer one before analysis", ["camera"])
CLIPS = Counter("imminence_camera_clips_total", "Clips closed and published as IndicatorEvents", ["camera"])
RECONNECTS = Counter("imminence_camera_reconnects_total", "Source reconnects", ["camera"])
ONLINE = Gauge("imminence_camera_online", "1 while the camera's source delivers frames", ["camera"])
# tracker state (tracked + lost tracks) must stay flat in long runs: the soak bench reads its slope;
# livesum so a restarted camera process's last value does not linger under ``imminence workers``
TRACKER_TRACKS = Gauge("imminence_tracker_tracks", "Tracks the camera's tracker holds, by state (tracked, lost)",
                       ["camera", "state"], multiprocess_mode="livesum")
DECODE = STAGE_SECONDS.labels("decode")  # a live source's read also waits for its newest frame
INFERENCE = STAGE_SECONDS.labels("inference")

#: namespace of the deterministic event ids
EVENT_NAMESPACE = uuid.UUID("6f1d7c9e-2b1a-4c55-9a51-7d4e0f6b1c2a")


def event_id(camera_id: str, clip_index: int, clip_start: datetime, run_id: str = "") -> str:
    """Deterministic id of one camera's clip (same footage and clock -> same id)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{run_id}|{camera_id}|{clip_index}|{clip_start.isoformat()}"))


def camera_cell(grid: Optional[Grid], camera: CameraConfig) -> Optional[str]:
    """The grid cell of a camera's position, or None (no grid, outside it, or of the wrong kind)."""
    if grid is None:
        return None
    p = camera.position
    try:
        return grid.cell_of(lon=p.lon, lat=p.lat, x=p.x, y=p.y)
    except GridError as exc:
        log.warning("camera %s: no cell: %s", camera.id, exc)
        return None


@dataclass
class WorkerSummary:
    camera_id: str
    clips: int = 0
    events: int = 0
    frames_read: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    elapsed_s: float = 0.0
    state: str = "stopped"
    error: Optional[str] = None
    event_ids: list[str] = field(default_factory=list)
    situation_messages: int = 0


@dataclass
class _Clip:
    index: int
    first: Frame
    last: Frame
    frames: int = 0


class CameraWorker:
    """Run one camera until its source ends or :meth:`stop` is called."""

    def __init__(self, camera: CameraConfig, detectors: DetectorsConfig, bus: Bus, grid: Optional[Grid] = None, *,
                 source: Optional[Source] = None, analyzer: Optional[ClipAnalyzer] = None,
                 origin: Optional[datetime] = None, replay: bool = False, run_id: str = "",
                 speed: Optional[float] = 1.0, status_interval_s: float = 2.0,
                 stop_event: Optional[Any] = None, keep_event_ids: bool = False,
                 on_clip: Optional[Callable[[int, ClipAnalysis, Any], None]] = None) -> None:
        """``on_clip(clip_index, analysis, features)`` is called as each clip closes, before its event is
        published (offline analysis and training read clips through it; see :mod:`streamer.offline`)."""
        self.camera = camera
        self.on_clip = on_clip
        self.bus = bus
        self.grid = grid
        self.cell_id = camera_cell(grid, camera)
        self.source = source or open_source(
            camera.source, masks=camera.masks, live=camera.live, speed=speed,
            open_timeout_s=camera.open_timeout_s, read_timeout_s=camera.read_timeout_s,
            watchdog_s=camera.watchdog_s, reconnect_max_s=camera.reconnect_max_s)
        self.analyzer = analyzer or ClipAnalyzer(detectors, camera.id, camera.fps, clip_seconds=camera.clip_seconds)
        self.origin = origin
        self.replay = replay
        self.run_id = run_id
        self.status_interval_s = status_interval_s
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.keep_event_ids = keep_event_ids
        self.summary = WorkerSummary(camera.id)
        self.situations = SituationTracker.for_camera(camera, cell_id=self.cell_id, replay=replay)
        self._clip: Optional[_Clip] = None
        self._last_slot = -1
        self._last_status = 0.0
        self._analysed_at_status = 0
        self._state = "starting"
        self._last_event_at: Optional[datetime] = None
        self._frame_dur: Optional[float] = None
        self._last_decoded_t = 0.0
        self._synced = {"read": 0, "analysed": 0, "dropped": 0, "reconnects": 0}
        self._models_noted = False
        for metric in (FRAMES_READ, FRAMES_ANALYSED, FRAMES_DROPPED, CLIPS, RECONNECTS):
            metric.labels(camera.id)  # every series exists (at 0) from the start

    def health(self) -> dict:
        """For :func:`streamer.observability.set_health`: unhealthy while the source is being reconnected."""
        state = self._state if self._state == "stopped" else self.source.state
        return {"ok": state != "reconnecting", "camera": self.camera.id, "state": state,
                "clips": self.summary.clips, "message": self.source.message}

    def _sync_metrics(self) -> None:
        """Move the source's and analyser's counters into the Prometheus counters (by delta)."""
        cam = self.camera.id
        now = {"read": self.source.frames_read, "analysed": self.analyzer.frames_analysed,
               "dropped": self.source.frames_dropped, "reconnects": self.source.reconnects}
        for key, metric in (("read", FRAMES_READ), ("analysed", FRAMES_ANALYSED), ("dropped", FRAMES_DROPPED),
                            ("reconnects", RECONNECTS)):
            delta = now[key] - self._synced[key]
            if delta > 0:
                metric.labels(cam).inc(delta)
        self._synced = now
        ONLINE.labels(cam).set(1 if self.source.state == "online" else 0)
        tracker = getattr(self.analyzer, "tracker", None)  # an analyser without a tracker exports nothing
        if tracker is not None:
            for state, n in tracker.state_size().items():
                TRACKER_TRACKS.labels(cam, state).set(n)

    # -- control ---------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()

    @property
    def clip_seconds(self) -> float:
        return self.camera.clip_seconds

    # -- main loop -------------------------------------------------------------------
    def run(self) -> WorkerSummary:
        """Process the source; returns the summary.  Raises SourceError when the source cannot be opened."""
        t0 = time.monotonic()
        self.source.open()
        self._publish_status(force=True)
        fps = self.camera.fps
        live = self.source.live
        next_due = 0.0
        try:
            while not self.stop_event.is_set():
                if live and next_due > time.monotonic():
                    # Pace a live source at the analysis rate; the reader keeps only the newest frame meanwhile.
                    self.stop_event.wait(next_due - time.monotonic())
                    continue
                t_read = time.perf_counter()
                frame = self.source.read(timeout=0.5)
                if frame is None:
                    if self.source.finished:
                        break
                    self._close_stale_clip()
                    self._publish_status()
                    continue
                DECODE.observe(time.perf_counter() - t_read)
                self._last_decoded_t = frame.t
                if self._frame_dur is None:
                    nf = self.source.native_fps
                    self._frame_dur = 1.0 / nf if nf else 1.0 / fps
                slot = analysis_slot(frame.t, fps)
                if slot <= self._last_slot:
                    continue  # same analysis slot as the last analysed frame
                self._last_slot = slot
                if live:
                    next_due = frame.mono + (slot + 1 - frame.t * fps) / fps
                self._analyse(frame)
                if math.floor((slot + 1) / fps / self.clip_seconds + 1e-9) != self._clip.index:
                    self._emit()  # the next analysis slot opens a new clip: this one is complete now
                self._publish_status()
        finally:
            if self._clip is not None:
                self._emit()
            self._publish_situations(self.situations.close("stopped"))
            self.summary.frames_read = self.source.frames_read
            self.summary.frames_dropped = self.source.frames_dropped
            self.summary.reconnects = self.source.reconnects
            self.summary.frames_analysed = self.analyzer.frames_analysed
            self.summary.elapsed_s = time.monotonic() - t0
            self._sync_metrics()
            self.source.close()
            self._state = "stopped"
            self._publish_status(force=True)
            self.summary.state = "stopped"
        return self.summary

    def _analyse(self, frame: Frame) -> None:
        if self.origin is None:
            self.origin = frame.wall - timedelta(seconds=frame.t)
        k = math.floor(frame.t / self.clip_seconds + 1e-9)
        if self._clip is not None and k != self._clip.index:
            self._emit()
        if self._clip is None:
            self._clip = _Clip(k, frame, frame)
        with INFERENCE.time():
            self.analyzer.process(frame.image, frame.index, frame.t)
        self._clip.last = frame
        self._clip.frames += 1

    def _close_stale_clip(self) -> None:
        """On a live source that went quiet, publish the open clip once its end has passed."""
        clip = self._clip
        if clip is None or not self.source.live:
            return
        stream_now = clip.last.t + (time.monotonic() - clip.last.mono)
        if stream_now > (clip.index + 1) * self.clip_seconds + 1.0:
            self._emit()

    # -- publishing --------------------------------------------------------------------
    def _emit(self) -> None:
        clip, self._clip = self._clip, None
        if clip is None or clip.frames == 0:
            return
        result: ClipAnalysis = self.analyzer.end_clip(clip.index)
        if self.on_clip is not None:
            self.on_clip(clip.index, result, self.analyzer.last_features)
        L = self.clip_seconds
        start_s = clip.index * L
        end_s = (clip.index + 1) * L
        if self.source.finished or self.stop_event.is_set():  # a last, partial clip ends with its footage
            end_s = min(end_s, self._last_decoded_t + (self._frame_dur or 0.0))
        start_s, end_s = round(start_s, 6), round(max(end_s, start_s), 6)
        clip_start = self.origin + timedelta(seconds=start_s)
        clip_end = self.origin + timedelta(seconds=end_s)
        p = self.camera.position
        concept = None
        if result.concept is not None:
            c = result.concept
            concept = schemas.ConceptResult(label=c.label, score=c.score, scores=c.scores, method=c.method,
                                            gmcp_objective=c.objective, window=c.window,
                                            fallback_reason=c.fallback_reason, uncertain=c.uncertain)
        event = schemas.IndicatorEvent(
            event_id=event_id(self.camera.id, clip.index, clip_start, self.run_id),
            camera_id=self.camera.id, cell_id=self.cell_id, clip_index=clip.index,
            clip_start=clip_start, clip_end=clip_end, stream_start_s=start_s, stream_end_s=end_s,
            frame_first=clip.first.index, frame_last=clip.last.index, captured_at=clip.last.wall,
            published_at=datetime.now(timezone.utc), lon=p.lon, lat=p.lat, x=p.x, y=p.y,
            detections=schemas.DetectionSummary(
                frames=result.frames, counts=result.counts, max_counts=result.max_counts, tracks=result.tracks,
                motion=result.motion, frames_with_person=result.frames_with_person),
            concept=concept, models=result.models, replay=self.replay)
        self.bus.publish(schemas.TOPIC_INDICATORS, event)
        self._publish_situations(self.situations.observe(event, getattr(result, "track_points", None)))
        CLIPS.labels(self.camera.id).inc()
        self._sync_metrics()  # frame counters move with the clips they belong to
        if result.models and not self._models_noted:
            for name, version in result.models.items():
                MODEL_INFO.labels(name, str(version)).set(1)
            self._models_noted = True
        self.summary.clips += 1
        self.summary.events += 1
        if self.keep_event_ids:
            self.summary.event_ids.append(event.event_id)
        self._last_event_at = event.published_at

    def _publish_situations(self, messages: list[schemas.SituationEvent]) -> None:
        for msg in messages:
            self.bus.publish(schemas.TOPIC_SITUATIONS, msg)
            self.summary.situation_messages += 1

    def _publish_status(self, force: bool = False) -> None:
        state = self._state if self._state == "stopped" else self.source.state
        now = time.monotonic()
        changed = state != getattr(self, "_published_state", None)
        if not (force or changed or now - self._last_status >= self.status_interval_s):
            return
        interval = now - self._last_status if self._last_status else 0.0
        analysed = self.analyzer.frames_analysed
        fps = (analysed - self._analysed_at_status) / interval if interval > 0 else 0.0
        stats = self.bus.stats()
        p = self.camera.position
        status = schemas.CameraStatus(
            camera_id=self.camera.id, cell_id=self.cell_id, lon=p.lon, lat=p.lat, state=state,
            at=datetime.now(timezone.utc), fps_analysed=round(fps, 3), frames_read=self.source.frames_read,
            frames_analysed=analysed, frames_dropped=self.source.frames_dropped,
            reconnects=self.source.reconnects, clips=self.summary.clips, events_published=self.summary.events,
            events_buffered=stats.buffered, events_dropped=stats.dropped, last_event_at=self._last_event_at,
            message=self.source.message)
        self.bus.publish(schemas.TOPIC_CAMERAS, status)
        self._sync_metrics()
        if changed:
            log.info("camera %s: %s", self.camera.id, state, extra={"camera": self.camera.id})
        self._published_state = state
        self._last_status = now
        self._analysed_at_status = analysed
