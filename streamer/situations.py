"""One camera's clip stream turned into situations: ``new`` / ``update`` / ``end`` (Frigate's event lifecycle).

A camera worker publishes one :class:`~streamer.schemas.IndicatorEvent` per
clip; a subscriber that wants to follow *an incident* reads
``imminence.situations`` instead.  :class:`SituationTracker` sees each clip as it
is published and says what to publish about situations:

* **new**: a clip carries a crime-indicator concept (anything but
  :data:`geo.vocabulary.QUIET_CONCEPTS`, and not an uncertain label), or a
  track has stayed in one of the camera's zones for the zone's
  ``loitering_s`` (the classifier's own ``loitering`` label opens nothing: it
  needs a zone, as in Frigate where loitering is a zone's property).
* **update**: each later clip related to the open situation: another
  indicator clip, a loitering track, or a clip that shares a track with it.
* **end**: the first unrelated clip that ends ``situation_quiet_s`` (camera
  config, default 10 s) or more after the situation was last seen, or the
  worker stopping cleanly (:meth:`SituationTracker.close`).

One situation is open per camera at a time.  Every message carries the whole
state so far (start, last seen, duration, peak concept and score, concepts seen,
track ids, zones entered with dwell, the clips' event ids), keyed
``camera|situation`` so one incident stays in one partition.  Ids are
deterministic: the situation id derives from the opening clip's event id and
the message id is ``situation:seq``, so a worker replaying the same footage
publishes the same ids and subscribers drop the repeats.

Zone dwell follows each track's foot point (bottom centre of its box) on every
analysed frame: a stay starts at the first point inside the polygon and lasts
while the track keeps being seen inside it; it ends after :data:`INERTIA`
consecutive points outside (a jittery box on the edge does not restart it).
Dwell is the time between the stay's first and latest point inside.
"""
from __future__ import annotations

import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Mapping, Optional, Sequence

from geo.vocabulary import QUIET_CONCEPTS
from streamer import schemas
from streamer.config import ZoneConfig

#: namespace of the deterministic situation ids
SITUATION_NAMESPACE = uuid.UUID("0b8f4f1e-7a43-4f0a-9a7e-3c2d5e6f7a81")
#: consecutive foot points outside a zone that end a track's stay in it (Frigate's zone ``inertia``)
INERTIA = 3
#: a stay of a track not seen for this long (stream seconds) is forgotten
FORGET_S = 30.0
MAX_EVENT_IDS = 500

Points = Mapping[str, Sequence[tuple[float, float, float]]]


class Zone:
    """A camera zone: polygon (pixels) and loitering time."""

    def __init__(self, cfg: ZoneConfig) -> None:
        from shapely import prepared  # noqa: PLC0415 - shapely only for cameras with zones
        from shapely.geometry import Point, Polygon  # noqa: PLC0415

        self.name = cfg.name
        self.loitering_s = float(cfg.loitering_s)
        self._poly = prepared.prep(Polygon(cfg.polygon))
        self._point = Point

    def contains(self, x: float, y: float) -> bool:
        return bool(self._poly.covers(self._point(x, y)))


@dataclass
class _Stay:
    entered: float
    last_in: float
    out: int = 0

    @property
    def dwell(self) -> float:
        return self.last_in - self.entered


class ZoneDwell:
    """Per (track, zone) stays, fed clip by clip with the tracks' foot points."""

    def __init__(self, zones: Iterable[ZoneConfig]) -> None:
        self.zones = [Zone(z) for z in zones]
        self._stays: dict[tuple[str, str], _Stay] = {}

    def update(self, points: Points) -> dict[str, dict[str, float]]:
        """Feed one clip; returns zone -> track -> current dwell (s) of the tracks in a stay."""
        if not self.zones:
            return {}
        latest = None
        for track, pts in points.items():
            for t, x, y in sorted(pts):
                latest = t if latest is None else max(latest, t)
                for z in self.zones:
                    key = (track, z.name)
                    stay = self._stays.get(key)
                    if z.contains(x, y):
                        if stay is None:
                            self._stays[key] = _Stay(entered=t, last_in=t)
                        else:
                            stay.last_in, stay.out = t, 0
                    elif stay is not None:
                        stay.out += 1
                        if stay.out >= INERTIA:
                            del self._stays[key]
        if latest is not None:
            for key in [k for k, s in self._stays.items() if latest - s.last_in > FORGET_S]:
                del self._stays[key]
        out: dict[str, dict[str, float]] = {}
        for (track, zone), stay in self._stays.items():
            if track in points:
                out.setdefault(zone, {})[track] = round(stay.dwell, 3)
        return out


@dataclass
class _Situation:
    situation_id: str
    reason: str
    start: datetime
    last_seen: datetime
    seq: int = 0
    clips: int = 0
    peak: Optional[tuple[str, float, str]] = None  # concept, score, event id
    concepts: Counter = field(default_factory=Counter)
    tracks: dict[str, None] = field(default_factory=dict)
    zones: dict[str, dict] = field(default_factory=dict)  # name -> {"dwell_s", "tracks"}
    event_ids: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENT_IDS))
    uncertain: bool = False


