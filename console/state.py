"""The console's bounded in-memory view of the imminence topics, and the feeds that fill it.

:class:`ConsoleState` keeps the latest :class:`MapSnapshot`, a bounded imminence
history per cell (:class:`CellImminence`, newest revision per window), the
newest indicator events (overall and per cell), the latest message of each
:class:`SituationEvent` (an incident whose clips the feed groups under it) and
the latest :class:`CameraStatus` per camera.  Everything is capped by ``WebConfig`` limits,
repeats are dropped by :func:`streamer.schemas.event_dedup_id`, and invalid
messages are skipped and counted, never raised.  Listeners (the SSE endpoint)
are told about every change.

Two feeds fill it: :class:`BusFeed`, a background thread with its own consumer
group on the five topics (any :class:`streamer.bus.Bus`, consumed through the
shared :class:`streamer.consume.ConsumerLoop`), and :func:`load_run_dir`,
which reads a finished run folder written by the map service.  The view lives in
memory only: a restarted console resumes from its group's committed offsets, so
the map returns with the map service's next snapshot (every ``map.interval_s``)
while older cell history and events are not replayed.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel

from console.config import WebConfig
from geo.grid import Grid
from geo.vocabulary import CRIME_TYPES
from streamer import schemas
from streamer.bus import Bus, Received
from streamer.consume import Backoff, ConsumerLoop, dedup_key
from streamer.dedup import Deduplicator
from streamer.revisions import supersedes
from streamer.schemas import CameraStatus, CellImminence, IndicatorEvent, MapSnapshot, SituationEvent

log = logging.getLogger(__name__)

CONSOLE_TOPICS = (schemas.TOPIC_MAPS, schemas.TOPIC_CELLS, schemas.TOPIC_INDICATORS, schemas.TOPIC_CAMERAS,
                  schemas.TOPIC_SITUATIONS)
LAYERS = ("merged", "live", "forecast")
#: the MapLayer field holding each layer's standard-deviation classes (published by the map service)
LAYER_CLASSES = {"merged": "classes", "live": "live_classes", "forecast": "forecast_classes"}
#: GeoJSON property kinds of the map file (``<kind>_<crime type>``), longest first so ``live_class`` is not ``live``
_GEOJSON_KINDS = ("forecast_class", "live_class", "forecast", "merged", "class", "live")
CRIMES = tuple(CRIME_TYPES) + ("all",)
Listener = Callable[[str, dict], None]


@dataclass
class Counters:
    received: dict[str, int] = field(default_factory=lambda: {t: 0 for t in CONSOLE_TOPICS})
    duplicates: int = 0
    malformed: int = 0  # invalid on the wire: skipped (here or dead-lettered by the bus)
    last_malformed: Optional[str] = None


class ConsoleState:
    """Thread-safe, bounded view of maps, cells, events and cameras."""

    def __init__(self, cfg: WebConfig, grid: Optional[Grid] = None) -> None:
        self.cfg = cfg
        self.grid = grid
        self.geometry: Optional[dict] = None  # cell rectangles from a run folder when there is no grid
        self._lock = threading.RLock()
        self.snapshot: Optional[MapSnapshot] = None
        self.snapshot_at: Optional[datetime] = None
        self.cells: dict[str, deque[CellImminence]] = {}
        self.events: deque[IndicatorEvent] = deque(maxlen=cfg.max_events)
        self.events_by_cell: dict[str, deque[IndicatorEvent]] = {}
        self.cameras: dict[str, CameraStatus] = {}
        self.situations: OrderedDict[str, SituationEvent] = OrderedDict()  # id -> latest message, by first seen
        self.counters = Counters()
        self._seen = Deduplicator(4 * cfg.max_events + 10_000)
        self._listeners: list[Listener] = []
        self.last_message_at: Optional[datetime] = None
        self.source = "none"
        self.connected = True
        self.stale_since: Optional[datetime] = None
        self.version = 0

    # -- listeners ---------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _notify(self, kind: str, payload: dict) -> None:
        for fn in list(self._listeners):
            try:
                fn(kind, payload)
            except Exception:  # a broken listener must not stop the feed
                log.exception("console listener failed")

    # -- ingest ------------------------------------------------------------------------
    def apply_raw(self, topic: str, value: bytes | str) -> Optional[BaseModel]:
        """Decode and apply one wire message; an invalid one is counted and skipped (returns None)."""
        try:
            event = schemas.decode(topic, value)
        except schemas.SchemaError as exc:
            self.count_malformed(topic, str(exc))
            return None
        self.apply(topic, event)
        return event

    def count_malformed(self, topic: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self.counters.malformed += n
            self.counters.last_malformed = f"{topic}: {reason}"[:300]
        log.warning("skipped malformed message on %s: %s", topic, reason[:300])
        self._notify("status", self.status())

    def apply(self, topic: str, event: BaseModel) -> bool:
        """Apply one validated message; False when it was a repeat, stale, or for another grid."""
        now = datetime.now(timezone.utc)
        if isinstance(event, MapSnapshot) and self.grid is not None and event.grid.grid_id != self.grid.grid_id:
            # Cell ids of another grid would colour the wrong places: skip it, loudly.
            self.count_malformed(topic, f"snapshot {event.snapshot_id} is for grid {event.grid.grid_id}, "
                                        f"the console's grid is {self.grid.grid_id}")
            return False
        with self._lock:
            self.last_message_at = now
            if topic in self.counters.received:
                self.counters.received[topic] += 1
            if self._seen.seen(dedup_key(event)):
                self.counters.duplicates += 1
                return False
            self.version += 1
            if isinstance(event, MapSnapshot):
                if self.snapshot is not None and event.created_at < self.snapshot.created_at:
                    return False  # an older snapshot redelivered after a newer one
                self.snapshot, self.snapshot_at = event, now
                payload = {"snapshot_id": event.snapshot_id, "created_at": event.created_at.isoformat()}
                kind = "map"
            elif isinstance(event, CellImminence):
                self._add_cell(event)
                kind, payload = "cell", {"cell_id": event.cell_id, "imminence": event.imminence,
                                         "flags": event.flags, "window_end": event.window_end.isoformat()}
            elif isinstance(event, IndicatorEvent):
                self.events.append(event)
                if event.cell_id:
                    dq = self.events_by_cell.setdefault(event.cell_id, deque(maxlen=self.cfg.max_events_per_cell))
                    dq.append(event)
                kind, payload = "event", event_summary(event)
            elif isinstance(event, CameraStatus):
                old = self.cameras.get(event.camera_id)
                if old is not None and event.at < old.at:
                    return False
                self.cameras[event.camera_id] = event
                kind, payload = "camera", camera_summary(event)
            elif isinstance(event, SituationEvent):
                old = self.situations.get(event.situation_id)
                if old is not None and event.seq <= old.seq:
                    return False  # an older message of the situation redelivered after a newer one
                self.situations[event.situation_id] = event
                while len(self.situations) > self.cfg.max_events:
                    self.situations.popitem(last=False)
                kind, payload = "situation", situation_summary(event)
            else:
                return False
        self._notify(kind, payload)
        return True

    def _add_cell(self, msg: CellImminence) -> None:
        dq = self.cells.setdefault(msg.cell_id, deque(maxlen=self.cfg.max_history_per_cell))
        # A late revision of a window replaces the older one in place.
        for i, old in enumerate(dq):
            if old.window_start == msg.window_start:
                if supersedes(msg, old):
                    dq[i] = msg
                return
        dq.append(msg)
        if len(dq) > 1 and dq[-2].window_start > msg.window_start:
            ordered = sorted(dq, key=lambda m: m.window_start)
            dq.clear()
            dq.extend(ordered)
        horizon = msg.window_end - timedelta(hours=self.cfg.history_hours)
        while dq and dq[0].window_end < horizon:
            dq.popleft()

    def set_connected(self, ok: bool) -> None:
        """Record broker reachability; the page shows a stale-data banner while it is down."""
        with self._lock:
            if ok == self.connected:
                return
            self.connected = ok
            self.stale_since = None if ok else (self.last_message_at or datetime.now(timezone.utc))
        log.warning("broker %s", "reachable again" if ok else "unreachable: the console's data is stale")
        self._notify("status", self.status())

    # -- queries -------------------------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            snap = self.snapshot
            return {
                "source": self.source,
                "connected": self.connected,
                "stale": not self.connected,
                "stale_since": self.stale_since.isoformat() if self.stale_since else None,
                "last_message_at": self.last_message_at.isoformat() if self.last_message_at else None,
                "snapshot_id": snap.snapshot_id if snap else None,
                "snapshot_created_at": snap.created_at.isoformat() if snap else None,
                "received": dict(self.counters.received),
                "duplicates": self.counters.duplicates,
                "malformed": self.counters.malformed,
                "last_malformed": self.counters.last_malformed,
                "cells": len(self.cells),
                "events": len(self.events),
                "cameras": len(self.cameras),
                "situations": len(self.situations),
                "situations_open": sum(1 for s in self.situations.values() if s.type != "end"),
            }

    def grid_rowscols(self) -> Optional[tuple[int, int]]:
        if self.grid is not None:
            return self.grid.rows, self.grid.cols
        if self.snapshot is not None:
            return self.snapshot.grid.rows, self.snapshot.grid.cols
        return None

    def has_cell(self, cell_id: str) -> bool:
        """A cell of the grid (or, without one, of the latest snapshot or the messages seen)."""
        if self.grid is not None:
            return self.grid.has_cell(cell_id)
        if self.geometry is not None:
            return cell_id in self.geometry["index"]
        with self._lock:
            if cell_id in self.cells or cell_id in self.events_by_cell:
                return True
            rc = self.grid_rowscols()
        if rc is None:
            return False
        try:
            r, c = Grid.parse_cell_id(cell_id)
        except ValueError:
            return False
        return 0 <= r < rc[0] and 0 <= c < rc[1]

    def map_layer(self, crime: str, layer: str) -> dict:
        """Values and classes of one crime type's layer in the latest snapshot (``notice``: why it is empty)."""
        with self._lock:
            snap = self.snapshot
        if snap is None:
            return {"snapshot_id": None, "crime": crime, "layer": layer, "values": {}, "classes": {}, "top_cells": [],
                    "notice": None}
        lay = snap.layers.get(crime)
        values = dict(getattr(lay, layer)) if lay is not None else {}
        classes = dict(getattr(lay, LAYER_CLASSES[layer])) if lay is not None else {}  # as the map service classed it
        return {
            "snapshot_id": snap.snapshot_id, "created_at": snap.created_at.isoformat(), "crime": crime,
            "layer": layer, "values": values, "classes": classes,
            "top_cells": [t.model_dump() for t in lay.top_cells] if lay is not None else [],
            "live_weight": snap.live_weight, "forecast_version": snap.forecast_version,
            "forecast_date": snap.forecast_date, "cells_live": snap.cells_live,
            "grid": snap.grid.model_dump(), "notice": no_live_data_notice(snap),
        }

    def cell_detail(self, cell_id: str) -> dict:
        """Everything the console knows about one cell: history, latest explanation, forecast, events."""
        with self._lock:
            hist = list(self.cells.get(cell_id, ()))
            events = list(self.events_by_cell.get(cell_id, ()))
            snap = self.snapshot
        latest = hist[-1] if hist else None
        layers = {}
        if snap is not None:
            for crime, lay in snap.layers.items():
                layers[crime] = {"merged": lay.merged.get(cell_id, 0.0), "live": lay.live.get(cell_id, 0.0),
                                 "forecast": lay.forecast.get(cell_id, 0.0), "class": lay.classes.get(cell_id, 0)}
        zone = None
        if self.grid is not None and self.grid.zones:
            zone = self.grid.zone_of(cell_id)
        return {
            "cell_id": cell_id,
            "zone": zone,
            "history": [{"window_start": m.window_start.isoformat(), "window_end": m.window_end.isoformat(),
                         "imminence": m.imminence, "flags": m.flags, "events": m.events} for m in hist],
            "latest": None if latest is None else {
                "window_start": latest.window_start.isoformat(), "window_end": latest.window_end.isoformat(),
                "revision": latest.revision, "imminence": latest.imminence, "flags": latest.flags,
                "threshold": latest.threshold, "events": latest.events, "cameras": latest.cameras,
                "concept_counts": latest.concept_counts, "inputs": latest.inputs,
                "top_rules": {k: [r.model_dump() for r in v] for k, v in latest.top_rules.items()},
                "produced_at": latest.produced_at.isoformat(), "models": latest.models,
            },
            "map": layers,
            "snapshot_id": snap.snapshot_id if snap else None,
            "events": [event_summary(e) for e in reversed(events)],
        }

    def event_list(self, camera: Optional[str] = None, concept: Optional[str] = None,
                   cell: Optional[str] = None, limit: int = 100) -> list[dict]:
        with self._lock:
            src = list(self.events_by_cell.get(cell, ())) if cell else list(self.events)
        out = []
        for e in reversed(src):
            if camera and e.camera_id != camera:
                continue
            if concept and (e.concept is None or e.concept.label != concept):
                continue
            out.append(event_summary(e))
            if len(out) >= limit:
                break
        return out

    def situation_list(self, camera: Optional[str] = None, limit: int = 50) -> list[dict]:
        """Newest situations first, each with the clips (event summaries) the console still holds, newest first."""
        with self._lock:
            sits = [s for s in reversed(self.situations.values()) if not camera or s.camera_id == camera][:limit]
            wanted = {eid for s in sits for eid in s.event_ids}
            by_id = {e.event_id: e for e in self.events if e.event_id in wanted}
        return [{**situation_summary(s),
                 "clips": [event_summary(by_id[eid]) for eid in reversed(s.event_ids) if eid in by_id]}
                for s in sits]

    def camera_list(self) -> list[dict]:
        with self._lock:
            return [camera_summary(c) for c in sorted(self.cameras.values(), key=lambda c: c.camera_id)]


