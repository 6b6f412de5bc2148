"""The default detector, with no weights: MOG2 background subtraction plus OpenCV's HOG people detector.

How it runs, per frame:

1. :class:`MotionEstimator` applies a MOG2 background model to a small copy of
   the frame (192 px wide): the share of foreground pixels is the frame's
   ``motion``, and the foreground blobs are regions where something moves.
2. The HOG people detector (``cv2.HOGDescriptor_getDefaultPeopleDetector``,
   a 64x128 window) runs only on those regions, each grown to at least one
   detection window and merged with its overlapping neighbours, on the frame
   downscaled to ``resize_width``.  People stand still only briefly on a
   surveillance camera, so this keeps nearly all detections at a fraction of
   the cost of a full-frame scan (on vtest.avi: ~19% of the frame area).
   While the background model is still learning (the first frames), or when
   most of the frame moves (a camera being moved or covered), the whole frame is
   scanned instead.
3. Non-maximum suppression (``cv2.dnn.NMSBoxes``) merges the overlapping windows
   of the region scans.

Boxes are returned in pixel coordinates of the frame that was passed in, class
``person``, score = the HOG SVM margin squashed to 0..1 by a logistic.
"""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

from detectors.config import OpenCVDetectorConfig
from detectors.types import Detection

#: model name and version reported in events (HOG people SVM of OpenCV 4.x + MOG2)
MODEL_NAME = "opencv-hog-mog2"
MODEL_VERSION = f"1+cv{cv2.__version__}"

_HOG_WIN = (64, 128)
_MOTION_WIDTH = 192


class MotionEstimator:
    """MOG2 foreground on a small copy of the frame: motion share and moving regions."""

    def __init__(self, width: int = _MOTION_WIDTH, history: int = 200, var_threshold: float = 25.0,
                 warmup_frames: int = 5) -> None:
        self.width = width
        self.warmup_frames = warmup_frames
        self.frames = 0
        self._mog = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold,
                                                       detectShadows=False)
        self._open = np.ones((3, 3), np.uint8)
        self._grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    @property
    def warm(self) -> bool:
        """True once the background model has seen enough frames to trust its foreground."""
        return self.frames >= self.warmup_frames

    def apply(self, frame: np.ndarray) -> tuple[float, list[tuple[float, float, float, float]]]:
        """Update the model; return (share of foreground pixels, moving regions in frame pixels)."""
        h, w = frame.shape[:2]
        scale = self.width / w
        small = cv2.resize(frame, (self.width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        fg = self._mog.apply(small)
        self.frames += 1
        if self.frames == 1:  # MOG2 calls the whole first frame foreground: no motion is known yet
            return 0.0, []
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._open)  # drop pixel noise
        motion = float(np.count_nonzero(fg)) / fg.size
        blobs = cv2.dilate(fg, self._grow, iterations=2)  # join the parts of one body
        contours, _ = cv2.findContours(blobs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        regions = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            if bw * bh < 12:  # a few pixels at this scale: noise, not a person
                continue
            regions.append((x / scale, y / scale, (x + bw) / scale, (y + bh) / scale))
        return motion, regions


def merge_boxes(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge overlapping boxes into their bounding boxes until none overlap."""
    out = list(boxes)
    changed = True
    while changed:
        changed = False
        merged: list[tuple[int, int, int, int]] = []
        for a in out:
            for i, b in enumerate(merged):
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    changed = True
                    break
            else:
                merged.append(a)
        out = merged
    return out


class OpenCVDetector:
    """People (HOG on moving regions) and motion (MOG2); ``motion`` holds the last frame's share.

    One instance per camera: the background model is the camera's.
    """

    name = MODEL_NAME
    version = MODEL_VERSION
    classes: tuple[str, ...] = ("person",)

    def __init__(self, cfg: Optional[OpenCVDetectorConfig] = None, *,
                 full_frame_motion: float = 0.5, nms_iou: float = 0.4) -> None:
        self.cfg = cfg or OpenCVDetectorConfig()
        self.motion_only = self.cfg.motion_only
        self.full_frame_motion = full_frame_motion
        self.nms_iou = nms_iou
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.motion_estimator = MotionEstimator()
        self.motion = 0.0
        self.full_scans = 0  # frames scanned whole (warm-up, global motion, motion_only off)

    @classmethod
    def from_config(cls, cfg: OpenCVDetectorConfig) -> "OpenCVDetector":
        return cls(cfg)

    def _scan(self, image: np.ndarray, ox: int = 0, oy: int = 0) -> tuple[list[list[int]], list[float]]:
        stride = self.cfg.hog_stride
        rects, weights = self.hog.detectMultiScale(image, winStride=(stride, stride), padding=(8, 8),
                                                   scale=self.cfg.hog_scale)
        boxes = [[int(x) + ox, int(y) + oy, int(w), int(h)] for (x, y, w, h) in rects]
        return boxes, [float(s) for s in np.asarray(weights).reshape(-1)]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Detect people in a BGR frame; updates ``self.motion``."""
        if frame is None or frame.ndim != 3 or frame.size == 0:
            raise ValueError("expected a non-empty BGR frame (H x W x 3)")
        self.motion, regions = self.motion_estimator.apply(frame)
        h, w = frame.shape[:2]
        scale = min(1.0, self.cfg.resize_width / w)
        if self.cfg.upscale_width > w:
            scale = min(self.cfg.upscale_width, self.cfg.resize_width) / w
        img = frame if scale == 1.0 else cv2.resize(
            frame, (round(w * scale), round(h * scale)),
            interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
        ih, iw = img.shape[:2]
        boxes: list[list[int]] = []
        scores: list[float] = []
        whole = (not self.motion_only or not self.motion_estimator.warm
                 or self.motion > self.full_frame_motion)
        if iw < _HOG_WIN[0] or ih < _HOG_WIN[1]:
            return []  # smaller than one detection window (HOG would crash on it, not just miss)
        if whole:
            self.full_scans += 1
            boxes, scores = self._scan(img)
        elif regions:
            rois = []
            for x1, y1, x2, y2 in regions:
                cx, cy = (x1 + x2) / 2 * scale, (y1 + y2) / 2 * scale
                rw = max((x2 - x1) * scale + 32, _HOG_WIN[0] + 16)  # room for the window and padding
                rh = max((y2 - y1) * scale + 32, _HOG_WIN[1] + 16)
                rois.append((max(0, int(cx - rw / 2)), max(0, int(cy - rh / 2)),
                             min(iw, int(cx + rw / 2)), min(ih, int(cy + rh / 2))))
            for x1, y1, x2, y2 in merge_boxes(rois):
                if x2 - x1 < _HOG_WIN[0] or y2 - y1 < _HOG_WIN[1]:
                    continue  # at the frame edge, too small to hold one window
                b, s = self._scan(img[y1:y2, x1:x2], x1, y1)
                boxes += b
                scores += s
        if not boxes:
            return []
        probs = [1.0 / (1.0 + math.exp(-s)) for s in scores]
        keep = cv2.dnn.NMSBoxes(boxes, probs, score_threshold=0.0, nms_threshold=self.nms_iou)
        out = []
        for i in np.asarray(keep).reshape(-1):
            x, y, bw, bh = boxes[int(i)]
            out.append(Detection(xyxy=(x / scale, y / scale, (x + bw) / scale, (y + bh) / scale),
                                 cls="person", score=probs[int(i)]))
        return out
