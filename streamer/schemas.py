"""Versioned message schemas and topic names of the Imminence event backbone.

Every message on a topic is one UTF-8 JSON object whose ``schema`` field names
its type and version (``imminence.indicator/1``); keys are plain strings.  Any
Kafka client can read the topics.  Producers build the pydantic models below and
consumers validate with :func:`decode`, so both ends check the same contract.
A message that fails validation raises :class:`SchemaError`; consumers route it
to :data:`TOPIC_DLQ` as a :class:`DeadLetter` instead of stopping.

Events carry metadata only (camera, cell, times, concepts, scores, counts),
never frames or faces.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from geo import vocabulary

# -- topics -----------------------------------------------------------------
TOPIC_INDICATORS = "imminence.indicators"  # key: camera id
TOPIC_CELLS = "imminence.cells"  # key: cell id
TOPIC_MAPS = "imminence.maps"  # key: crime type or "all"
TOPIC_CAMERAS = "imminence.cameras"  # key: camera id (worker state heartbeats)
TOPIC_DLQ = "imminence.dlq"  # key: source topic
TOPIC_SITUATIONS = "imminence.situations"  # key: camera id|situation id (one incident, one partition)
TOPICS = (TOPIC_INDICATORS, TOPIC_CELLS, TOPIC_MAPS, TOPIC_CAMERAS, TOPIC_DLQ, TOPIC_SITUATIONS)

# -- vocabularies -------------------------------------------------------------
# One source (geo.vocabulary); re-exported here because every message names them.
CRIME_TYPES = vocabulary.CRIME_TYPES
CONCEPTS = vocabulary.CONCEPTS


class SchemaError(ValueError):
    """A message that is not valid JSON or does not match its topic's schema."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone (ISO 8601 with Z or +00:00)")
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class _Model(BaseModel):
    # allow_inf_nan=False, found by fuzzing: "Infinity"/NaN passed validation and were re-encoded as null,
    # so a consumer accepted a message whose own re-publication was invalid.
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- indicator events -----------------------------------------------------------
class DetectionSummary(_Model):
    """What the detectors saw in one clip (counts, not pixels)."""

    frames: int = Field(ge=0, description="frames analysed in the clip")
    counts: dict[str, float] = Field(default_factory=dict, description="mean detections per analysed frame, by class")
    max_counts: dict[str, int] = Field(default_factory=dict, description="largest count in any one frame, by class")
    tracks: list[str] = Field(default_factory=list, description="track ids seen in the clip, as camera:track")
    motion: float = Field(default=0.0, ge=0.0, description="mean share of foreground pixels (0..1)")
    frames_with_person: int = Field(default=0, ge=0)


class ConceptResult(_Model):
    """The clip's crime-indicator concept, as resolved over the GMCP window."""

    label: str = Field(description="resolved concept, one of CONCEPTS")
    score: float = Field(description="detector score of the resolved concept for this clip")
    scores: dict[str, float] = Field(default_factory=dict, description="detector score per concept")
    method: Literal["gmcp", "argmax", "argmax-fallback", "abstain"] = "gmcp"
    gmcp_objective: Optional[float] = None
    window: int = Field(default=1, ge=1, description="clips in the GMCP window that produced this label")
    fallback_reason: Optional[str] = Field(default=None, description="why GMCP was not used, or why the "
                                           "classifier abstained")
    uncertain: bool = Field(default=False, description="the classifier abstained (no detections, or a clip unlike "
                            "its training clips): label is normal and carries no evidence either way")


class IndicatorEvent(_Model):
    schema_: Literal["imminence.indicator/1"] = Field(default="imminence.indicator/1", alias="schema")
    event_id: str = Field(min_length=1, description="unique and deterministic per (camera, clip)")
    camera_id: str = Field(min_length=1)
    cell_id: Optional[str] = Field(description="grid cell of the camera; null when it lies outside the grid")
    clip_index: int = Field(ge=0)
    clip_start: UtcDatetime
    clip_end: UtcDatetime
    stream_start_s: float = Field(ge=0.0, description="stream time of the clip's first frame, seconds")
    stream_end_s: float = Field(ge=0.0)
    frame_first: int = Field(ge=0)
    frame_last: int = Field(ge=0)
    captured_at: UtcDatetime = Field(description="wall-clock time the clip's last frame was decoded")
    published_at: Optional[UtcDatetime] = None
    lon: Optional[float] = Field(default=None, ge=-180, le=180)
    lat: Optional[float] = Field(default=None, ge=-90, le=90)
    x: Optional[float] = None
    y: Optional[float] = None
    detections: DetectionSummary
    concept: Optional[ConceptResult] = None
    models: dict[str, str] = Field(default_factory=dict, description="model name -> version")
    replay: bool = Field(default=False, description="the clip comes from a recording (a replayed dataset or a "
                                                    "video file): its times are the recording's, not the wall "
                                                    "clock's")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- cell imminence ---------------------------------------------------------------