def is_indicator(event: schemas.IndicatorEvent) -> bool:
    """A clip whose concept is a crime indicator on its own (not quiet, not uncertain)."""
    c = event.concept
    return c is not None and not c.uncertain and c.label not in QUIET_CONCEPTS


class SituationTracker:
    """One camera's open situation; :meth:`observe` each published clip, :meth:`close` at the end."""

    def __init__(self, camera_id: str, *, cell_id: Optional[str] = None, zones: Iterable[ZoneConfig] = (),
                 quiet_s: float = 10.0, replay: bool = False) -> None:
        self.camera_id = camera_id
        self.cell_id = cell_id
        self.quiet_s = float(quiet_s)
        self.replay = replay
        self.dwell = ZoneDwell(zones)
        self._loitering_s = {z.name: z.loitering_s for z in self.dwell.zones}
        self.open: Optional[_Situation] = None
        self.published = 0

    @classmethod
    def for_camera(cls, camera, *, cell_id: Optional[str] = None, replay: bool = False) -> "SituationTracker":
        return cls(camera.id, cell_id=cell_id, zones=camera.zones, quiet_s=camera.situation_quiet_s, replay=replay)

    def observe(self, event: schemas.IndicatorEvent, points: Optional[Points] = None) -> list[schemas.SituationEvent]:
        """The situation messages one published clip causes (none, one, or an end)."""
        dwell = self.dwell.update(points or {})
        loitering = {track for zone, by_track in dwell.items() for track, s in by_track.items()
                     if s >= self._loitering_s[zone]}
        indicator = is_indicator(event)
        clip_tracks = list(event.detections.tracks)
        out: list[schemas.SituationEvent] = []
        sit = self.open
        if sit is not None:
            shared = [t for t in clip_tracks if t in sit.tracks]
            if indicator or loitering or shared:
                self._add(sit, event, dwell, clip_tracks if indicator else [*shared, *sorted(loitering)])
                out.append(self._message(sit, "update"))
                return out
            if (event.clip_end - sit.last_seen).total_seconds() < self.quiet_s - 1e-6:
                return out
            out.append(self._end("quiet"))
        if indicator or loitering:
            sid = str(uuid.uuid5(SITUATION_NAMESPACE, f"{self.camera_id}|{event.event_id}"))
            sit = _Situation(situation_id=sid, reason="concept" if indicator else "zone_loitering",
                             start=event.clip_start, last_seen=event.clip_end)
            self.open = sit
            self._add(sit, event, dwell, clip_tracks if indicator else sorted(loitering))
            out.append(self._message(sit, "new"))
        return out

    def close(self, reason: str = "stopped") -> list[schemas.SituationEvent]:
        """The end message of the open situation (the worker stops), or nothing."""
        return [self._end(reason)] if self.open is not None else []

    # -- internals ---------------------------------------------------------------------------------
    def _add(self, sit: _Situation, event: schemas.IndicatorEvent, dwell: dict[str, dict[str, float]],
             tracks: list[str]) -> None:
        sit.clips += 1
        sit.last_seen = max(sit.last_seen, event.clip_end)
        sit.event_ids.append(event.event_id)
        c = event.concept
        if c is not None:
            sit.concepts[c.label] += 1
            sit.uncertain = sit.uncertain or c.uncertain
            if not c.uncertain and c.label != "normal" and (sit.peak is None or c.score > sit.peak[1]):
                sit.peak = (c.label, round(float(c.score), 4), event.event_id)
        for t in tracks:
            sit.tracks[t] = None
        for zone, by_track in dwell.items():
            for track, s in by_track.items():
                if track not in sit.tracks:
                    continue
                z = sit.zones.setdefault(zone, {"dwell_s": 0.0, "tracks": {}})
                z["dwell_s"] = max(z["dwell_s"], s)
                z["tracks"][track] = None

    def _message(self, sit: _Situation, kind: str, ended_by: Optional[str] = None) -> schemas.SituationEvent:
        seq = sit.seq
        sit.seq += 1
        self.published += 1
        peak = sit.peak or (None, None, None)
        return schemas.SituationEvent(
            message_id=f"{sit.situation_id}:{seq}", situation_id=sit.situation_id, type=kind, seq=seq,
            camera_id=self.camera_id, cell_id=self.cell_id, reason=sit.reason, start=sit.start,
            last_seen=sit.last_seen, end=sit.last_seen if kind == "end" else None,
            duration_s=round((sit.last_seen - sit.start).total_seconds(), 3), ended_by=ended_by,
            peak_concept=peak[0], peak_score=peak[1], peak_event_id=peak[2],
            concepts=dict(sorted(sit.concepts.items())), track_ids=list(sit.tracks),
            zones=[schemas.ZoneDwell(name=name, dwell_s=round(z["dwell_s"], 3), loitering_s=self._loitering_s[name],
                                     loitering=z["dwell_s"] >= self._loitering_s[name], tracks=list(z["tracks"]))
                   for name, z in sorted(sit.zones.items())],
            clips=sit.clips, event_ids=list(sit.event_ids), uncertain=sit.uncertain, replay=self.replay,
            published_at=datetime.now(timezone.utc))

    def _end(self, ended_by: str) -> schemas.SituationEvent:
        sit, self.open = self.open, None
        return self._message(sit, "end", ended_by)
