"""Configuration of the detectors stage: detector (chosen by ``type``), tracker, concepts, GMCP."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenCVDetectorConfig(_Strict):
    """Background subtraction plus OpenCV's HOG people detector; needs no weights."""

    type: Literal["opencv"] = "opencv"
    hog_scale: float = Field(default=1.05, gt=1.0)
    hog_stride: int = Field(default=8, gt=0)
    resize_width: int = Field(default=960, ge=160, description="frames wider than this are downscaled to it for detection "
                              "(HOG needs people at least ~100 px tall: 640 finds 80% of vtest.avi's frames, 768 98%)")
    upscale_width: int = Field(default=0, ge=0, description="frames narrower than this are upscaled to it for "
                               "detection (0 = never): HOG finds no one under ~100 px tall, so a 640-wide camera "
                               "finds more people at 768")
    motion_only: bool = Field(default=True, description="scan only moving regions (MOG2) for people; false = whole frame")

    def model_id(self) -> str:
        """How concept models name this detector (what their features were computed with)."""
        return f"opencv:up{self.upscale_width}" if self.upscale_width else "opencv"


class YOLODetectorConfig(_Strict):
    """Any ultralytics checkpoint (.pt) or exported ONNX model."""

    type: Literal["yolo"] = "yolo"
    weights: str = Field(description="path to a .pt or .onnx file")
    imgsz: int = Field(default=320, ge=32)
    conf: float = Field(default=0.25, gt=0, lt=1)
    iou: float = Field(default=0.5, gt=0, lt=1)
    device: Optional[str] = Field(default=None, description="cuda:0, cpu; default: the GPU when present")

    def model_id(self) -> str:
        """How concept models name this detector: the weights file's name and the input size."""
        return f"yolo:{Path(self.weights).name}:{self.imgsz}"


DetectorConfig = Annotated[Union[OpenCVDetectorConfig, YOLODetectorConfig], Field(discriminator="type")]


class TrackerConfig(_Strict):
    type: Literal["bytetrack", "botsort", "iou"] = "bytetrack"
    max_age_s: float = Field(default=3.0, gt=0, description="a lost track is dropped after this long")
    max_tracks: int = Field(default=256, gt=0, description="cap on live track state per camera")


class HeldObjectsConfig(_Strict):
    """Secondary classifier on each tracked person's crop: the bag or weapon they carry (detectors.held_objects)."""

    weights: str = Field(description="held-object weights file (imminence detectors train-held)")
    window: int = Field(default=5, ge=1, description="a person's last analysed frames a decision looks at")
    persist: int = Field(default=2, ge=1, description="frames of the window whose score must clear the family's "
                         "threshold before the object counts (one odd frame never makes a weapon)")
    max_people: int = Field(default=40, ge=1, description="people classified per frame, largest first")


class ConceptsConfig(_Strict):
    model: Optional[str] = Field(default=None, description="concept classifiers file (JSON); null = no concept stage")
    disabled: list[str] = Field(default_factory=list, description="concepts never chosen on this deployment (e.g. "
                                "those whose detector has no measured recall); their clips fall to the next best")
    max_outside: int = Field(default=4, ge=1, description="abstain (label normal, uncertain) when this many clip "
                             "features or more lie far outside the training clips' range")


class GMCPConfig(_Strict):
    window: int = Field(default=8, ge=1, description="h: clips per GMCP window")
    time_limit_s: float = Field(default=1.0, gt=0)
    solver: Literal["highs", "cbc"] = "highs"
    cooccurrence: Optional[str] = Field(default=None, description="co-occurrence matrices file (JSON)")
    beta: float = Field(default=1.5, ge=0, description="weight of the co-occurrence term against the detector "
                        "confidences (tuned on validation scene seed 31 with weighting lift, decay 0.3)")
    weighting: Literal["log", "lift", "product"] = Field(
        default="lift", description="edge weights (detectors.gmcp.clip_edge_weights): log = log P(b|a); lift = "
        "log P(b|a)/P(b), which drops the pull towards the commonest concept")
    decay: float = Field(default=0.3, gt=0, le=1, description="weight per clip of distance between two clips "
                         "beyond adjacent (1 = none)")
    floor: float = Field(default=0.2, ge=0, lt=1, description="GMCP may move a clip only to a concept whose own "
                         "score in that clip is at least this; otherwise the clip keeps its arg-max")


class DetectorsConfig(_Strict):
    """(detectors:)"""

    detector: DetectorConfig = Field(default_factory=OpenCVDetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    held_objects: Optional[HeldObjectsConfig] = Field(default=None, description="bag/weapon classifier on person "
                                                      "crops; null = objects only from the detector")
    concepts: ConceptsConfig = Field(default_factory=ConceptsConfig)
    gmcp: GMCPConfig = Field(default_factory=GMCPConfig)
