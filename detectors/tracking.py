"""One tracker per camera: ultralytics' ByteTrack or BoT-SORT (or a plain IoU matcher), ids "camera:track".

Ultralytics' own ``track.py`` hard-codes the frame rate and never validates the
tracker YAML, and one model shared by several cameras mixes their ids
(ultralytics #7209). Here each camera gets its own tracker object built from a
validated argument set (:class:`TrackerArgs`), the lost-track buffer is derived
from the camera's real analysis rate (``max_age_s * fps`` frames), ids are
exposed camera-scoped (``track_key``), and state is capped every frame: the
removed-track history ultralytics keeps is dropped and the number of live plus
lost tracks is held under ``max_tracks`` (oldest lost first), so memory stays flat
in long runs (ultralytics #1413, #10420).

BoT-SORT runs with ``gmc_method: none`` by default: surveillance cameras are
fixed, and sparse optical-flow motion compensation costs a frame's worth of CPU.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.optimize import linear_sum_assignment

from detectors.types import Detection
from detectors.yolo import DetectorError, ensure_offline


class TrackerArgs(BaseModel):
    """The argument set ultralytics' ByteTrack/BoT-SORT read, validated (its YAML is not)."""

    model_config = ConfigDict(extra="forbid")
    tracker_type: Literal["bytetrack", "botsort"] = "bytetrack"
    track_high_thresh: float = Field(default=0.25, gt=0, lt=1)
    track_low_thresh: float = Field(default=0.1, ge=0, lt=1)
    new_track_thresh: float = Field(default=0.25, gt=0, lt=1)
    track_buffer: int = Field(default=30, ge=1, description="frames a lost track is kept")
    match_thresh: float = Field(default=0.8, gt=0, le=1)
    fuse_score: bool = True
    # BoT-SORT only
    gmc_method: Literal["none", "sparseOptFlow", "orb", "sift", "ecc"] = "none"
    proximity_thresh: float = Field(default=0.5, gt=0, le=1)
    appearance_thresh: float = Field(default=0.8, gt=0, le=1)
    with_reid: Literal[False] = False  # a ReID model would be a download
    model: str = "auto"


def build_args(tracker_type: str, fps: float, max_age_s: float, **overrides: Any) -> TrackerArgs:
    """Validated tracker arguments with the lost buffer from the camera's real rate."""
    if not (fps > 0 and math.isfinite(fps)):
        raise DetectorError(f"tracker: frame rate must be a positive number, got {fps!r}")
    try:
        return TrackerArgs(tracker_type=tracker_type, track_buffer=max(1, math.ceil(max_age_s * fps)), **overrides)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise DetectorError(f"tracker settings: {errs}") from None