def no_live_data_notice(snap: MapSnapshot) -> Optional[str]:
    """What the page says instead of an empty live map: the map service received windows but every one
    was older than its live horizon (e.g. a recording played as if it were live); None otherwise."""
    if snap.cells_live > 0 or snap.windows_too_old <= 0 or snap.too_old_newest is None:
        return None
    minutes = f"{snap.live_horizon_s / 60:.0f} minutes" if snap.live_horizon_s else "live horizon"
    when = snap.too_old_newest.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"no live data in the last {minutes} (events received are from {when})"


def event_summary(e: IndicatorEvent) -> dict:
    """What the page shows of an indicator event (metadata only; events never carry pixels)."""
    c = e.concept
    return {
        "event_id": e.event_id, "camera_id": e.camera_id, "cell_id": e.cell_id,
        "clip_start": e.clip_start.isoformat(), "clip_end": e.clip_end.isoformat(),
        "concept": c.label if c else None, "score": round(c.score, 4) if c else None,
        "method": c.method if c else None,
        "uncertain": bool(c.uncertain) if c else False,  # abstained: normal, with the reason why
        "reason": c.fallback_reason if c else None,
        "scores": {k: round(v, 4) for k, v in sorted((c.scores if c else {}).items(), key=lambda kv: -kv[1])[:5]},
        "persons": e.detections.max_counts.get("person", 0), "tracks": len(e.detections.tracks),
        "replay": e.replay,
    }


