"""Configuration of the ANFIS scoring service and of the per-crime-type models.

``ScoringConfig`` is the ``scoring:`` section of the root configuration.
``CrimeModelsConfig`` is the layout of ``configs/crime_models.yaml``: which
indicator concepts feed each crime type's ANFIS (default: the study's table,
``geo.vocabulary.CRIME_CONCEPTS``; a ``crimes:`` section overrides it), how the
imminence target is derived from staged crimes, and the training settings.  Both
forbid unknown keys.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from geo.vocabulary import CONCEPTS, CRIME_TYPES, crime_concepts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoringConfig(_Strict):
    """(scoring:)"""

    models: Optional[str] = Field(default=None, description="folder of trained ANFIS models (JSON); default: the bundled inference/models")
    window_s: float = Field(default=60.0, gt=0, description="event-time window length")
    slide_s: float = Field(default=60.0, gt=0, description="window slide")
    allowed_lateness_s: float = Field(default=120.0, ge=0)
    source_idle_s: float = Field(default=60.0, gt=0, description="a camera silent this long (processing time) no "
                                 "longer holds the watermark back")
    max_future_s: float = Field(default=300.0, ge=0, description="events stamped further ahead of the wall clock are skipped")
    threshold: float = Field(default=5.0, description="imminence above which a crime is flagged imminent")
    group: str = "imminence-score"
    emit_interval_s: float = Field(default=0.5, gt=0, description="publish changed windows (then commit) at most this often")
    max_poll_records: int = Field(default=500, gt=0, description="records per poll")
    top_rules: int = Field(default=3, ge=0, description="rules per crime type reported in each cell message")
    max_event_ids: int = Field(default=5000, gt=0, description="event ids carried per cell message (restart dedupe needs them all)")
    dedupe_size: int = Field(default=200_000, gt=0, description="recent event ids remembered to count duplicates")
    known_cameras_only: bool = Field(default=False, description="skip events of cameras not listed under 'cameras' (off for replays of other datasets)")
    restore: bool = Field(default=True, description="follow imminence.cells (from the start at launch, then live) and merge windows, so restarts and several instances count nothing twice")
    restore_horizon_s: float = Field(default=3600.0, gt=0, description="ignore cell messages produced longer ago than this when restoring")
    restore_idle_s: float = Field(default=3.0, gt=0, description="restore ends after this long without a new cell message")

    @model_validator(mode="after")
    def _slide_fits(self) -> "ScoringConfig":
        if self.slide_s > self.window_s:
            raise ValueError(f"slide_s ({self.slide_s}) may not exceed window_s ({self.window_s}): events would fall between windows")
        return self


class CrimeInputs(_Strict):
    """(crimes: <type>:) the indicator inputs of one crime type's ANFIS."""

    concepts: dict[str, list[str]] = Field(
        min_length=1, description="input name -> indicator concepts whose counts in the window are summed into it")
    radii: Optional[float] = Field(default=None, gt=0, le=1, description="subtractive-clustering radius (default: the top-level radii)")

    @field_validator("concepts")
    @classmethod
    def _known(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, cs in v.items():
            if not cs:
                raise ValueError(f"input '{name}' lists no concept")
            bad = [c for c in cs if c not in CONCEPTS]
            if bad:
                raise ValueError(f"input '{name}': unknown concept(s) {bad}; expected one of {list(CONCEPTS)}")
            if name in ("rate", "hour"):
                raise ValueError(f"input name '{name}' is reserved for the crime rate / hour inputs")
        return v


class TargetConfig(_Strict):
    """(target:) imminence target of a (cell, window) from the crimes staged there."""

    now: float = Field(default=10.0, ge=0, le=10, description="a crime of the type is staged in this window")
    next: float = Field(default=7.0, ge=0, le=10, description="... in the next window (imminent)")
    after_next: float = Field(default=3.0, ge=0, le=10, description="... in the window after that")


class CrimeModelsConfig(_Strict):
    """Layout of configs/crime_models.yaml."""

    window_s: float = Field(default=60.0, gt=0, description="window length of the training pairs (match scoring.window_s)")
    slide_s: Optional[float] = Field(default=None, gt=0, description="slide of the training windows (default: window_s); shorter gives more, overlapping pairs from short datasets")
    radii: float = Field(default=0.5, gt=0, le=1, description="default subtractive-clustering radius of influence")
    epochs: int = Field(default=40, ge=1)
    train_share: float = Field(default=0.6, gt=0, lt=1, description="share of windows (earliest first) used for training")
    timezone: str = Field(default="UTC", description="IANA time zone of the hour input (the study's hour is local time)")
    rate_per_hours: float = Field(default=24.0, gt=0, description="the crime-rate input counts staged crimes per this many hours")
    target: TargetConfig = Field(default_factory=TargetConfig)
    crimes: dict[str, CrimeInputs] = Field(
        default_factory=lambda: {crime: CrimeInputs(concepts=inputs) for crime, inputs in crime_concepts().items()},
        description="crime type -> its indicator inputs; default: the study's table (geo.vocabulary.CRIME_CONCEPTS)")
    rates: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="crime type -> cell id (or 'default') -> rate; overrides rates learnt from the data")

    @field_validator("crimes")
    @classmethod
    def _all_types(cls, v: dict[str, CrimeInputs]) -> dict[str, CrimeInputs]:
        unknown = [c for c in v if c not in CRIME_TYPES]
        if unknown:
            raise ValueError(f"unknown crime type(s) {unknown}; expected {list(CRIME_TYPES)}")
        missing = [c for c in CRIME_TYPES if c not in v]
        if missing:
            raise ValueError(f"missing crime type(s) {missing}")
        return v

    @model_validator(mode="after")
    def _slide_divides(self) -> "CrimeModelsConfig":
        if self.slide_s is not None:
            k = self.window_s / self.slide_s
            if self.slide_s > self.window_s or abs(k - round(k)) > 1e-9:
                raise ValueError(f"slide_s ({self.slide_s}) must divide window_s ({self.window_s})")
        return self

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as 'America/Toronto' or 'UTC')") from None
        return v

    @field_validator("rates")
    @classmethod
    def _rate_types(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        unknown = [c for c in v if c not in CRIME_TYPES]
        if unknown:
            raise ValueError(f"unknown crime type(s) {unknown}; expected {list(CRIME_TYPES)}")
        return v