class RuleFiring(_Model):
    rule: str = Field(description="readable rule, e.g. 'IF hour is late AND violent is high THEN ...'")
    strength: float = Field(ge=0.0, description="normalised firing strength (0..1)")
    output: float = Field(description="the rule's consequent value for this input")


class CellImminence(_Model):
    schema_: Literal["imminence.cell/1"] = Field(default="imminence.cell/1", alias="schema")
    message_id: str = Field(min_length=1, description="cell_id|window_start|revision")
    cell_id: str = Field(min_length=1)
    window_start: UtcDatetime
    window_end: UtcDatetime
    revision: int = Field(default=0, ge=0, description="grows when late events update the window")
    imminence: dict[str, float] = Field(description="imminence per crime type (0..10 scale of the study)")
    flags: dict[str, bool] = Field(description="imminence above threshold, per crime type")
    threshold: float = 5.0
    events: int = Field(ge=0, description="indicator events aggregated in the window")
    cameras: list[str] = Field(default_factory=list)
    concept_counts: dict[str, int] = Field(default_factory=dict)
    inputs: dict[str, dict[str, float]] = Field(default_factory=dict, description="ANFIS inputs per crime type")
    top_rules: dict[str, list[RuleFiring]] = Field(default_factory=dict)
    event_ids: list[str] = Field(default_factory=list, description="contributing events (bounded)")
    event_concepts: list[str] = Field(default_factory=list, description="concept of each of event_ids, same order ('' when none); lets scoring instances merge windows exactly")
    produced_at: UtcDatetime
    models: dict[str, str] = Field(default_factory=dict)
    replay: bool = Field(default=False, description="every event of the window is a replayed recording's "
                                                    "(IndicatorEvent.replay): its times are the recording's, so "
                                                    "the map ages it in the recording's time; false as soon as one "
                                                    "event is live, and in messages written before this field")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- map snapshots ------------------------------------------------------------------
class TopCell(_Model):
    cell_id: str
    value: float
    cls: int = Field(description="standard-deviation class (0 = below mean+0.5sd ... 4 = above mean+2.5sd)")


class MapLayer(_Model):
    """One crime type's surfaces; cell dicts are sparse (cells at ~0 left out)."""

    merged: dict[str, float] = Field(default_factory=dict)
    live: dict[str, float] = Field(default_factory=dict, description="KDE of live imminence")
    forecast: dict[str, float] = Field(default_factory=dict, description="batch forecast, 0..1")
    classes: dict[str, int] = Field(default_factory=dict, description="class per cell of merged, classes > 0 only")
    live_classes: dict[str, int] = Field(default_factory=dict, description="class per cell of live, classes > 0 only")
    forecast_classes: dict[str, int] = Field(default_factory=dict,
                                             description="class per cell of forecast, classes > 0 only")
    top_cells: list[TopCell] = Field(default_factory=list)


class GridInfo(_Model):
    grid_id: str
    cell_size_m: float
    rows: int
    cols: int
    cells: int


class MapSnapshot(_Model):
    schema_: Literal["imminence.map/1"] = Field(default="imminence.map/1", alias="schema")
    snapshot_id: str
    created_at: UtcDatetime
    grid: GridInfo
    layers: dict[str, MapLayer] = Field(description="per crime type and 'all'")
    live_weight: float = Field(ge=0.0, le=1.0, description="weight of the live surface in the merge")
    forecast_version: Optional[str] = None
    forecast_date: Optional[str] = None
    cells_live: int = Field(default=0, ge=0, description="cells with a live imminence message")
    live_horizon_s: Optional[float] = Field(default=None, ge=0.0,
                                            description="windows older than this (against their clock) are left "
                                                        "out of the map as too old")
    windows_too_old: int = Field(default=0, ge=0, description="cell windows left out as too old since the map "
                                                              "service started")
    too_old_newest: Optional[UtcDatetime] = Field(default=None, description="end of the newest window left out as "
                                                                            "too old")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- camera state ----------------------------------------------------------------------