def situation_summary(s: SituationEvent) -> dict:
    """What the page shows of a situation (its latest message); ``live`` while it has not ended."""
    return {
        "situation_id": s.situation_id, "camera_id": s.camera_id, "cell_id": s.cell_id, "type": s.type,
        "seq": s.seq, "live": s.type != "end", "reason": s.reason, "start": s.start.isoformat(),
        "last_seen": s.last_seen.isoformat(), "duration_s": s.duration_s, "ended_by": s.ended_by,
        "peak_concept": s.peak_concept, "peak_score": s.peak_score, "concepts": s.concepts,
        "tracks": len(s.track_ids), "uncertain": s.uncertain, "replay": s.replay,
        "zones": [z.model_dump() for z in s.zones], "event_ids": list(s.event_ids),
    }


def camera_summary(c: CameraStatus) -> dict:
    return {
        "camera_id": c.camera_id, "cell_id": c.cell_id, "lon": c.lon, "lat": c.lat, "state": c.state,
        "at": c.at.isoformat(), "fps_analysed": round(c.fps_analysed, 2), "frames_read": c.frames_read,
        "frames_dropped": c.frames_dropped, "reconnects": c.reconnects, "clips": c.clips,
        "events_published": c.events_published, "events_buffered": c.events_buffered,
        "events_dropped": c.events_dropped,
        "last_event_at": c.last_event_at.isoformat() if c.last_event_at else None, "message": c.message,
    }


