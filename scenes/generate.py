"""Write a replayable scene dataset: per camera one video, its ground truth, and the manifest.

:func:`generate_dataset` lays out each camera's street (:mod:`.render`), stages
episodes of the indicator concepts on every camera's timeline plus passers-by and
traffic (:mod:`.agents`), renders the frames with OpenCV and writes them as MPEG-4
Part 2 (``mp4v`` in ``.mp4``, which opencv-python both writes and reads back with
exact frame counts), beside ``CAM.gt.json`` (:class:`streamer.dataset.GroundTruth`:
per-clip concept and crimes, per-frame boxes ``[class, x1, y1, x2, y2, track]``
with classes :data:`CLASSES`, and the staged episodes) and ``manifest.json``
(positions in distinct 250 m cells of a downtown-Toronto study area, given as
the manifest's ``grid``, and evening start times; no analysis rate, so the
replay's applies).  Track ids are stable per object within a camera; a person
who goes out of view through the door and comes back keeps the same id.

Determinism: the same arguments give byte-identical ground truth and manifest;
the videos are identical too with the same OpenCV build.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from geo.grid import Grid, GridConfig
from streamer.config import Position
from streamer.dataset import (ClipTruth, DatasetManifest, EpisodeTruth, GroundTruth, VideoEntry,
                              write_ground_truth, write_manifest)
from scenes.agents import Stage, background, schedule
from scenes.render import (BAG, CLASSES, PERSON, VEHICLE, WEAPON, apply_tamper, clip_box,
                                   draw_bag, draw_bicycle, draw_shadow, draw_open_door, draw_person, draw_vehicle, draw_weapon,
                                   make_layout, render_background)

log = logging.getLogger(__name__)

#: demo study area: downtown Toronto (lon/lat), 250 m cells
STUDY_AREA = (-79.405, 43.640, -79.370, 43.662)
CELL_M = 250.0
DEFAULT_START = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)
FOURCC = "mp4v"
EXT = ".mp4"


class SceneError(ValueError):
    """Scene generator arguments that cannot make a dataset."""


def _check(cameras: int, minutes: float, fps: float, size: tuple[int, int], clip_seconds: float) -> tuple[int, int]:
    if cameras < 1:
        raise SceneError(f"--cameras must be at least 1, got {cameras}")
    if not (minutes > 0 and math.isfinite(minutes)):
        raise SceneError(f"--minutes must be a positive number, got {minutes}")
    if not (0 < fps <= 60):
        raise SceneError(f"--fps must be in (0, 60], got {fps}")
    w, h = size
    if w < 160 or h < 90 or w > 3840 or h > 2160:
        raise SceneError(f"--size must be between 160x90 and 3840x2160, got {w}x{h}")
    clip = int(round(clip_seconds * fps))
    if clip < 1:
        raise SceneError(f"--clip-seconds {clip_seconds} is shorter than one frame at {fps} fps")
    n = int(round(minutes * 60 * fps))
    if n < 4 * clip:
        raise SceneError(f"--minutes {minutes} gives {n} frames, fewer than four clips of {clip} frames")
    return n, clip


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360)."""
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise SceneError(f"--size must look like 640x360, got {text!r}") from None


