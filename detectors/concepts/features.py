"""Per-clip features for the crime-indicator concept classifiers.

A :class:`ClipFeatures` accumulator is fed every analysed frame of one camera
(frame, tracked detections, stream time) and hands out one fixed-length vector per
clip (:data:`FEATURE_NAMES`, definition :data:`FEATURE_VERSION`). Groups:

* **presence** as shares, never raw counts (a crowd must not look like a crime):
  share of frames with a person, with two or more; share of tracks standing about
  and running.
* **track kinematics** of people: speed, acceleration and heading change, measured
  in body heights per second (the box height makes them independent of distance to
  the camera and of resolution); dwell time (age of tracks still present), how
  straight they walked; exits through the frame border (the border band is the one
  zone every camera has) and how fast and after how long a dwell.
* **pair dynamics** between people: closest distance, fastest approach, contact,
  sudden separation after contact, and one party much faster than the other after
  contact (fleeing).
* **motion energy**: dense optical flow (``cv2.calcOpticalFlowFarneback``) on frames
  downscaled to ``flow_width`` pixels, over the whole frame and inside person boxes
  (violent movement moves limbs more than it moves the box), in body heights per
  second (the camera's running median person height), so zoom and resolution cancel.
* **objects near people**: bags, weapons and vehicles (by class-name families, so any
  detector's names map), near a person, and a bag changing its nearest person.
* **tampering signs**, all against the camera's own running baseline so that a dark
  or low-contrast camera is not a tampered one: brightness and contrast drops
  (log ratios), sudden brightness change, blur (Laplacian variance), scene change
  (histogram distance to the previous frame and to the baseline), and people
  vanishing all at once.

Track history survives clip boundaries (dwell needs it) and is capped in count and age.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Optional, Sequence

import cv2
import numpy as np

from detectors.types import Detection

FEATURE_VERSION = "imminence.clip-features/3"

#: class-name families; any detector class containing one of these words joins the family
FAMILIES: dict[str, tuple[str, ...]] = {
    "bag": ("bag", "backpack", "handbag", "suitcase", "purse", "item", "parcel", "package"),
    "weapon": ("knife", "gun", "pistol", "rifle", "weapon", "bat", "scissors", "machete"),
    "vehicle": ("car", "truck", "bus", "motorcycle", "motorbike", "bicycle", "vehicle", "van", "scooter"),
}

FEATURE_NAMES: tuple[str, ...] = (
    # people and kinematics
    "person_share", "pair_share", "slow_share", "fast_share",
    "speed_mean", "speed_max_track", "speed_p95", "accel_p95", "heading_change_mean", "heading_change_max",
    "dwell_max_s", "dwell_slow_max_s", "straightness_min",
    "exit_count", "exit_speed_max", "exit_dwell_max_s",
    # pairs
    "pair_min_dist", "approach_rate_max", "contact_share", "separation_rate_max", "flee_speed_diff_max",
    # motion energy
    "flow_mean", "flow_p95_max", "flow_person_mean", "flow_person_max", "flow_person_excess",
    # objects near people
    "bag_present", "bag_near_person", "bag_owner_changes", "bag_speed_max",
    "weapon_present", "weapon_near_person",
    "vehicle_present", "vehicle_near_person", "vehicle_speed_max",
    # tampering
    "brightness_jump_max", "brightness_drop_max", "contrast_drop_max", "blur_drop_max", "hist_jump_max",
    "hist_baseline_max", "people_vanish",
)

_BORDER = 0.06  # share of width/height counted as the border zone
_SLOW = 0.5  # body heights per second: "standing about"
_FAST = 1.5  # body heights per second: running
_STATIC_S = 6.0  # a person track seen this long ...
_STATIC_SPREAD = 0.15  # ... whose centre stayed within this many body heights is a fixture, not a person
_CONTACT = 0.6  # centre distance in body heights counted as contact


def family_of(cls: str) -> Optional[str]:
    name = cls.lower()
    if name == "person":
        return "person"
    for fam, words in FAMILIES.items():
        if any(w in name for w in words):
            return fam
    return None


class _Track:
    __slots__ = ("first_t", "samples", "cls")

    def __init__(self, t: float, cls: str, maxlen: int) -> None:
        self.first_t = t
        self.cls = cls
        self.samples: deque[tuple[float, float, float, float]] = deque(maxlen=maxlen)  # t, cx, cy, h


class ClipFeatures:
    """Accumulates one camera's frames into per-clip feature vectors."""

    def __init__(self, fps: float, flow_width: int = 160, max_tracks: int = 256, max_age_s: float = 3.0,
                 history_s: float = 60.0, flow: bool = True) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.fps = float(fps)
        self.flow_width = int(flow_width)
        self.flow = flow
        self.max_tracks = int(max_tracks)
        self.max_age_s = float(max_age_s)
        self._hist_len = max(4, int(history_s * fps))
        self.tracks: dict[int | str, _Track] = {}
        self.static: set = set()  # person tracks that never moved: fixtures, not people
        self.size: tuple[int, int] = (0, 0)  # w, h of the analysed frames
        self._prev_gray: Optional[np.ndarray] = None
        self._prev_hist: Optional[np.ndarray] = None
        self._prev_bright: Optional[float] = None
        self._prev_people = 0
        self._base_hist: Optional[np.ndarray] = None
        self._base_lap: Optional[float] = None
        self._base_bright: Optional[float] = None
        self._base_contrast: Optional[float] = None
        self._heights: deque[float] = deque(maxlen=200)  # recent person heights, flow-frame pixels
        self._bag_owner: dict[int | str, int | str] = {}
        self._start_clip()

    # ------------------------------------------------------------------ feeding
    def _start_clip(self) -> None:
        self.clip_start: Optional[float] = None
        self.now: float = 0.0
        self.frames = 0
        self.people: list[int] = []
        self.pair_series: dict[tuple, list[tuple[float, float, float, float]]] = {}  # t, dist, speed a, speed b
        self.flow_mean: list[float] = []
        self.flow_p95: list[float] = []
        self.flow_person: list[float] = []
        self.fam_present = {f: 0 for f in FAMILIES}
        self.fam_near = {f: 0 for f in FAMILIES}
        self.bag_owner_changes = 0
        self.bright_jumps: list[float] = []
        self.bright_drop: list[float] = []
        self.contrast_drop: list[float] = []
        self.blur_drop: list[float] = []
        self.hist_jump: list[float] = []
        self.hist_base: list[float] = []
        self.vanish = 0
        self.exits: list[tuple[float, float]] = []  # speed, dwell

    def add(self, frame: Optional[np.ndarray], detections: Sequence[Detection], t: float) -> None:
        """Feed one analysed frame (BGR, may be None when only boxes are known) with its tracked detections."""
        if self.clip_start is None:
            self.clip_start = t
        dt = max(t - self.now, 1e-3) if self.frames else 1.0 / self.fps
        self.now = t
        self.frames += 1
        if frame is not None:
            self.size = (frame.shape[1], frame.shape[0])
        elif self.size == (0, 0) and detections:
            self.size = (int(max(d.xyxy[2] for d in detections)) + 1, int(max(d.xyxy[3] for d in detections)) + 1)
        self._update_tracks(detections, t)
        # "people" that have not moved for STATIC_S seconds are fixtures the detector mistakes for people
        # (a tripod, a bollard, foliage): they are no one's presence, dwell or exit
        persons = [d for d in detections if family_of(d.cls) == "person" and (d.cls, d.track_id) not in self.static]
        self.people.append(len(persons))
        if self._prev_people >= 2 and not persons:
            self.vanish += 1
        self._prev_people = len(persons)
        self._objects(detections, persons, dt)
        self._pairs(persons, t)
        if frame is not None:
            self._frame_signals(frame, persons)

    def _update_static(self, key: tuple, tr: "_Track") -> None:
        s = tr.samples
        if family_of(tr.cls) != "person" or len(s) < 3 or s[-1][0] - s[0][0] < _STATIC_S:
            self.static.discard(key)
            return
        a = np.asarray(s, dtype=np.float64)
        spread = max(np.ptp(a[:, 1]), np.ptp(a[:, 2]))
        if spread < _STATIC_SPREAD * float(np.median(a[:, 3])):
            self.static.add(key)
        else:
            self.static.discard(key)

    def _update_tracks(self, detections: Sequence[Detection], t: float) -> None:
        seen = set()
        for d in detections:
            if d.track_id is None:
                continue
            key = (d.cls, d.track_id)
            seen.add(key)
            tr = self.tracks.get(key)
            if tr is None:
                tr = self.tracks[key] = _Track(t, d.cls, self._hist_len)
            cx, cy = d.center
            tr.samples.append((t, cx, cy, max(d.xyxy[3] - d.xyxy[1], 1.0)))
            self._update_static(key, tr)
        # tracks that ended: exits through the border are one concept's evidence
        w, h = self.size
        for key, tr in list(self.tracks.items()):
            last_t = tr.samples[-1][0] if tr.samples else tr.first_t
            if key in seen:
                continue
            if t - last_t > self.max_age_s:
                del self.tracks[key]
                self.static.discard(key)
                continue
            if key in self.static:
                continue
            if family_of(tr.cls) == "person" and len(tr.samples) >= 2 and last_t == self._prev_t(t) and w and h:
                _, cx, cy, bh = tr.samples[-1]
                if min(cx, w - cx) < _BORDER * w or min(cy, h - cy) < _BORDER * h or cy + bh / 2 > h * (1 - _BORDER):
                    sp = _speeds(list(tr.samples)[-4:])
                    self.exits.append((float(np.max(sp)) if len(sp) else 0.0, last_t - tr.first_t))
        if len(self.tracks) > self.max_tracks:  # cap: drop the tracks seen longest ago
            order = sorted(self.tracks, key=lambda k: self.tracks[k].samples[-1][0] if self.tracks[k].samples else 0)
            for k in order[: len(self.tracks) - self.max_tracks]:
                del self.tracks[k]
                self.static.discard(k)
        self._last_t = t

    def _prev_t(self, t: float) -> float:
        return getattr(self, "_last_t", t)

    def _objects(self, detections: Sequence[Detection], persons: Sequence[Detection], dt: float) -> None:
        for fam in FAMILIES:
            objs = [d for d in detections if family_of(d.cls) == fam]
            if not objs:
                continue
            self.fam_present[fam] += 1
            near = False
            for o in objs:
                ox, oy = o.center
                best, owner = math.inf, None
                for p in persons:
                    px, py = p.center
                    ph = max(p.xyxy[3] - p.xyxy[1], 1.0)
                    dist = math.hypot(ox - px, oy - py) / ph
                    if dist < best:
                        best, owner = dist, p.track_id
                if best < 1.0:
                    near = True
                    if fam == "bag" and o.track_id is not None and owner is not None:
                        prev = self._bag_owner.get(o.track_id)
                        if prev is not None and prev != owner:
                            self.bag_owner_changes += 1
                        self._bag_owner[o.track_id] = owner
            if near:
                self.fam_near[fam] += 1
        if len(self._bag_owner) > self.max_tracks:
            self._bag_owner.clear()

    def _pairs(self, persons: Sequence[Detection], t: float) -> None:
        tracked = [p for p in persons if p.track_id is not None]
        if len(tracked) > 12:  # pairs grow quadratically; the closest people matter
            tracked = tracked[:12]
        for i in range(len(tracked)):
            for j in range(i + 1, len(tracked)):
                a, b = tracked[i], tracked[j]
                ha = max(a.xyxy[3] - a.xyxy[1], 1.0)
                hb = max(b.xyxy[3] - b.xyxy[1], 1.0)
                (ax, ay), (bx, by) = a.center, b.center
                d = math.hypot(ax - bx, ay - by) / (0.5 * (ha + hb))
                key = (min(a.track_id, b.track_id), max(a.track_id, b.track_id))
                self.pair_series.setdefault(key, []).append(
                    (t, d, self._recent_speed((a.cls, a.track_id)), self._recent_speed((b.cls, b.track_id))))

    def _recent_speed(self, key: tuple) -> float:
        tr = self.tracks.get(key)
        if tr is None or len(tr.samples) < 2:
            return 0.0
        sp = _speeds(list(tr.samples)[-3:])
        return float(np.mean(sp)) if len(sp) else 0.0

    def _frame_signals(self, frame: np.ndarray, persons: Sequence[Detection]) -> None:
        h, w = frame.shape[:2]
        scale = self.flow_width / float(w)
        small = cv2.resize(frame, (self.flow_width, max(8, int(round(h * scale)))), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        bright = max(float(gray.mean()) / 255.0, 1e-3)
        contrast = max(float(gray.std()) / 255.0, 1e-3)
        if self._base_bright is not None:
            # drops against the camera's own slow baseline: a dark camera is not a covered one
            self.bright_drop.append(max(0.0, math.log(self._base_bright / bright)))
            self.contrast_drop.append(max(0.0, math.log(self._base_contrast / contrast)))
        if self._prev_bright is not None:
            self.bright_jumps.append(abs(math.log(bright / self._prev_bright)))
        self._prev_bright = bright
        lap = float(cv2.Laplacian(gray, cv2.CV_64F).var())
        if self._base_lap is not None:
            self.blur_drop.append(max(0.0, math.log1p(self._base_lap) - math.log1p(lap)))
        hist = cv2.calcHist([gray], [0], None, [32], [0, 256]).ravel()
        hist = hist / max(hist.sum(), 1.0)
        if self._prev_hist is not None:
            self.hist_jump.append(float(cv2.compareHist(self._prev_hist, hist, cv2.HISTCMP_BHATTACHARYYA)))
        if self._base_hist is not None:
            self.hist_base.append(float(cv2.compareHist(self._base_hist, hist, cv2.HISTCMP_BHATTACHARYYA)))
        for p in persons:  # the camera's typical body height, the unit of every motion feature
            self._heights.append((p.xyxy[3] - p.xyxy[1]) * scale)
        if self.flow and self._prev_gray is not None and self._prev_gray.shape == gray.shape:
            flow = cv2.calcOpticalFlowFarneback(self._prev_gray, gray, None, 0.5, 2, 9, 2, 5, 1.1, 0)
            body = float(np.median(self._heights)) if self._heights else 0.3 * gray.shape[0]
            mag = np.hypot(flow[..., 0], flow[..., 1]) * (self.fps / max(body, 1.0))  # body heights per second
            self.flow_mean.append(float(mag.mean()))
            self.flow_p95.append(float(np.percentile(mag, 95)))
            inside = []
            for p in persons:
                x1, y1, x2, y2 = (int(round(v * scale)) for v in p.xyxy)
                patch = mag[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
                if patch.size:
                    inside.append(float(patch.mean()))
            if inside:
                self.flow_person.append(max(inside))
        self._prev_gray = gray
        self._prev_hist = hist
        # slow baselines of the scene: a covered or defocused lens departs from them
        a = 0.02
        self._base_hist = hist.copy() if self._base_hist is None else (1 - a) * self._base_hist + a * hist
        self._base_lap = lap if self._base_lap is None else (1 - a) * self._base_lap + a * lap
        self._base_bright = bright if self._base_bright is None else (1 - a) * self._base_bright + a * bright
        self._base_contrast = contrast if self._base_contrast is None else (1 - a) * self._base_contrast + a * contrast

    # ------------------------------------------------------------------ reading
    def end_clip(self) -> np.ndarray:
        """The feature vector of the clip fed since the last call, then start the next clip."""
        vec = self._compute()
        self._start_clip()
        return vec

    def _compute(self) -> np.ndarray:
        f: dict[str, float] = {n: 0.0 for n in FEATURE_NAMES}
        n = max(self.frames, 1)
        start = self.clip_start if self.clip_start is not None else self.now
        if self.people:
            people = np.asarray(self.people)
            f["person_share"] = float(np.mean(people >= 1))
            f["pair_share"] = float(np.mean(people >= 2))
        speeds_all, accels_all, track_means, turns = [], [], [], []
        dwell, dwell_slow, straight = 0.0, 0.0, []
        n_tracks = 0
        for key, tr in self.tracks.items():
            if family_of(tr.cls) != "person" or key in self.static:
                continue
            samples = [s for s in tr.samples if s[0] >= start - 1.0 / self.fps]
            if not samples or samples[-1][0] < start:
                continue
            n_tracks += 1
            sp = _speeds(samples)
            age = samples[-1][0] - tr.first_t
            dwell = max(dwell, age)
            if len(sp):
                speeds_all.extend(sp)
                track_means.append(float(np.mean(sp)))
                if float(np.mean(sp)) < _SLOW:
                    dwell_slow = max(dwell_slow, age)
                if len(sp) >= 2:
                    dts = np.diff([s[0] for s in samples])[1:]
                    accels_all.extend(np.abs(np.diff(sp)) / np.maximum(dts, 1e-3))
                turns.append(_heading_change(samples))
            else:
                dwell_slow = max(dwell_slow, age)
            hist = list(tr.samples)
            if hist[-1][0] - hist[0][0] >= 2.0:
                path = float(np.sum(np.hypot(np.diff([s[1] for s in hist]), np.diff([s[2] for s in hist]))))
                net = math.hypot(hist[-1][1] - hist[0][1], hist[-1][2] - hist[0][2])
                straight.append(net / path if path > 1e-6 else 0.0)
        if track_means:
            f["slow_share"] = float(np.mean(np.asarray(track_means) < _SLOW))
            f["fast_share"] = float(np.mean(np.asarray(track_means) > _FAST))
        if speeds_all:
            f["speed_mean"] = float(np.mean(speeds_all))
            f["speed_p95"] = float(np.percentile(speeds_all, 95))
            f["speed_max_track"] = float(max(track_means))
        if accels_all:
            f["accel_p95"] = float(np.percentile(accels_all, 95))
        if turns:
            f["heading_change_mean"] = float(np.mean(turns))
            f["heading_change_max"] = float(np.max(turns))
        f["dwell_max_s"] = dwell
        f["dwell_slow_max_s"] = dwell_slow
        f["straightness_min"] = float(min(straight)) if straight else 1.0
        if self.exits:
            f["exit_count"] = float(min(len(self.exits), 3))  # capped: a crowd leaving is not three crimes
            f["exit_speed_max"] = float(max(e[0] for e in self.exits))
            f["exit_dwell_max_s"] = float(max(e[1] for e in self.exits))
        self._pair_features(f)
        if self.flow_mean:
            f["flow_mean"] = float(np.mean(self.flow_mean))
            f["flow_p95_max"] = float(np.max(self.flow_p95))
        if self.flow_person:
            f["flow_person_mean"] = float(np.mean(self.flow_person))
            f["flow_person_max"] = float(np.max(self.flow_person))
            f["flow_person_excess"] = max(0.0, f["flow_person_mean"] - f["flow_mean"])
        f["bag_present"] = self.fam_present["bag"] / n
        f["bag_near_person"] = self.fam_near["bag"] / n
        f["bag_owner_changes"] = float(self.bag_owner_changes)
        f["weapon_present"] = self.fam_present["weapon"] / n
        f["weapon_near_person"] = self.fam_near["weapon"] / n
        f["vehicle_present"] = self.fam_present["vehicle"] / n
        f["vehicle_near_person"] = self.fam_near["vehicle"] / n
        f["bag_speed_max"] = self._family_speed("bag", start)
        f["vehicle_speed_max"] = self._family_speed("vehicle", start)
        f["brightness_drop_max"] = float(max(self.bright_drop, default=0.0))
        f["contrast_drop_max"] = float(max(self.contrast_drop, default=0.0))
        f["brightness_jump_max"] = float(max(self.bright_jumps, default=0.0))
        f["blur_drop_max"] = float(max(self.blur_drop, default=0.0))
        f["hist_jump_max"] = float(max(self.hist_jump, default=0.0))
        f["hist_baseline_max"] = float(max(self.hist_base, default=0.0))
        f["people_vanish"] = float(self.vanish)
        vec = np.array([f[k] for k in FEATURE_NAMES], dtype=np.float64)
        return np.nan_to_num(vec, nan=0.0, posinf=1e6, neginf=-1e6)

    def _pair_features(self, f: dict[str, float]) -> None:
        if not self.pair_series:
            f["pair_min_dist"] = 10.0  # nobody near anybody
            return
        lag = max(1, int(round(0.5 * self.fps)))  # rates over half a second
        min_d, appr, sep, flee, contact_frames = math.inf, 0.0, 0.0, 0.0, set()
        for series in self.pair_series.values():
            t = np.array([s[0] for s in series])
            d = np.array([s[1] for s in series])
            min_d = min(min_d, float(d.min()))
            touching = d < _CONTACT
            contact_frames.update(np.round(t[touching], 3).tolist())
            if len(d) > lag:
                rate = (d[lag:] - d[:-lag]) / np.maximum(t[lag:] - t[:-lag], 1e-3)
                appr = max(appr, float(-rate.min()))
                if touching.any():
                    first = int(np.argmax(touching))
                    after = rate[max(first - lag, 0):]
                    if after.size:
                        sep = max(sep, float(after.max()))
            if touching.any():
                first = int(np.argmax(touching))
                post = series[first:]
                flee = max(flee, max(abs(s[2] - s[3]) for s in post))
        f["pair_min_dist"] = min(min_d, 10.0)
        f["approach_rate_max"] = appr
        f["separation_rate_max"] = sep
        f["flee_speed_diff_max"] = flee
        f["contact_share"] = len(contact_frames) / max(self.frames, 1)

    def _family_speed(self, fam: str, start: float) -> float:
        """Fastest tracked object of a family in the clip, in frame widths per second."""
        w = self.size[0] or 1
        best = 0.0
        for tr in self.tracks.values():
            if family_of(tr.cls) != fam:
                continue
            s = [x for x in tr.samples if x[0] >= start]
            if len(s) >= 2:
                t = np.array([x[0] for x in s])
                p = np.array([[x[1], x[2]] for x in s])
                v = np.hypot(*np.diff(p, axis=0).T) / np.maximum(np.diff(t), 1e-3) / w
                best = max(best, float(np.median(v)))
        return best


def _speeds(samples: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    """Speeds between consecutive samples in body heights per second."""
    if len(samples) < 2:
        return np.zeros(0)
    a = np.asarray(samples, dtype=np.float64)
    dt = np.maximum(np.diff(a[:, 0]), 1e-3)
    h = np.median(a[:, 3])
    return np.hypot(np.diff(a[:, 1]), np.diff(a[:, 2])) / h / dt


def _heading_change(samples: Sequence[tuple[float, float, float, float]]) -> float:
    """Mean absolute turn (radians per second) between steps that actually move."""
    a = np.asarray(samples, dtype=np.float64)
    if len(a) < 3:
        return 0.0
    step = np.diff(a[:, 1:3], axis=0)
    moving = np.hypot(step[:, 0], step[:, 1]) > 0.02 * np.median(a[:, 3])
    ang = np.arctan2(step[:, 1], step[:, 0])[moving]
    if len(ang) < 2:
        return 0.0
    turn = np.abs((np.diff(ang) + np.pi) % (2 * np.pi) - np.pi)
    duration = max(a[-1, 0] - a[0, 0], 1e-3)
    return float(turn.sum() / duration)
