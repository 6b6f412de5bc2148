"""Configuration of the map service and the forecast."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mapping import kernels


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MapConfig(_Strict):
    """(map:)"""

    radius_m: float = Field(default=1000.0, gt=0, description="KDE search radius")
    kernel: str = Field(default="quartic", description="KDE kernel, a name in mapping.kernels (quartic, gaussian)")
    interval_s: float = Field(default=5.0, gt=0, description="publish a snapshot at least this often when something changed")
    live_half_life_s: float = Field(default=900.0, gt=0, description="weight of a live window halves every this many seconds; "
                                                                   "windows older than 10 half-lives are dropped "
                                                                   "as too old (logged, and said on the console)")
    clock: Literal["auto", "wall", "event"] = Field(
        default="auto", description="what live windows are aged against: auto = per source, windows of replayed "
                                    "recordings (CellImminence.replay) against the newest replayed window of their "
                                    "camera, live ones against the wall clock; wall = all against the wall clock; "
                                    "event = all against the newest window end received")
    live_weight: float = Field(default=0.7, ge=0, le=1, description="weight of fresh live imminence against the forecast")
    files_interval_s: float = Field(default=30.0, gt=0, description="rewrite map.geojson and the PNGs at most this often (and on exit)")
    out_dir: str = "out/map"
    group: str = "imminence-map"

    @field_validator("kernel")
    @classmethod
    def _known_kernel(cls, v: str) -> str:
        kernels.get(v)  # ValueError naming the registered kernels
        return v


class ForecastConfig(_Strict):
    """(forecast:)"""

    checkpoint: Optional[str] = Field(default=None, description="trained forecast checkpoint (.pt, weights only)")
    predictions: Optional[str] = Field(default=None, description="forecast output file the map service merges")
    incidents: list[str] = Field(default_factory=list, description="incident CSVs to train from (paths)")
    incidents_format: Literal["sf", "toronto-mci", "generic"] = Field(
        default="generic", description="layout of the incident files")
    incidents_map: Optional[str] = Field(default=None, description="generic: time=COL,category=COL,lon=COL,lat=COL")
    epochs: int = Field(default=4, ge=1, description="training epochs")
    max_steps: Optional[int] = Field(default=15, ge=1, description="steps (random 48-day blocks) per epoch; null = every block")
    width: float = Field(default=0.25, gt=0, le=1, description="CNN channel multiplier (1.0 = the design's 32..256)")
    history_days: int = Field(default=30, ge=2, description="T, days per LSTM window")
    seed: int = 0
    kde_radius_m: float = Field(default=1000.0, gt=0, description="search radius of the KDE baseline")
