"""Configuration of the web console (``web:``): address, access control, TLS, limits of the view and uploads.

Secrets never sit in YAML literals: password hashes may (they are hashes), the
API token and plain passwords come from the environment through ``${VAR}``
placeholders or the ``IMMINENCE_WEB_TOKEN`` / ``IMMINENCE_WEB_USERS`` variables
read by :mod:`console.auth`.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebUser(_Strict):
    """(web: users: - ...) one console user."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$", description="login name")
    password_hash: SecretStr = Field(
        description="scrypt$N$r$p$salt_hex$hash_hex or pbkdf2_sha256$iterations$salt_hex$hash_hex "
                    "(make one with `imminence web --hash-password`)")
    role: Literal["viewer", "operator"] = Field(default="viewer", description="viewer: read-only; operator: may upload clips")


class WebConfig(_Strict):
    """(web:)"""

    host: str = Field(default="127.0.0.1", description="address to bind; anything but loopback needs users or a token")
    port: int = Field(default=8080, gt=0, lt=65536)
    tile_url: Optional[str] = Field(default=None, description="base-map tile URL template; none by default (offline)")
    tile_attribution: str = Field(default="", description="attribution shown with the tiles")
    group: str = Field(default="imminence-web", description="Kafka consumer group of the console")
    users: list[WebUser] = Field(default_factory=list, description="console users with hashed passwords")
    token: Optional[SecretStr] = Field(default=None, description="bearer token with the operator role (use ${ENV_VAR})")
    token_role: Literal["viewer", "operator"] = Field(default="operator", description="role granted by the token")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="session cookie lifetime")
    tls_cert: Optional[str] = Field(default=None, description="PEM certificate; serves HTTPS when set with tls_key")
    tls_key: Optional[str] = Field(default=None, description="PEM private key of tls_cert")
    history_hours: float = Field(default=6.0, gt=0, description="imminence history kept per cell for the chart")
    max_events: int = Field(default=2000, gt=0, description="indicator events kept in memory (newest)")
    max_events_per_cell: int = Field(default=50, gt=0, description="recent events kept per cell")
    max_history_per_cell: int = Field(default=500, gt=0, description="imminence points kept per cell")
    upload_max_mb: float = Field(default=50.0, gt=0, description="largest accepted upload")
    upload_max_seconds: float = Field(default=30.0, gt=0, description="longest accepted video")
    upload_fps: float = Field(default=5.0, gt=0, le=60, description="analysis rate of uploaded videos")
    upload_key_frames: int = Field(default=4, ge=1, le=20, description="annotated key frames returned per upload")
    upload_masks: list[list[tuple[float, float]]] = Field(
        default_factory=list, description="privacy masks blacked out on every upload before analysis and in its key "
                                          "frames: polygons in pixel coordinates, as a camera's masks")
    stale_after_s: float = Field(default=10.0, gt=0, description="the page shows 'stale' when the broker has not answered this long")

    @field_validator("upload_masks")
    @classmethod
    def _valid_masks(cls, masks: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        from streamer.sources import build_masks  # the camera sources' own rule: 3 points or more per polygon

        build_masks(masks)
        return masks

    @model_validator(mode="after")
    def _tls_pair(self) -> "WebConfig":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (give both or neither)")
        names = [u.name for u in self.users]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"user name(s) {sorted(dup)} appear more than once")
        return self