@dataclass(frozen=True)
class CameraLook:
    """What varies between real cameras: mounting (person size), street busyness, light and palette,
    optics and compression. The default is the plain rendering; :meth:`random` draws a camera."""

    person_scale: float = 1.0  # people's size: camera height and zoom
    crowd: float = 1.0  # passer-by rate multiplier
    clutter: int = 0  # static distractors (trees, posts, bollards, bins)
    gain: float = 1.0  # exposure
    gamma: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # white balance per B, G, R
    noise: float = 2.5  # sensor noise, grey levels
    blur: float = 0.0  # optics, Gaussian sigma in pixels
    jpeg: int = 0  # compression quality (0: none beyond the video codec)

    @classmethod
    def random(cls, rng: np.random.Generator) -> "CameraLook":
        return cls(person_scale=float(rng.uniform(0.6, 1.15)), crowd=float(np.exp(rng.uniform(np.log(0.5), np.log(5.0)))),
                   clutter=int(rng.integers(0, 7)), gain=float(rng.uniform(0.55, 1.35)),
                   gamma=float(rng.uniform(0.7, 1.5)), cast=tuple(float(v) for v in rng.uniform(0.85, 1.15, 3)),
                   noise=float(rng.uniform(1.0, 7.0)), blur=float(rng.choice([0.0, 0.0, 0.6, 1.0, 1.4])),
                   jpeg=int(rng.choice([0, 0, 35, 55, 80])))

    def lut(self) -> np.ndarray:
        """(256, 1, 3) lookup table of exposure, gamma and white balance."""
        v = np.arange(256, dtype=np.float64) / 255.0
        cols = [np.clip(255.0 * c * (self.gain * v) ** self.gamma, 0, 255) for c in self.cast]
        return np.stack(cols, axis=1).reshape(256, 1, 3).astype(np.uint8)


def render_frames(S: Stage, bg: np.ndarray, rng: np.random.Generator,
                  look: CameraLook = CameraLook()) -> Iterator[tuple[np.ndarray, list[list[float]]]]:
    """Yield every frame of a staged camera with its ground-truth boxes (no frame-to-frame flicker:
    real cameras hold their exposure)."""
    L = S.layout
    W, H = L.width, L.height
    for p in S.persons:
        p.compile()
    # sensor noise: a few precomputed fields, cycled
    noise_pos = [np.abs(rng.normal(0, look.noise, bg.shape)).astype(np.uint8) for _ in range(5)]
    noise_neg = [np.abs(rng.normal(0, look.noise, bg.shape)).astype(np.uint8) for _ in range(5)]
    lut = look.lut() if look != CameraLook() else None
    bag_held: dict[int, list] = {}
    for f in range(S.n_frames):
        img = bg.copy()
        if S.door_open[f]:
            draw_open_door(img, L)
        items = []
        for p in S.persons:
            pose = p.pose(f)
            if pose is not None:
                items.append((pose.y, 1, p.tid, p, pose))
        for b in S.bags:
            s = b.at(f)
            if s is not None and s[2] == "ground":
                items.append((s[4], 0, b.tid, b, s))
        for v in S.vehicles:
            x = v.x_at(f)
            if x is not None:
                items.append((v.y, 2, v.tid, v, x))
        items.sort(key=lambda t: (t[0], t[1], t[2]))
        drawn = {}
        boxes: list[list[float]] = []
        bag_held.clear()
        for b in S.bags:
            s = b.at(f)
            if s is not None and s[2] == "held":
                bag_held.setdefault(s[3].tid, []).append((b, s[4]))
        weapons = {w.holder.tid: w for w in S.weapons if w.f0 <= f < w.f1}
        bikes = {b.rider.tid: b for b in S.bicycles}
        for _, kind, tid, obj, extra in items:
            if kind == 1:
                bike = bikes.get(tid)
                if bike is not None:  # the bicycle goes under its rider
                    box = draw_bicycle(img, extra.x, extra.y, S.h(extra.y) * obj.look.scale, extra.facing,
                                       bike.colour, extra.phase)
                    boxes.append([VEHICLE, *box, bike.tid])
                hh = S.h(extra.y) * obj.look.scale
                draw_shadow(img, extra.x + 0.06 * hh, extra.y, 0.22 * hh, 0.035 * hh)
                d = draw_person(img, extra, obj.look, S.h(extra.y))
                drawn[tid] = d
                boxes.append([PERSON, *d.box, tid])
                for b, hand in bag_held.get(tid, []):
                    hx, hy = d.hand_front if hand == "front" else d.hand_back
                    boxes.append([BAG, *draw_bag(img, hx, hy, d.height, b.colour, True), b.tid])
                w = weapons.get(tid)
                if w is not None:
                    boxes.append([WEAPON, *draw_weapon(img, d.hand_front, d.forearm_dir, d.height, w.kind), w.tid])
            elif kind == 0:
                _, _, _, x, y = extra
                boxes.append([BAG, *draw_bag(img, x, y, S.h(y), obj.colour, False), tid])
            else:
                direction = 1 if obj.x1 > obj.x0 else -1
                hv = S.h(obj.y)
                draw_shadow(img, extra, obj.y - 0.02 * hv, (1.1 if obj.kind == "car" else 1.25) * hv, 0.06 * hv)
                boxes.append([VEHICLE, *draw_vehicle(img, extra, obj.y, S.h(obj.y), direction, obj.colour, obj.kind), tid])
        for b in S.bags:  # bags pulled between two people: between their front hands
            s = b.at(f)
            if s is not None and s[2] == "tug" and s[3].tid in drawn and s[4].tid in drawn:
                a, c = drawn[s[3].tid], drawn[s[4].tid]
                hx, hy = (a.hand_front[0] + c.hand_front[0]) / 2, (a.hand_front[1] + c.hand_front[1]) / 2
                boxes.append([BAG, *draw_bag(img, hx, hy, a.height, b.colour, True), b.tid])
        for t in S.tampers:
            if t.f0 <= f < t.f1:
                img, boxes = apply_tamper(img, t, f, boxes)
        if lut is not None:
            img = cv2.LUT(img, lut)
        if look.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), look.blur)
        k = (f * 3) % len(noise_pos)
        img = cv2.subtract(cv2.add(img, noise_pos[k]), noise_neg[(k + 2) % len(noise_neg)])
        if look.jpeg:
            img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg])[1], cv2.IMREAD_COLOR)
        out = []
        for b in boxes:
            c = clip_box((b[1], b[2], b[3], b[4]), W, H)
            if c is not None:
                out.append([int(b[0]), *(round(v, 1) for v in c), int(b[5])])
        yield img, out


