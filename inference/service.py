"""The scoring service: indicator events in, per-cell crime imminence out.

A consumer-group member on ``imminence.indicators`` (through :class:`streamer.bus.Bus`:
Kafka in production, the in-memory bus in unit tests), turned by the shared
:class:`streamer.consume.ConsumerLoop` (its commit point is :meth:`ScoringService.emit`'s
publish and flush; broker errors back off by its policy).  Each polled event is
checked (known cell, clock not far in the future, not a duplicate) and counted
in its cell's event-time windows (:mod:`inference.windows`).  Every
``emit_interval_s`` the changed windows are scored by the four crime models
and published as :class:`~streamer.schemas.CellImminence` to ``imminence.cells``
(key: cell id), then the producer is flushed and only then are the consumed
offsets committed.

Replays beside live cameras: an event says whether it comes from a recording
(``IndicatorEvent.replay``).  Windows close on the watermark of their own clock
(live or replay, :mod:`inference.windows`), so a recording from May replayed
while live cameras publish today is counted, not skipped as too late, and a
cell message says ``replay: true`` when every event of its window was
replayed: the map service then ages it in the recording's time, not the wall
clock's.

Delivery, restarts and duplicates:

* Every message of a window carries the window's *full* aggregate (not a
  delta) and ``message_id = cell|window_start|revision``; downstream keeps the
  highest revision per (cell, window) (:mod:`streamer.revisions`).
* Offsets are committed after the outputs are published, so a crash loses
  nothing: uncommitted events are delivered again.  Those redelivered events
  may belong to windows already published.  So every instance follows
  ``imminence.cells`` itself: at start-up it reads it from the beginning
  (messages younger than ``restore_horizon_s``) until idle, and then keeps
  reading it between polls, folding each message into its windows as a union
  of event-id sets (:meth:`WindowAggregator.merge`; messages carry every id and
  its concept).  A redelivered event already in a window's ids is a duplicate,
  not a second count.  The same union makes instances of one consumer group
  converge: a cell whose cameras sit on partitions of different instances, or
  a window that moved in a rebalance, ends with one message (the highest
  revision) that counts each event once.  Beyond ``max_event_ids`` ids per
  window (default 5000) a message is truncated and that guarantee is lost for
  the window (logged).
* SIGTERM (``stop()``): the current batch is finished, every changed window
  published, the producer flushed, offsets committed, then the service exits.

Skips are counted (``stats()`` and Prometheus counters) and logged at most once
per ``_LOG_EVERY_S`` per reason and camera: events with no cell or a cell outside the
grid, events of cameras not configured (when ``scoring.known_cameras_only``), events stamped more than ``max_future_s`` ahead of the wall clock, and
events whose windows are closed (too late; also counted per camera in
``imminence_scoring_too_late_total``).  Malformed messages never get
here: the bus dead-letters them to ``imminence.dlq``.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Mapping, Optional

from prometheus_client import Counter, Gauge, Histogram

from inference.config import ScoringConfig
from inference.crime_models import CrimeModel, score_rows
from inference.windows import Merge, Outcome, WindowAggregator, WindowState, clock_of
from streamer.bus import Bus, Received, Subscription
from streamer.consume import ConsumerLoop
from streamer.dedup import Deduplicator
from streamer.observability import MODEL_INFO
from geo.vocabulary import CRIME_TYPES
from streamer.schemas import (TOPIC_CELLS, TOPIC_INDICATORS, CellImminence, IndicatorEvent,
                              RuleFiring, utcnow)

log = logging.getLogger(__name__)

EVENTS = Counter("imminence_scoring_events_total", "Indicator events read by the scoring service, by outcome",
                 ["outcome"])
CELLS_PUBLISHED = Counter("imminence_scoring_cells_published_total", "CellImminence messages published")
OPEN_WINDOWS = Gauge("imminence_scoring_open_windows", "(cell, window) aggregates held in memory")
TOO_LATE = Counter("imminence_scoring_too_late_total",
                   "Events not counted because every window of theirs had closed, by camera", ["camera"])
LAG = Histogram("imminence_scoring_lag_seconds", "Event publication to cell update publication",
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))

_LOG_EVERY_S = 10.0
_LAG_EVERY_S = 5.0  # consumer lag asks the broker for end offsets: not on every emit
_OUTCOMES = ("in", "added", "late", "too_late", "duplicate", "unknown_cell", "unknown_camera", "future",
             "no_concept")


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class ScoringService:
    """Aggregate indicator events per (cell, window), score them, publish CellImminence.

    ``cells`` is the set of valid cell ids (the grid's); None accepts any cell id.
    ``cameras``, when given, is the set of known camera ids; events of other cameras are skipped.
    ``clock`` gives wall-clock Unix seconds (replaceable in tests).
    """

    def __init__(self, bus: Bus, models: Mapping[str, CrimeModel], cfg: Optional[ScoringConfig] = None, *,
                 cells: Optional[set[str]] = None, cameras: Optional[set[str]] = None, topic_in: str = TOPIC_INDICATORS,
                 topic_out: str = TOPIC_CELLS, clock: Callable[[], float] = time.time,
                 client_id: Optional[str] = None) -> None:
        missing = [c for c in CRIME_TYPES if c not in models]
        if missing:
            raise ValueError(f"models missing for crime type(s) {missing}")
        self.bus = bus
        self.models = dict(models)
        self.cfg = cfg or ScoringConfig()
        self.cells = cells
        self.cameras = cameras
        self.topic_in = topic_in
        self.topic_out = topic_out
        self.clock = clock
        self.client_id = client_id
        self.agg = WindowAggregator(self.cfg.window_s, self.cfg.slide_s, self.cfg.allowed_lateness_s,
                                    self.cfg.source_idle_s)
        self._too_late_by_camera: dict[str, int] = {}
        self._recent = Deduplicator(self.cfg.dedupe_size)  # bounded memory of ids, to count duplicates
        self._stop = threading.Event()
        self._loop = ConsumerLoop(bus, [topic_in], group=self.cfg.group, client_id=client_id, from_beginning=True,
                                  max_records=self.cfg.max_poll_records, handle=self.process,
                                  after_batch=self._after_batch, lag_every_s=_LAG_EVERY_S, stop=self._stop,
                                  name="scoring")
        self._force_emit = False
        self._follower: Optional[Subscription] = None
        self._merges: dict[str, int] = {}
        self._last_emit = 0.0
        self._last_log: dict[str, float] = {}
        self._counts = {k: 0 for k in _OUTCOMES}
        self._counters = {k: EVENTS.labels(k) for k in _OUTCOMES}  # label lookups are slow per event
        self._published = 0
        self._restored = 0
        self._lags: list[float] = []
        self.model_versions = {c: m.version for c, m in self.models.items()}
        for crime, version in self.model_versions.items():
            MODEL_INFO.labels(f"anfis-{crime}", str(version)).set(1)
        for crime, m in self.models.items():
            if abs(m.window_s - self.cfg.window_s) > 1e-9:
                log.warning("the %s model was trained on %g s windows, the service uses %g s: counts differ in scale",
                            crime, m.window_s, self.cfg.window_s)

    # -- lifecycle -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its batch, publish, commit and return (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def restore(self) -> int:
        """Read ``imminence.cells`` from the start until idle, folding every open window in.

        The subscription stays open: :meth:`follow` keeps merging what other
        instances (and this one) publish.  Returns the windows rebuilt.
        """
        self._follower = self.bus.subscribe([self.topic_out], None, from_beginning=True, client_id=self.client_id)
        idle_since = time.monotonic()
        before = self._merges.get("created", 0)
        while time.monotonic() - idle_since < self.cfg.restore_idle_s:
            if self.follow(timeout=0.5):
                idle_since = time.monotonic()
        self._restored = self._merges.get("created", 0) - before
        log.info("restored %d open window(s) from %s", self._restored, self.topic_out)
        return self._restored

    def follow(self, timeout: float = 0.0) -> int:
        """Merge cell messages published since the last call (own and other instances'); returns how many."""
        if self._follower is None:
            return 0
        recs = self._follower.poll(timeout=timeout, max_records=2000)
        horizon = self.clock() - self.cfg.restore_horizon_s
        for r in recs:
            m = r.event
            if not isinstance(m, CellImminence) or m.produced_at.timestamp() < horizon:
                continue
            if m.events > len(m.event_ids):
                self._note_truncated(m)
            outcome = self.agg.merge(m.cell_id, m.window_start.timestamp(), m.window_end.timestamp(), m.revision,
                                     m.event_ids, m.event_concepts, m.cameras, m.concept_counts, m.events,
                                     replay=m.replay)
            self._merges[outcome.value] = self._merges.get(outcome.value, 0) + 1
            if outcome is Merge.CONFLICT:
                log.warning("window %s of cell %s: another instance's message lists no per-event concepts; "
                            "kept this instance's count", m.window_start.isoformat(), m.cell_id)
        return len(recs)

    def _note_truncated(self, m: CellImminence) -> None:
        now = time.monotonic()
        if now - self._last_log.get("truncated", -1e9) >= _LOG_EVERY_S:
            self._last_log["truncated"] = now
            log.warning("window %s of cell %s holds %d events but its message only %d ids: redelivered "
                        "events beyond those may count twice", m.window_start.isoformat(), m.cell_id, m.events,
                        len(m.event_ids))

    def open(self) -> Subscription:
        if self.cfg.restore:
            self.restore()
        sub = self._loop.open()
        self._last_emit = time.monotonic()  # first publication one emit interval after the start
        return sub

    def step(self, poll_timeout_s: float = 0.2, force_emit: bool = False) -> int:
        """One loop turn: poll and count, merge published cells, publish+commit when due; returns records."""
        if self._loop.subscription is None:
            self.open()
        self._force_emit = force_emit
        return self._loop.step(poll_timeout_s)

    def _after_batch(self) -> bool:
        """The loop's commit point: merge published cells; when due, publish and flush (True: commit)."""
        self.follow()
        if self._force_emit or time.monotonic() - self._last_emit >= self.cfg.emit_interval_s or self._stop.is_set():
            return self._publish_due() is not None
        return False

    def close(self) -> None:
        """Leave the group without committing (what was not committed is delivered again)."""
        self._loop.close()
        if self._follower is not None:
            self._follower.close()
        self._follower = None

    def run(self, *, idle_exit_s: Optional[float] = None, poll_timeout_s: float = 0.2) -> dict:
        """Consume until :meth:`stop` (or ``idle_exit_s`` without a record); returns :meth:`stats`."""
        if self._loop.subscription is None:
            self.open()
        self._force_emit = False  # the loop's turns publish when due
        try:
            self._loop.run(idle_exit_s=idle_exit_s, poll_timeout=poll_timeout_s,
                           finish=lambda: self._publish_due() is not None)
        finally:
            self.close()
        log.info("scoring stopped: %s", self.stats())
        return self.stats()

    # -- processing ---------------------------------------------------------------------------
    def _count(self, outcome: str, msg: Optional[str] = None, *args: object, ev: Optional[IndicatorEvent] = None) -> None:
        self._counts[outcome] += 1
        self._counters[outcome].inc()
        if msg is not None:
            now = time.monotonic()
            key = f"{outcome}|{ev.camera_id}" if ev else outcome  # per camera: one camera never hides another
            if now - self._last_log.get(key, -1e9) >= _LOG_EVERY_S:
                self._last_log[key] = now
                extra = {"camera": ev.camera_id, "cell": ev.cell_id, "event_id": ev.event_id} if ev else None
                log.warning(msg + " (%d so far)", *args, self._counts[outcome], extra=extra)

    def process(self, records: list[Received]) -> None:
        """Count a batch of records into the windows (publishing happens in :meth:`emit`)."""
        now = self.clock()
        for r in records:
            ev = r.event
            if not isinstance(ev, IndicatorEvent):
                continue
            self._count("in")
            if ev.cell_id is None or (self.cells is not None and ev.cell_id not in self.cells):
                self._count("unknown_cell", "skipped event %s of camera %s: cell %r is not in the grid",
                            ev.event_id, ev.camera_id, ev.cell_id, ev=ev)
                continue
            if self.cameras is not None and ev.camera_id not in self.cameras:
                self._count("unknown_camera", "skipped event %s: camera %r is not configured",
                            ev.event_id, ev.camera_id, ev=ev)
                continue
            t = ev.clip_start.timestamp()
            if t > now + self.cfg.max_future_s:
                self._count("future", "skipped event %s of camera %s: stamped %s, %.0f s ahead of the clock",
                            ev.event_id, ev.camera_id, ev.clip_start.isoformat(), t - now, ev=ev)
                continue
            seen = self._recent.seen(ev.event_id)
            concept = ev.concept.label if ev.concept is not None else None
            if concept is None:
                self._count("no_concept")
            pub = ev.published_at.timestamp() if ev.published_at is not None else (
                r.timestamp_ms / 1000.0 if r.timestamp_ms else None)
            outcome = self.agg.add(ev.event_id, ev.cell_id, t, concept, ev.camera_id, now, pub, replay=ev.replay)
            if outcome is Outcome.DUPLICATE or (seen and outcome is Outcome.TOO_LATE):
                self._count("duplicate")
            elif outcome is Outcome.TOO_LATE:
                clock = clock_of(ev.replay)
                self._too_late_by_camera[ev.camera_id] = self._too_late_by_camera.get(ev.camera_id, 0) + 1
                TOO_LATE.labels(ev.camera_id).inc()
                self._count("too_late", "skipped event %s of camera %s at %s: its windows closed (%s watermark %s; "
                            "this camera's latest clip starts %s: a clock stepped back shows as a gap)",
                            ev.event_id, ev.camera_id, ev.clip_start.isoformat(), clock,
                            _iso(self.agg.watermarks[clock]).isoformat(),
                            _iso(self.agg.source_watermark(ev.camera_id, clock)).isoformat(), ev=ev)
            else:
                self._count(outcome.value)

    def emit(self) -> int:
        """Score and publish every changed window, flush, then commit; returns messages published."""
        n = self._publish_due()
        if n is None:
            return 0
        self._loop.commit()
        return n

    def _publish_due(self) -> Optional[int]:
        """Publish every changed window and flush; the count, or None when not acknowledged."""
        self._last_emit = time.monotonic()
        final = self.agg.expire()
        ready = self.agg.dirty() + final
        if ready:
            self._publish(ready)
            if not self.bus.flush(30.0):
                # not acknowledged: do not commit (the events will be delivered again after a
                # restart) and publish these windows again next time
                log.error("publishing %d cell message(s) was not acknowledged; offsets not committed", len(ready))
                for w in ready:
                    w.dirty = True
                    if (w.cell_id, w.start) not in self.agg.windows:
                        self.agg.windows[(w.cell_id, w.start)] = w
                return None
        OPEN_WINDOWS.set(len(self.agg.windows))
        return len(ready)

    def _publish(self, windows: list[WindowState]) -> None:
        rows = [(w.cell_id, w.start, w.concept_counts) for w in windows]
        scored = score_rows(self.models, rows, self.cfg.top_rules)
        produced = utcnow()
        now = time.time()  # lag is measured on the wall clock, like the events' publication stamps
        for w, s in zip(windows, scored):
            w.revision += 1
            ids = list(w.event_ids)
            concepts = list(w.event_ids.values())
            if len(ids) > self.cfg.max_event_ids:
                log.warning("window %s of cell %s has %d events; only %d ids fit in its message",
                            _iso(w.start).isoformat(), w.cell_id, len(ids), self.cfg.max_event_ids)
                ids = ids[-self.cfg.max_event_ids:]
                concepts = concepts[-self.cfg.max_event_ids:]
            ws = _iso(w.start)
            msg = CellImminence(
                message_id=f"{w.cell_id}|{ws.isoformat()}|{w.revision}", cell_id=w.cell_id,
                window_start=ws, window_end=_iso(w.end), revision=w.revision,
                imminence={c: round(v, 4) for c, v in s["imminence"].items()},
                flags={c: v > self.cfg.threshold for c, v in s["imminence"].items()},
                threshold=self.cfg.threshold, events=w.events, cameras=sorted(w.cameras),
                concept_counts=dict(w.concept_counts), inputs=s["inputs"],
                top_rules={c: [RuleFiring(rule=t, strength=min(1.0, max(0.0, st)), output=o) for t, st, o in rules]
                           for c, rules in s["top_rules"].items()},
                event_ids=ids, event_concepts=concepts, produced_at=produced, models=self.model_versions,
                replay=w.replay)
            self.bus.publish(self.topic_out, msg, key=w.cell_id)
            for p in w.publish_times:
                lag = max(0.0, now - p)
                LAG.observe(lag)
                self._lags.append(lag)
            if len(self._lags) > 100_000:
                del self._lags[:50_000]
            w.publish_times = []
            w.dirty = False
            w.first_dirty_at = None
        self._published += len(windows)
        CELLS_PUBLISHED.inc(len(windows))

    # -- introspection ------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters of this instance: events by outcome, cells published, windows, commits."""
        return {"events": dict(self._counts), "too_late_by_camera": dict(self._too_late_by_camera),
                "cells_published": self._published,
                "open_windows": len(self.agg.windows), "restored_windows": self._restored,
                "merges": dict(self._merges),
                "commits": self._loop.commits,
                "watermark": _iso(self.agg.watermark).isoformat() if self.agg.watermark > -1e18 else None,
                "watermarks": {c: _iso(t).isoformat() for c, t in sorted(self.agg.watermarks.items())}}

    def lags(self) -> list[float]:
        """Seconds from each counted event's publication to the publication of its cell update."""
        return list(self._lags)

    def health(self) -> dict:
        return {"ok": not self._stop.is_set(), **self.stats()}
