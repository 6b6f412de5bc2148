"""Root configuration: every section of every stage, validated at start-up.

One YAML file holds any of the sections below; each stage owns its section's
model.  Cross-field checks are small ``verify_*`` functions whose messages name
the camera.  See ``configs/default.yaml`` for every key with its default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from console.config import WebConfig
from detectors.config import DetectorsConfig
from imminence.configfile import ConfigError, read_yaml, validate
from inference.config import ScoringConfig
from mapping.config import ForecastConfig, MapConfig
from geo.grid import Grid, GridConfig, GridError
from streamer.config import BusConfig, CameraConfig


class ImminenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bus: BusConfig = Field(default_factory=BusConfig)
    grid: Optional[GridConfig] = None
    cameras: list[CameraConfig] = Field(default_factory=list)
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    map: MapConfig = Field(default_factory=MapConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    web: WebConfig = Field(default_factory=WebConfig)

    @model_validator(mode="after")
    def _verify(self) -> "ImminenceConfig":
        verify_unique_camera_ids(self)
        return self


def verify_unique_camera_ids(cfg: ImminenceConfig) -> None:
    seen: set[str] = set()
    for cam in cfg.cameras:
        if cam.id in seen:
            raise ValueError(f"camera id '{cam.id}' appears twice")
        seen.add(cam.id)


def verify_cameras_in_grid(cfg: ImminenceConfig, grid: Grid, path: str | Path,
                           lines: dict[tuple, int]) -> None:
    """Every camera position must be of the grid's kind and fall inside the study area."""
    problems = []
    for i, cam in enumerate(cfg.cameras):
        p = cam.position
        line = lines.get(("cameras", i, "position"), lines.get(("cameras", i)))
        where = f"{path}:{line}" if line else str(path)
        try:
            cell = grid.cell_of(lon=p.lon, lat=p.lat, x=p.x, y=p.y)
        except GridError as exc:
            problems.append(f"{where}: cameras -> {i} ({cam.id}) -> position: {exc}")
            continue
        if cell is None:
            problems.append(f"{where}: cameras -> {i} ({cam.id}) -> position: outside the study area of 'grid'")
    if problems:
        raise ConfigError("\n".join(problems))


def load_config(path: str | Path) -> tuple[ImminenceConfig, Optional[Grid]]:
    """Read, validate and cross-check a configuration file; build its grid when it has one."""
    data, lines = read_yaml(path)
    cfg = validate(ImminenceConfig, data, path, lines)
    grid = None
    if cfg.grid is not None:
        try:
            grid = Grid.from_config(cfg.grid, base_dir=Path(path).parent)
        except GridError as exc:
            line = lines.get(("grid",))
            raise ConfigError(f"{path}:{line or 1}: grid: {exc}") from None
        verify_cameras_in_grid(cfg, grid, path, lines)
    elif cfg.cameras:
        raise ConfigError(f"{path}: cameras need a 'grid' section (the study area) to know their cells")
    return cfg, grid