class _Boxes:
    """The minimal numpy results object ultralytics' trackers read (conf, cls, xywh, boolean indexing)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data  # N x 6: x1 y1 x2 y2 conf cls

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: Any) -> "_Boxes":
        return _Boxes(self.data[idx])

    @property
    def conf(self) -> np.ndarray:
        return self.data[:, 4]

    @property
    def cls(self) -> np.ndarray:
        return self.data[:, 5]

    @property
    def xyxy(self) -> np.ndarray:
        return self.data[:, :4]

    @property
    def xywh(self) -> np.ndarray:
        x1, y1, x2, y2 = self.data[:, 0], self.data[:, 1], self.data[:, 2], self.data[:, 3]
        return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes a (N,4) and b (M,4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


class _IoUTracker:
    """Greedy-free IoU association (Hungarian on 1 - IoU), for detectors without useful scores."""

    def __init__(self, max_lost: int, min_iou: float = 0.2) -> None:
        self.version = f"iou:buffer={max_lost}"
        self.max_lost = max_lost
        self.min_iou = min_iou
        self.tracks: dict[int, tuple[np.ndarray, int, int]] = {}  # id -> (box, cls, last frame)
        self.frame_id = 0
        self._next = 1

    @classmethod
    def build(cls, cfg: Any, fps: float, **overrides: Any) -> "_IoUTracker":
        return cls(max_lost=max(1, math.ceil(cfg.max_age_s * fps)))

    def track(self, data: np.ndarray, frame: Optional[np.ndarray]) -> list[Optional[int]]:
        """Track id per row of ``data`` (N x 6: x1 y1 x2 y2 conf cls)."""
        return self.update(data[:, :4], data[:, 5].astype(int))

    def update(self, boxes: np.ndarray, classes: np.ndarray) -> list[Optional[int]]:
        self.frame_id += 1
        ids: list[Optional[int]] = [None] * len(boxes)
        tids = list(self.tracks)
        if tids and len(boxes):
            prev = np.array([self.tracks[t][0] for t in tids])
            iou = _iou(prev, boxes)
            same = np.array([[self.tracks[t][1] == c for c in classes] for t in tids])
            cost = np.where(same, 1.0 - iou, 2.0)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou and same[r, c]:
                    ids[c] = tids[r]
        for i, tid in enumerate(ids):
            if tid is None:
                tid = ids[i] = self._next
                self._next += 1
            self.tracks[tid] = (boxes[i], int(classes[i]), self.frame_id)
        for tid in [t for t, (_, _, last) in self.tracks.items() if self.frame_id - last > self.max_lost]:
            del self.tracks[tid]
        return ids

    def live(self) -> int:
        return len(self.tracks)

    def state(self) -> tuple[int, int]:
        """(tracked, lost): tracks matched on the last frame, and those waiting out ``max_lost``."""
        tracked = sum(1 for _, _, last in self.tracks.values() if last == self.frame_id)
        return tracked, len(self.tracks) - tracked

    def cap(self, n: int) -> None:
        if len(self.tracks) > n:
            for tid in sorted(self.tracks, key=lambda t: self.tracks[t][2])[: len(self.tracks) - n]:
                del self.tracks[tid]

    def reset(self) -> None:
        self.tracks.clear()


class _UltralyticsTracker:
    """ultralytics' ByteTrack or BoT-SORT, with validated arguments and capped state."""

    def __init__(self, tracker_type: str, args: TrackerArgs) -> None:
        ensure_offline()
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.basetrack import TrackState
        from ultralytics.trackers.byte_tracker import BYTETracker

        self.args = args
        ns = SimpleNamespace(**args.model_dump())
        self._ul = BOTSORT(ns) if tracker_type == "botsort" else BYTETracker(ns)
        self.version = f"{tracker_type}:buffer={args.track_buffer}"
        self._removed = TrackState.Removed

    @classmethod
    def factory(cls, tracker_type: str):
        def build(cfg: Any, fps: float, **overrides: Any) -> "_UltralyticsTracker":
            return cls(tracker_type, build_args(tracker_type, fps, cfg.max_age_s, **overrides))
        return build

    def track(self, data: np.ndarray, frame: Optional[np.ndarray]) -> list[Optional[int]]:
        ids: list[Optional[int]] = [None] * len(data)
        out = self._ul.update(_Boxes(data), frame)
        for row in np.asarray(out).reshape(-1, 8):
            idx = int(row[7])
            if 0 <= idx < len(ids):
                ids[idx] = int(row[4])
        return ids

    def cap(self, n: int) -> None:
        t = self._ul
        # ultralytics subtracts ``removed_stracks`` from the lost pool before it adds the frame's removals,
        # so a track timed out this frame stays in ``lost_stracks`` until the next frame's subtraction;
        # since that history is emptied here, drop timed-out tracks ourselves or they pile up to the cap
        t.lost_stracks = [s for s in t.lost_stracks if s.state != self._removed]
        t.removed_stracks = []  # history ultralytics keeps only for its own bookkeeping
        over = len(t.tracked_stracks) + len(t.lost_stracks) - n
        if over > 0:
            t.lost_stracks.sort(key=lambda s: s.end_frame)
            t.lost_stracks = t.lost_stracks[over:]
            over = len(t.tracked_stracks) + len(t.lost_stracks) - n
            if over > 0:  # still too many live tracks: keep the most confident
                t.tracked_stracks.sort(key=lambda s: s.score, reverse=True)
                t.tracked_stracks = t.tracked_stracks[:n]

    def live(self) -> int:
        return len(self._ul.tracked_stracks) + len(self._ul.lost_stracks) + len(self._ul.removed_stracks)

    def state(self) -> tuple[int, int]:
        """(tracked, lost); removed tracks are emptied by :meth:`cap` every frame, so they are not counted."""
        return len(self._ul.tracked_stracks), len(self._ul.lost_stracks) + len(self._ul.removed_stracks)

    def reset(self) -> None:
        ids = self._ul._ids
        self._ul.reset()
        self._ul._ids = ids


#: ``detectors.tracker.type`` -> a function (tracker config, fps, **overrides) -> backend
TRACKERS = {
    "bytetrack": _UltralyticsTracker.factory("bytetrack"),
    "botsort": _UltralyticsTracker.factory("botsort"),
    "iou": _IoUTracker.build,
}


class CameraTracker:
    """Links one camera's detections into tracks; ``update`` fills ``Detection.track_id``.

    Ids are unique within the camera for its lifetime; :meth:`key` gives the
    camera-scoped string ``"camera:track"`` used everywhere outside this module.
    """

    def __init__(self, camera_id: str, cfg: Any, fps: float, classes: Optional[list[str]] = None,
                 **overrides: Any) -> None:
        self.camera_id = camera_id
        self.type = cfg.type
        self.max_tracks = int(cfg.max_tracks)
        self.classes: list[str] = list(classes or [])
        build = TRACKERS.get(cfg.type)
        if build is None:
            raise DetectorError(f"unknown tracker type {cfg.type!r}; known: {', '.join(TRACKERS)}")
        self._backend = build(cfg, fps, **overrides)
        self.args: Optional[TrackerArgs] = getattr(self._backend, "args", None)
        self.version = self._backend.version

    def key(self, track_id: int) -> str:
        return f"{self.camera_id}:{track_id}"

    def _cls_index(self, name: str) -> int:
        if name not in self.classes:
            self.classes.append(name)
        return self.classes.index(name)

    def update(self, detections: list[Detection], frame: Optional[np.ndarray] = None) -> list[Detection]:
        """Assign track ids in place (None for a detection no track took) and return the list."""
        for d in detections:
            d.track_id = None
        data = np.array([[*d.xyxy, d.score, self._cls_index(d.cls)] for d in detections],
                        dtype=np.float64).reshape(-1, 6)
        for d, tid in zip(detections, self._backend.track(data, frame)):
            d.track_id = tid
        self._backend.cap(self.max_tracks)
        return detections

    def live_tracks(self) -> int:
        """Tracks held in memory now (tracked + lost)."""
        return self._backend.live()

    def state_size(self) -> dict[str, int]:
        """Tracks held now by state: ``tracked`` (matched on the last frame) and ``lost`` (kept for
        re-identification until ``max_age_s`` passes); what ``imminence_tracker_tracks`` exports."""
        tracked, lost = self._backend.state()
        return {"tracked": tracked, "lost": lost}

    def reset(self) -> None:
        """Forget every track (e.g. after the stream reopens); ids keep counting so they stay unique."""
        self._backend.reset()
