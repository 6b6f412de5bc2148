"""Replayable datasets: a folder with ``manifest.json``, videos and optional ground truth.

Layout::

    DATASET/
      manifest.json          # DatasetManifest below
      cam1.mp4               # any video OpenCV decodes
      cam1.gt.json           # optional GroundTruth below

``manifest.json``::

    {"schema": "imminence.dataset/1", "name": "demo",
     "grid": {...GridConfig...} (optional: the study area the positions lie in),
     "videos": [{"file": "cam1.mp4", "camera_id": "cam1",
                 "position": {"lon": -79.38, "lat": 43.65},
                 "start": "2026-05-01T21:00:00Z", "annotations": "cam1.gt.json"}]}

Ground truth per video: the clip length, one entry per clip with its concept
label (one of ``geo.vocabulary.CONCEPTS``) and the crime types the scene staged
in it, and per-frame boxes ``[class, x1, y1, x2, y2, track_id]`` in pixels (class
ids index ``classes``; the scene generator writes ``person, bag, weapon, vehicle``
and an entry for every frame, empty when nothing is visible), plus, optionally,
the staged ``episodes`` (kind, crimes, clip span, phases, actor track ids).

Paths in a manifest are resolved inside the dataset folder and may not escape it
(no absolute paths, no ``..`` out of the folder).
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from geo.grid import GridConfig
from geo.jsonfile import read_model
from geo.vocabulary import CONCEPTS, CRIME_TYPES
from streamer.config import Position
from streamer.schemas import UtcDatetime

MANIFEST = "manifest.json"


class DatasetError(ValueError):
    """A dataset folder, manifest or ground-truth file that cannot be used."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VideoEntry(_Strict):
    file: str = Field(min_length=1)
    camera_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    position: Position
    start: UtcDatetime = Field(description="wall-clock time of the first frame (UTC)")
    fps: Optional[float] = Field(default=None, gt=0, description="analysis rate; default: the replay's")
    annotations: Optional[str] = None


class DatasetManifest(_Strict):
    schema_: Literal["imminence.dataset/1"] = Field(default="imminence.dataset/1", alias="schema")
    name: str = "dataset"
    grid: Optional[GridConfig] = None
    videos: list[VideoEntry] = Field(min_length=1)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ClipTruth(_Strict):
    index: int = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    concept: str
    crimes: list[str] = Field(default_factory=list)

    @field_validator("concept")
    @classmethod
    def _known_concept(cls, v: str) -> str:
        if v not in CONCEPTS:
            raise ValueError(f"unknown concept {v!r}; expected one of {list(CONCEPTS)}")
        return v

    @field_validator("crimes")
    @classmethod
    def _known_crimes(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CRIME_TYPES]
        if bad:
            raise ValueError(f"unknown crime type(s) {bad}; expected {list(CRIME_TYPES)}")
        return v


class EpisodeTruth(_Strict):
    """A staged incident (scene generator): its kind, crimes, clip span and phases."""

    kind: str
    crimes: list[str] = Field(default_factory=list)
    first_clip: int = Field(ge=0)
    end_clip: int = Field(gt=0, description="one past the last clip")
    phases: list[tuple[str, int, int]] = Field(default_factory=list, description="[concept, first clip, end clip]")
    actors: list[int] = Field(default_factory=list, description="track ids of the people and objects involved")


class GroundTruth(_Strict):
    schema_: Literal["imminence.groundtruth/1"] = Field(default="imminence.groundtruth/1", alias="schema")
    fps: float = Field(gt=0, description="frame rate of the video file")
    clip_seconds: float = Field(gt=0)
    classes: list[str] = Field(default_factory=lambda: ["person"], description="box class names, index = class id")
    clips: list[ClipTruth] = Field(default_factory=list)
    frames: dict[str, list[list[float]]] = Field(
        default_factory=dict, description="frame index -> [[class_id, x1, y1, x2, y2, track_id], ...]")
    episodes: list[EpisodeTruth] = Field(default_factory=list, description="staged incidents (optional)")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def safe_path(root: Path, relative: str) -> Path:
    """Resolve ``relative`` inside ``root``; refuse absolute paths and escapes."""
    if "\x00" in relative:  # found by fuzzing: Path.resolve raised a bare ValueError
        raise DatasetError(f"{relative!r}: NUL bytes are not allowed in a manifest path")
    rel = Path(relative)
    if rel.is_absolute():
        raise DatasetError(f"{relative!r}: absolute paths are not allowed in a manifest")
    full = (root / rel).resolve()
    base = root.resolve()
    if not full.is_relative_to(base):
        raise DatasetError(f"{relative!r}: path escapes the dataset folder {root}")
    if full == base:  # found by fuzzing: "", "." and "a/.." named the folder itself as a video
        raise DatasetError(f"{relative!r}: names the dataset folder itself, not a file in it")
    return full


class Dataset:
    """A validated dataset folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a dataset folder")
        self.manifest = read_model(self.root / MANIFEST, DatasetManifest, DatasetError, "manifest")
        ids = [v.camera_id for v in self.manifest.videos]
        if len(set(ids)) != len(ids):
            raise DatasetError(f"{self.root / MANIFEST}: camera ids repeat: {ids}")
        for v in self.manifest.videos:
            p = safe_path(self.root, v.file)
            if not p.exists():
                raise DatasetError(f"{self.root / MANIFEST}: video {v.file!r} of camera {v.camera_id} is missing")
            if v.annotations:
                safe_path(self.root, v.annotations)

    @property
    def videos(self) -> list[VideoEntry]:
        return self.manifest.videos

    def video_path(self, entry: VideoEntry) -> Path:
        return safe_path(self.root, entry.file)

    def ground_truth(self, entry: VideoEntry) -> Optional[GroundTruth]:
        if not entry.annotations:
            return None
        return read_model(safe_path(self.root, entry.annotations), GroundTruth, DatasetError, "ground truth")


def write_manifest(root: str | Path, manifest: DatasetManifest) -> Path:
    path = Path(root) / MANIFEST
    path.write_text(manifest.model_dump_json(by_alias=True, indent=2, exclude_none=True))
    return path


def write_ground_truth(path: str | Path, truth: GroundTruth) -> Path:
    Path(path).write_text(truth.model_dump_json(by_alias=True, exclude_none=True))
    return Path(path)


def start_time(entry: VideoEntry) -> datetime:
    return entry.start
