"""OpenCV's HOG people detector on real footage: upscaling small frames finds the people HOG misses below ~100 px."""
from __future__ import annotations

from pathlib import Path

import cv2

from detectors.config import OpenCVDetectorConfig
from detectors.opencv_detector import OpenCVDetector

SAMPLE = Path(__file__).resolve().parent / "data" / "vtest_6s.mp4"


def _first_frames(width: int, n: int = 3):
    cap = cv2.VideoCapture(str(SAMPLE))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        assert ok
        h = round(f.shape[0] * width / f.shape[1])
        frames.append(cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA))
    return frames


def _people(cfg: OpenCVDetectorConfig, frames) -> list:
    det = OpenCVDetector(cfg)
    return [det.detect(f) for f in frames]  # the first frames are scanned whole (no motion model yet)


def test_upscaling_a_small_camera_finds_more_people_in_its_own_pixels() -> None:
    frames = _first_frames(512)  # the plaza's people are ~65-100 px tall here
    plain = _people(OpenCVDetectorConfig(), frames)
    up = _people(OpenCVDetectorConfig(upscale_width=768), frames)
    assert sum(map(len, up)) > sum(map(len, plain)), (list(map(len, plain)), list(map(len, up)))
    h, w = frames[0].shape[:2]
    for d in (d for ds in up for d in ds):
        x1, y1, x2, y2 = d.xyxy
        assert -1 <= x1 < x2 <= w + 1 and -1 <= y1 < y2 <= h + 1  # boxes in the camera's own pixels
    # the concept models record which detector settings their features came from
    assert OpenCVDetectorConfig().model_id() == "opencv"
    assert OpenCVDetectorConfig(upscale_width=768).model_id() == "opencv:up768"


def test_frames_at_or_above_the_upscale_width_are_left_alone() -> None:
    frames = _first_frames(768, n=1)
    a = _people(OpenCVDetectorConfig(), frames)[0]
    b = _people(OpenCVDetectorConfig(upscale_width=768), frames)[0]
    assert [d.xyxy for d in a] == [d.xyxy for d in b]
