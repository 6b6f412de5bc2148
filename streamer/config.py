"""Configuration models of the backbone: the bus (Kafka client settings) and the cameras.

Pydantic models that forbid unknown keys; `imminence.configfile` turns their
errors into `file:line: key -> key: message`.  Secrets (SASL passwords) come from
the environment via ``${VAR}`` placeholders, never from YAML literals.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BusConfig(_Strict):
    """(bus:) Kafka connection and delivery settings."""

    bootstrap: Optional[str] = Field(default=None, description="host:port[,host:port]; null = start an embedded broker where a command can")
    client_id: str = "imminence"
    namespace: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$",
                           description="prefix of every topic name (isolates tests or tenants on one cluster)")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Optional[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]] = None
    sasl_username: Optional[str] = None
    sasl_password: Optional[SecretStr] = None
    ssl_cafile: Optional[str] = None
    ssl_certfile: Optional[str] = None
    ssl_keyfile: Optional[str] = None
    ssl_check_hostname: bool = True
    outbox_size: int = Field(default=10_000, gt=0, description="records buffered while the broker is away; oldest dropped beyond")
    outbox_dir: Optional[str] = Field(default="state/outbox", description="folder of the workers' durable outboxes (SQLite, relative to this file's folder); null = in memory only, lost on kill -9")
    outbox_fsync: Literal["always", "interval", "off"] = Field(default="interval", description="durable outbox: fsync every record, every outbox_fsync_ms, or never (all survive kill -9; only always survives a power cut whole)")
    outbox_fsync_ms: int = Field(default=100, gt=0, description="interval of the 'interval' fsync policy")
    outbox_max_bytes: Optional[int] = Field(default=256 * 1024 * 1024, gt=0, description="cap of one durable outbox file; oldest dropped (counted) beyond, as on a full disk")
    outbox_max_age_s: Optional[float] = Field(default=None, gt=0, description="records waiting longer are dropped (counted); null = no age limit")
    idempotence: Literal["auto", "on", "off"] = Field(default="auto", description="idempotent producer: auto = where the broker grants a producer id (not the embedded tansu)")
    max_poll_records: int = Field(default=200, gt=0)
    session_timeout_ms: int = Field(default=10_000, ge=1_000, description="consumer-group session: a consumer killed "
                                    "without leaving holds its partitions this long before the group moves them")
    partitions: int = Field(default=3, gt=0, description="partitions of topics the project creates")

    @model_validator(mode="after")
    def _sasl_complete(self) -> "BusConfig":
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError("SASL needs sasl_mechanism, sasl_username and sasl_password (use ${ENV_VAR} for the password)")
        return self


class Position(_Strict):
    """A camera position: lon/lat, or metric x/y when the grid is metric."""

    lon: Optional[float] = Field(default=None, ge=-180, le=180)
    lat: Optional[float] = Field(default=None, ge=-90, le=90)
    x: Optional[float] = None
    y: Optional[float] = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Position":
        ll = self.lon is not None and self.lat is not None
        xy = self.x is not None and self.y is not None
        if ll == xy:
            raise ValueError("give lon and lat, or x and y (one pair)")
        return self


class ZoneConfig(_Strict):
    """(cameras: - zones: - ...) a named area of the camera's picture, as Frigate's zones.

    A track whose foot point (bottom centre of its box) stays in the zone for
    ``loitering_s`` opens a situation (``imminence.situations``) even without a
    crime-indicator concept.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    polygon: list[tuple[float, float]] = Field(description="corners [[x, y], ...] in pixels of the camera's frames")
    loitering_s: float = Field(gt=0, description="seconds a track must stay in the zone to count as loitering")

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
        from shapely.geometry import Polygon  # noqa: PLC0415 - only for cameras with zones
        from shapely.validation import explain_validity  # noqa: PLC0415

        if len(ring) < 3:
            raise ValueError(f"a zone polygon needs at least 3 corners [x, y], got {len(ring)}")
        if any(x < 0 or y < 0 for x, y in ring):
            raise ValueError("zone corners are pixels of the frame: x and y must be >= 0")
        poly = Polygon(ring)
        if poly.convex_hull.area <= 0:
            raise ValueError("zone polygon has no area (its corners lie on one line)")
        if not poly.is_valid:
            raise ValueError(f"zone polygon is not a simple polygon: {explain_validity(poly)} "
                             "(corners in drawing order, edges must not cross)")
        return ring


class CameraConfig(_Strict):
    """(cameras: - ...) one camera worker."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    source: str = Field(min_length=1, description="rtsp://..., http(s)://..., a video file path, or a device index")
    position: Position
    fps: float = Field(default=5.0, gt=0, le=120, description="analysis rate: frames per second actually analysed")
    clip_seconds: float = Field(default=2.0, gt=0, le=60, description="clip length: one IndicatorEvent per clip")
    live: Optional[bool] = Field(default=None, description="keep only the newest frame (default: true for network sources)")
    open_timeout_s: float = Field(default=10.0, gt=0, description="give up opening a live source after this long, then retry")
    read_timeout_s: float = Field(default=5.0, gt=0, description="a live read that takes longer fails and the stream is reopened")
    watchdog_s: float = Field(default=20.0, gt=0, description="reopen the source when no frame came for this long")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="cap of the exponential reconnect backoff")
    masks: list[list[tuple[float, float]]] = Field(default_factory=list, description="privacy masks: polygons in pixel coordinates, blacked out before analysis")
    enabled: bool = Field(default=True, description="false = `imminence workers` skips this camera")
    outbox_fsync: Optional[Literal["always", "interval", "off"]] = Field(default=None, description="this camera's durable outbox fsync policy; null = bus.outbox_fsync")
    zones: list[ZoneConfig] = Field(default_factory=list, description="named areas with a loitering time (situations)")
    situation_quiet_s: float = Field(default=10.0, gt=0, description="a situation ends after this many seconds without a related clip")

    @field_validator("zones")
    @classmethod
    def _unique_zone_names(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        names = [z.name for z in zones]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"zone names must be unique per camera; repeated: {', '.join(dup)}")
        return zones