def _write_camera(task: tuple[Stage, int, int, Path, Path, CameraLook]) -> float:
    """Render one staged camera to its video and ground-truth file; return the seconds it took."""
    S, seed, i, video, gt_path, look = task
    t = time.perf_counter()
    L = S.layout
    fps, clip_frames = S.fps, S.clip_frames
    bg = render_background(L, np.random.default_rng([seed, 4, i]), clutter=look.clutter)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*FOURCC), fps, (L.width, L.height))
    if not writer.isOpened():
        raise SceneError(f"{video}: OpenCV cannot write {FOURCC} video here")
    frames: dict[str, list[list[float]]] = {}
    try:
        for f, (img, boxes) in enumerate(render_frames(S, bg, np.random.default_rng([seed, 5, i]), look)):
            writer.write(img)
            frames[str(f)] = boxes
    finally:
        writer.release()
    clips = [ClipTruth(index=c, start_s=round(c * clip_frames / fps, 6), end_s=round((c + 1) * clip_frames / fps, 6),
                       concept=S.labels[c], crimes=S.crimes[c]) for c in range(S.n_clips)]
    episodes = [EpisodeTruth(kind=e.kind, crimes=list(e.crimes), first_clip=e.phases[0][2], end_clip=e.phases[-1][3],
                             phases=[[p[1], p[2], p[3]] for p in e.phases], actors=e.actors) for e in S.episodes]
    truth = GroundTruth(fps=fps, clip_seconds=clip_frames / fps, classes=list(CLASSES), clips=clips,
                        frames=frames, episodes=episodes)
    write_ground_truth(gt_path, truth)
    return time.perf_counter() - t