class CameraStatus(_Model):
    schema_: Literal["imminence.camera/1"] = Field(default="imminence.camera/1", alias="schema")
    camera_id: str
    cell_id: Optional[str] = None
    lon: Optional[float] = None
    lat: Optional[float] = None
    state: Literal["starting", "online", "reconnecting", "offline", "stopped", "failed"]
    at: UtcDatetime
    fps_analysed: float = 0.0
    frames_read: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    clips: int = 0
    events_published: int = 0
    events_buffered: int = 0
    events_dropped: int = 0
    last_event_at: Optional[UtcDatetime] = None
    message: Optional[str] = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- situations ------------------------------------------------------------------------
class ZoneDwell(_Model):
    """A camera zone one of the situation's tracks entered (Frigate's ``entered_zones`` with dwell)."""

    name: str = Field(min_length=1)
    dwell_s: float = Field(ge=0.0, description="longest continuous stay of one track in the zone, seconds")
    loitering_s: float = Field(gt=0.0, description="the zone's loitering time (camera config)")
    loitering: bool = Field(description="dwell_s reached loitering_s")
    tracks: list[str] = Field(default_factory=list, description="tracks seen in the zone, as camera:track")


class SituationEvent(_Model):
    """One incident of one camera followed through its life: ``new``, ``update``..., ``end`` (as Frigate's events).

    A situation groups the clips (IndicatorEvents) of one incident: it opens on a
    crime-indicator clip or when a track stays in a zone longer than the zone's
    loitering time, is updated by each related clip, and ends after the camera's
    quiet time without one, or when the worker stops.  Every message carries the
    whole state so far (a subscriber may start in the middle).
    """

    schema_: Literal["imminence.situation/1"] = Field(default="imminence.situation/1", alias="schema")
    message_id: str = Field(min_length=1, description="situation_id:seq; deterministic, so repeats dedupe")
    situation_id: str = Field(min_length=1, description="deterministic per (run, camera, opening clip)")
    type: Literal["new", "update", "end"]
    seq: int = Field(ge=0, description="0 for new, then 1, 2, ... per message of the situation")
    camera_id: str = Field(min_length=1)
    cell_id: Optional[str] = None
    reason: Literal["concept", "zone_loitering"] = Field(description="what opened the situation")
    start: UtcDatetime = Field(description="start of the clip that opened it")
    last_seen: UtcDatetime = Field(description="end of the newest related clip")
    end: Optional[UtcDatetime] = Field(default=None, description="set on the end message: last_seen")
    duration_s: float = Field(ge=0.0, description="last_seen - start")
    ended_by: Optional[Literal["quiet", "stopped"]] = Field(default=None, description="end: quiet time passed, "
                                                            "or the worker stopped")
    peak_concept: Optional[str] = Field(default=None, description="concept of the highest-scoring indicator clip; "
                                        "null for a situation of zone loitering only")
    peak_score: Optional[float] = None
    peak_event_id: Optional[str] = None
    concepts: dict[str, int] = Field(default_factory=dict, description="related clips per resolved concept")
    track_ids: list[str] = Field(default_factory=list, description="tracks of the related clips, as camera:track")
    zones: list[ZoneDwell] = Field(default_factory=list, description="zones its tracks entered, with dwell")
    clips: int = Field(ge=1, description="related clips so far")
    event_ids: list[str] = Field(default_factory=list, description="the related clips' IndicatorEvent ids "
                                 "(the newest 500)")
    uncertain: bool = Field(default=False, description="a related clip's label was uncertain (the classifier "
                            "abstained on it)")
    replay: bool = False
    published_at: Optional[UtcDatetime] = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- dead letters ---------------------------------------------------------------------