# -- the live feed ------------------------------------------------------------------------
def tcp_probe(bootstrap: str, timeout: float = 1.0) -> Callable[[], bool]:
    """A reachability check of any bootstrap host (kafka-python's poll stays silent when brokers die)."""
    hosts = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        hosts.append((host.strip("[]") or "127.0.0.1", int(port)))

    def probe() -> bool:
        for h, p in hosts:
            try:
                with socket.create_connection((h, p), timeout=timeout):
                    return True
            except OSError:
                continue
        return False
    return probe


class BusFeed:
    """Background thread: a consumer of its own group on the console topics, applying to a state."""

    def __init__(self, state: ConsoleState, bus: Bus, group: str, *,
                 probe: Optional[Callable[[], bool]] = None, probe_every_s: float = 2.0,
                 from_beginning: bool = True) -> None:
        self.state = state
        self.bus = bus
        self.group = group
        self.probe = probe
        self.probe_every_s = probe_every_s
        self.from_beginning = from_beginning
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.ready = threading.Event()
        self.error: Optional[str] = None

    def start(self) -> "BusFeed":
        self.state.source = "bus"
        self._thread = threading.Thread(target=self._run, name="console-feed", daemon=True)
        self._thread.start()
        if self.probe is not None:
            # Its own thread: kafka-python may block in subscribe/poll while brokers are down.
            self._probe_thread = threading.Thread(target=self._probe_loop, name="console-probe", daemon=True)
            self._probe_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for t in (self._thread, getattr(self, "_probe_thread", None)):
            if t is not None:
                t.join(timeout)

    def _probe_loop(self) -> None:
        while not self._stop.is_set():
            try:
                ok = bool(self.probe())
            except Exception:
                ok = False
            self.state.set_connected(ok)
            self._stop.wait(self.probe_every_s)

    def _run(self) -> None:
        loop = ConsumerLoop(self.bus, CONSOLE_TOPICS, group=self.group, client_id="imminence-web",
                            from_beginning=self.from_beginning, max_records=500, handle=self._apply,
                            after_batch=lambda: loop.pending, on_dead_letter=self._dead_letters,
                            on_error=self._on_error, reopen_on_error=True, backoff=Backoff(initial_s=1.0),
                            on_open=lambda sub: self.ready.set(), lag_every_s=None, stop=self._stop,
                            name="console feed")
        loop.run(poll_timeout=0.2)

    def _apply(self, records: list[Received]) -> None:
        for rec in records:
            try:
                self.state.apply(rec.topic, rec.event)
            except Exception:  # one bad message must not stop the feed (it is committed with its batch)
                log.exception("console feed: applying %s[%d]@%d failed", rec.topic, rec.partition, rec.offset)

    def _dead_letters(self, n: int) -> None:
        """The bus dead-letters invalid records before they reach us: count them as skipped."""
        self.state.count_malformed("bus", "invalid record dead-lettered by the bus", n)

    def _on_error(self, msg: str, exc: BaseException) -> None:
        """Broker trouble: mark stale; the loop backs off and opens a fresh consumer."""
        self.error = f"{type(exc).__name__}: {exc}"
        self.state.set_connected(False)


