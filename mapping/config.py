"""Configuration of the map service and the forecast."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MapConfig(_Strict):
    """(map:)"""

    radius_m: float = Field(default=1000.0, gt=0, description="KDE search radius")
    kernel: Literal["quartic", "gaussian"] = "quartic"
    interval_s: float = Field(default=5.0, gt=0, description="publish a snapshot at least this often when something changed")
    live_half_life_s: float = Field(default=900.0, gt=0, description="weight of a live window halves every this many seconds")
    live_weight: float = Field(default=0.7, ge=0, le=1, description="weight of fresh live imminence against the forecast")
    out_dir: str = "out/map"
    group: str = "imminence-map"


class ForecastConfig(_Strict):
    """(forecast:)"""

    checkpoint: Optional[str] = Field(default=None, description="trained forecast checkpoint (.pt, weights only)")
    predictions: Optional[str] = Field(default=None, description="forecast output file the map service merges")