def camera_positions(n: int, rng: np.random.Generator) -> tuple[GridConfig, list[Position]]:
    """Cameras in distinct cells of the study area (several cells apart where there is room)."""
    cfg = GridConfig(bbox=STUDY_AREA, cell_size_m=CELL_M)
    grid = Grid.from_config(cfg)
    rows, cols = np.nonzero(grid.mask)
    order = rng.permutation(len(rows))
    chosen: list[int] = []
    for min_gap in (2, 1, 0):
        for k in order:
            if len(chosen) == n:
                break
            if k in chosen:
                continue
            if all(max(abs(rows[k] - rows[c]), abs(cols[k] - cols[c])) >= min_gap for c in chosen):
                chosen.append(int(k))
    if len(chosen) < n:  # more cameras than cells: share cells
        chosen += [int(order[i % len(order)]) for i in range(n - len(chosen))]
    xs, ys = grid.cell_centres()
    out = []
    for k in chosen:
        r, c = rows[k], cols[k]
        x = xs[r, c] + rng.uniform(-0.3, 0.3) * CELL_M
        y = ys[r, c] + rng.uniform(-0.3, 0.3) * CELL_M
        lon, lat = grid.to_lonlat(x, y)
        out.append(Position(lon=round(float(lon), 6), lat=round(float(lat), 6)))
    return cfg, out


def generate_dataset(out: str | Path, cameras: int = 4, minutes: float = 2.0, seed: int = 0, fps: float = 10.0,
                     size: tuple[int, int] = (640, 360), clip_seconds: float = 2.0,
                     start: Optional[datetime] = None, name: Optional[str] = None,
                     progress: bool = False, jobs: int = 1, vary: bool = False) -> Path:
    """Render a scene dataset into ``out`` (created; existing files of the same names are replaced).

    ``jobs`` > 1 renders cameras in that many processes; the output is the same.
    ``vary`` gives every camera its own :meth:`CameraLook.random` (person size,
    crowd, clutter, light, palette, blur, noise, compression), as training data
    for models that must work on real cameras needs; without it every camera
    has the plain look.
    """
    n_frames, clip_frames = _check(cameras, minutes, fps, size, clip_seconds)
    if start is not None and start.tzinfo is None:
        raise SceneError("start time must carry a time zone (e.g. 2026-05-01T21:00:00Z)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    W, H = size
    cam_rngs = [np.random.default_rng([seed, 1, i]) for i in range(cameras)]
    looks = [CameraLook.random(np.random.default_rng([seed, 6, i])) if vary else CameraLook() for i in range(cameras)]
    layouts = [make_layout(r, W, H, lk.person_scale) for r, lk in zip(cam_rngs, looks)]
    stages = [Stage(lay, fps, n_frames, clip_frames, r) for lay, r in zip(layouts, cam_rngs)]
    for S, lk in zip(stages, looks):
        S.crowd = lk.crowd
    schedule(stages, np.random.default_rng([seed, 0]))
    for S in stages:
        background(S)
    grid_cfg, positions = camera_positions(cameras, np.random.default_rng([seed, 2]))
    t0 = (start or DEFAULT_START).astimezone(timezone.utc)
    offsets = np.random.default_rng([seed, 3]).integers(0, 30, cameras)
    cams = [f"cam{i + 1:02d}" for i in range(cameras)]
    tasks = [(S, seed, i, out / f"{cam}{EXT}", out / f"{cam}.gt.json", looks[i])
             for i, (S, cam) in enumerate(zip(stages, cams))]
    if jobs > 1 and cameras > 1:  # cameras are independent once staged: render them in parallel
        with ProcessPoolExecutor(min(jobs, cameras)) as pool:
            done = list(pool.map(_write_camera, tasks))
    else:
        done = [_write_camera(t) for t in tasks]
    if progress:
        for cam, S, secs in zip(cams, stages, done):
            log.info("scene: %s %d frames, %d episodes, %.1f s", cam, n_frames, len(S.episodes), secs)
    entries = [VideoEntry(file=f"{cam}{EXT}", camera_id=cam, position=positions[i],
                          start=t0 + timedelta(seconds=int(offsets[i])), annotations=f"{cam}.gt.json")
               for i, cam in enumerate(cams)]
    manifest = DatasetManifest(name=name or f"scene-seed{seed}", grid=grid_cfg, videos=entries)
    write_manifest(out, manifest)
    return out