# -- a finished run on disk ------------------------------------------------------------------
def load_run_dir(state: ConsoleState, root: str | Path) -> dict[str, int]:
    """Fill ``state`` from a run folder: snapshots (``*.json``), message logs (``*.jsonl``) and cell GeoJSON.

    Any JSON object with a known ``schema`` field is applied to its topic; a
    GeoJSON FeatureCollection of cells (``cell_id`` properties, as
    :meth:`geo.grid.Grid.to_geojson` writes) gives the cell geometry when the
    console has no grid.  Unreadable files and invalid lines are counted and skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--from {root}: not a directory")
    topic_of = {name: topic for topic, model in schemas.TOPIC_SCHEMAS.items()
                for name, m in schemas.SCHEMAS.items() if m is model}
    counts = {"messages": 0, "malformed": 0, "geojson": 0}
    state.source = f"dir:{root.name}"
    files = sorted(p for p in root.rglob("*") if p.suffix in (".json", ".jsonl", ".geojson") and p.is_file())
    # Oldest first so that the newest snapshot wins.
    for path in sorted(files, key=lambda p: p.stat().st_mtime):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            state.count_malformed(str(path), f"unreadable: {exc}")
            counts["malformed"] += 1
            continue
        chunks = text.splitlines() if path.suffix == ".jsonl" else [text]
        for i, chunk in enumerate(chunks, 1):
            if not chunk.strip():
                continue
            try:
                obj = json.loads(chunk)
            except json.JSONDecodeError as exc:
                state.count_malformed(f"{path}:{i}", f"not JSON: {exc}")
                counts["malformed"] += 1
                continue
            if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
                if state.grid is None and _geometry_from_geojson(state, obj):
                    counts["geojson"] += 1
                snap = snapshot_from_geojson(obj, path)
                if snap is not None:
                    state.apply(schemas.TOPIC_MAPS, snap)
                    counts["messages"] += 1
                continue
            name = obj.get("schema") if isinstance(obj, dict) else None
            if name not in topic_of:
                continue  # other run files (metrics, manifests) are not messages
            if state.apply_raw(topic_of[name], chunk) is None:
                counts["malformed"] += 1
            else:
                counts["messages"] += 1
    return counts


def snapshot_from_geojson(fc: dict[str, Any], path: Path) -> Optional[MapSnapshot]:
    """A :class:`MapSnapshot` from the map service's GeoJSON (``merged_<type>``, ``live_<type>``,
    ``forecast_<type>`` and their classes ``class_<type>``, ``live_class_<type>``, ``forecast_class_<type>``
    per cell, as :func:`mapping.render.write_geojson` writes them); None for a FeatureCollection without
    such layers."""
    from streamer.schemas import GridInfo, MapLayer, TopCell

    layers: dict[str, dict[str, dict]] = {}
    feats = fc.get("features") or []
    for f in feats:
        props = f.get("properties") or {}
        cid = props.get("cell_id")
        if not isinstance(cid, str):
            continue
        for key, value in props.items():
            kind = next((k for k in _GEOJSON_KINDS if key.startswith(k + "_")), None)
            crime = key[len(kind) + 1:] if kind else None
            if crime not in CRIMES or not isinstance(value, (int, float)) or value <= 0:
                continue  # weight_/live_mean_ terms and other properties are not layers
            layers.setdefault(crime, {k: {} for k in _GEOJSON_KINDS})[kind][cid] = value
    info = fc.get("properties") or {}
    if not layers:
        if not info.get("windows_too_old"):
            return None
        # the map service wrote an empty map because every window was too old: keep why, for the notice
        layers = {crime: {k: {} for k in _GEOJSON_KINDS} for crime in CRIMES}
    written = info.get("written_at")
    try:
        created = datetime.fromisoformat(written) if written else None
    except ValueError:
        created = None
    created = created or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    out = {}
    for crime, d in layers.items():
        top = sorted(d["merged"].items(), key=lambda kv: -kv[1])[:10]
        out[crime] = MapLayer(merged=d["merged"], live=d["live"], forecast=d["forecast"],
                              classes={k: int(v) for k, v in d["class"].items()},
                              live_classes={k: int(v) for k, v in d["live_class"].items()},
                              forecast_classes={k: int(v) for k, v in d["forecast_class"].items()},
                              top_cells=[TopCell(cell_id=c, value=v, cls=int(d["class"].get(c, 0))) for c, v in top])
    grid = GridInfo(grid_id=str(info.get("grid_id", "unknown")), cell_size_m=float(info.get("cell_size_m", 0.0)),
                    rows=int(info.get("rows", 0)), cols=int(info.get("cols", 0)), cells=len(feats))
    try:
        too_old_newest = datetime.fromisoformat(info["too_old_newest"]) if info.get("too_old_newest") else None
    except (TypeError, ValueError):
        too_old_newest = None
    return MapSnapshot(snapshot_id=f"file:{path.name}:{created.isoformat()}", created_at=created, grid=grid,
                       layers=out, live_weight=float(info.get("live_weight", 0.0) or 0.0),
                       forecast_date=info.get("forecast_date"), cells_live=int(info.get("cells_live", 0) or 0),
                       live_horizon_s=info.get("live_horizon_s"),
                       windows_too_old=int(info.get("windows_too_old", 0) or 0), too_old_newest=too_old_newest)


def _geometry_from_geojson(state: ConsoleState, fc: dict[str, Any]) -> bool:
    """Cell rectangles (lon/lat bounds) from a cell FeatureCollection; True when it had cells."""
    cells = {}
    for f in fc.get("features", []):
        props = f.get("properties") or {}
        cid = props.get("cell_id") or f.get("id")
        geom = f.get("geometry") or {}
        try:
            ring = geom["coordinates"][0] if geom.get("type") == "Polygon" else geom["coordinates"][0][0]
            xs = [p[0] for p in ring]
            ys = [p[1] for p in ring]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(cid, str):
            cells[cid] = [min(ys), min(xs), max(ys), max(xs)]  # south, west, north, east
    if not cells:
        return False
    if state.geometry is None or len(cells) >= len(state.geometry["index"]):
        state.geometry = {"index": cells, "properties": fc.get("properties") or {}}
    return True