class DeadLetter(_Model):
    schema_: Literal["imminence.dlq/1"] = Field(default="imminence.dlq/1", alias="schema")
    source_topic: str
    partition: Optional[int] = None
    offset: Optional[int] = None
    key: Optional[str] = None
    reason: str
    payload: str = Field(description="the rejected value as text (invalid UTF-8 replaced), truncated to 64 KiB")
    consumer: Optional[str] = None
    received_at: UtcDatetime

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Event = Union[IndicatorEvent, CellImminence, MapSnapshot, CameraStatus, DeadLetter, SituationEvent]

SCHEMAS: dict[str, type[BaseModel]] = {
    "imminence.indicator/1": IndicatorEvent,
    "imminence.cell/1": CellImminence,
    "imminence.map/1": MapSnapshot,
    "imminence.camera/1": CameraStatus,
    "imminence.dlq/1": DeadLetter,
    "imminence.situation/1": SituationEvent,
}
TOPIC_SCHEMAS: dict[str, type[BaseModel]] = {
    TOPIC_INDICATORS: IndicatorEvent,
    TOPIC_CELLS: CellImminence,
    TOPIC_MAPS: MapSnapshot,
    TOPIC_CAMERAS: CameraStatus,
    TOPIC_DLQ: DeadLetter,
    TOPIC_SITUATIONS: SituationEvent,
}
MAX_DLQ_PAYLOAD = 64 * 1024


def encode(event: BaseModel) -> bytes:
    """Serialise a schema model to UTF-8 JSON bytes (``schema`` field included)."""
    return event.model_dump_json(by_alias=True, exclude_none=False).encode("utf-8")


def decode(topic: str, value: bytes | str) -> BaseModel:
    """Parse and validate one message of ``topic``; raises :class:`SchemaError` with the reason."""
    model = TOPIC_SCHEMAS.get(topic)
    try:
        text = value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value
    except UnicodeDecodeError as exc:
        raise SchemaError(f"value is not UTF-8: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"value is not JSON: {exc}") from None
    except RecursionError:  # found by fuzzing: b"[" * 100_000 escaped as RecursionError and killed poll()
        raise SchemaError("value is not JSON we accept: nested too deeply") from None
    if not isinstance(obj, dict):
        raise SchemaError(f"value is a JSON {type(obj).__name__}, expected an object")
    name = obj.get("schema")
    if not isinstance(name, str) or name not in SCHEMAS:  # found by fuzzing: {"schema": []} raised TypeError
        raise SchemaError(f"unknown or missing schema {name!r}; known: {sorted(SCHEMAS)}")
    if model is not None and SCHEMAS[name] is not model:
        raise SchemaError(f"schema {name!r} does not belong on topic {topic!r}")
    try:
        return SCHEMAS[name].model_validate(obj)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise SchemaError(f"{name}: {errs}") from None


def dead_letter(topic: str, value: bytes | str | None, reason: str, *, key: str | None = None,
                partition: int | None = None, offset: int | None = None,
                consumer: str | None = None) -> DeadLetter:
    """Wrap a rejected message for the dead-letter topic, keeping its bytes as text."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[:MAX_DLQ_PAYLOAD]).decode("utf-8", errors="replace")
    else:
        text = (value or "")[:MAX_DLQ_PAYLOAD]
    return DeadLetter(source_topic=topic, partition=partition, offset=offset, key=key, reason=reason,
                      payload=text, consumer=consumer, received_at=utcnow())


def event_key(event: BaseModel) -> str:
    """The Kafka key a message is published under (camera id, cell id, ...)."""
    if isinstance(event, (IndicatorEvent, CameraStatus)):
        return event.camera_id
    if isinstance(event, CellImminence):
        return event.cell_id
    if isinstance(event, MapSnapshot):
        return "all"
    if isinstance(event, DeadLetter):
        return event.source_topic
    if isinstance(event, SituationEvent):
        return f"{event.camera_id}|{event.situation_id}"
    raise TypeError(f"no key rule for {type(event).__name__}")


def event_dedup_id(event: BaseModel) -> str | None:
    """The id consumers drop repeats by, or None for messages that are not deduplicated."""
    if isinstance(event, IndicatorEvent):
        return event.event_id
    if isinstance(event, CellImminence):
        return event.message_id
    if isinstance(event, MapSnapshot):
        return event.snapshot_id
    if isinstance(event, SituationEvent):
        return event.message_id
    return None
