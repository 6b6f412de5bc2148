"""Configuration of the ANFIS scoring service."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoringConfig(_Strict):
    """(scoring:)"""

    models: Optional[str] = Field(default=None, description="folder of trained ANFIS models (JSON)")
    window_s: float = Field(default=60.0, gt=0, description="event-time window length")
    slide_s: float = Field(default=60.0, gt=0, description="window slide")
    allowed_lateness_s: float = Field(default=120.0, ge=0)
    max_future_s: float = Field(default=300.0, ge=0, description="events stamped further ahead of the wall clock are skipped")
    threshold: float = Field(default=5.0, description="imminence above which a crime is flagged imminent")
    group: str = "imminence-score"
