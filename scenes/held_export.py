"""Cut person crops labelled with what each person carries, for the held-object classifier.

For every ``every_n``-th annotated frame of a dataset with box ground truth, each
person box is cut the way the serving stage cuts it
(:func:`detectors.held_objects.person_crop`), after a random shift and scale of a
few per cent (a detector's boxes are never the ground truth's), and labelled per
family: ``bag`` when a bag box lies mostly (60 %) inside the crop's window,
``weapon`` when a weapon box does (40 %: an outstretched arm holds it near the edge).
Crops without either are kept with probability ``keep_negative``; one box of a
person's shape at a random place per frame adds background negatives (bollards and
bins that a detector may box as people).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from detectors.held_objects import FAMILIES, crop_window, person_crop
from streamer.dataset import Dataset, DatasetError

_MIN_SHARE = {"bag": 0.6, "weapon": 0.4}


def _share_inside(obj, win) -> float:
    ix = max(0.0, min(obj[2], win[2]) - max(obj[0], win[0]))
    iy = max(0.0, min(obj[3], win[3]) - max(obj[1], win[1]))
    area = max(1e-6, (obj[2] - obj[0]) * (obj[3] - obj[1]))
    return ix * iy / area


def export_held_crops(dataset_dir: str | Path, every_n: int = 3, keep_negative: float = 0.25, jitter: float = 0.06,
                      seed: int = 0, min_height: float = 24.0,
                      progress: Optional[Callable[[str], None]] = None) -> dict[str, np.ndarray]:
    """Crops ``x`` (N x CROP_H x CROP_W x 3, uint8) and labels ``y`` (N x len(FAMILIES)) from one dataset."""
    ds = Dataset(dataset_dir)
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[list[int]] = []
    for entry in ds.videos:
        truth = ds.ground_truth(entry)
        if truth is None:
            continue
        names = list(truth.classes)
        fam_of = {i: n for i, n in enumerate(names) if n in FAMILIES}
        person = names.index("person") if "person" in names else 0
        cap = cv2.VideoCapture(str(ds.video_path(entry)))
        if not cap.isOpened():
            raise DatasetError(f"{ds.video_path(entry)}: OpenCV cannot open the video")
        f = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                boxes = truth.frames.get(str(f), []) if f % every_n == 0 else []
                objs = [(fam_of[int(b[0])], b[1:5]) for b in boxes if int(b[0]) in fam_of]
                for b in boxes:
                    if int(b[0]) != person or b[4] - b[2] < min_height:
                        continue
                    h = b[4] - b[2]
                    dx, dy = rng.normal(0, jitter * h, 2)
                    s = 1 + rng.normal(0, jitter)
                    cx, cy = (b[1] + b[3]) / 2 + dx, (b[2] + b[4]) / 2 + dy
                    hw, hh = (b[3] - b[1]) / 2 * s, h / 2 * s
                    box = (cx - hw, cy - hh, cx + hw, cy + hh)
                    win = crop_window(box)
                    label = [int(any(fam == name and _share_inside(o, win) >= _MIN_SHARE[name] for fam, o in objs))
                             for name in FAMILIES]
                    if not any(label) and rng.random() > keep_negative:
                        continue
                    xs.append(person_crop(frame, box))
                    ys.append(label)
                if boxes:  # one background negative of a person's shape
                    H, W = frame.shape[:2]
                    h = rng.uniform(0.15, 0.5) * H
                    x0, y0 = rng.uniform(0, W - 0.4 * h), rng.uniform(0, H - h)
                    xs.append(person_crop(frame, (x0, y0, x0 + 0.4 * h, y0 + h)))
                    ys.append([0] * len(FAMILIES))
                f += 1
        finally:
            cap.release()
        if progress:
            progress(f"{Path(dataset_dir).name}/{entry.camera_id}: {len(xs)} crops so far")
    if not xs:
        raise DatasetError(f"{dataset_dir}: no annotated person boxes to cut")
    return {"x": np.stack(xs).astype(np.uint8), "y": np.asarray(ys, np.uint8)}
