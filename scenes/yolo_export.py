"""Export a dataset with box ground truth to an ultralytics YOLO dataset.

Layout written::

    OUT/images/{train,val}/CAM_FFFFFF.jpg
    OUT/labels/{train,val}/CAM_FFFFFF.txt    # "class cx cy w h" per box, normalised to [0, 1]
    OUT/data.yaml                            # path, train, val, names

Every ``every_n``-th frame of every annotated video is exported.  The split is
by time, not at random: the last ``val_fraction`` of each video goes to ``val``,
so neighbouring, nearly identical frames never sit on both sides of it.
Frames with no boxes are kept (empty label file) as background examples.
Exporting again into the same folder replaces the earlier images and labels.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import cv2

from streamer.dataset import Dataset, DatasetError

log = logging.getLogger(__name__)


def _yaml_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def export_yolo(dataset_dir: str | Path, out_dir: str | Path, every_n: int = 5, val_fraction: float = 0.2,
                jpeg_quality: int = 92, max_frames: Optional[int] = None) -> Path:
    """Write a YOLO dataset from ``dataset_dir``'s videos and boxes; return the path of ``data.yaml``."""
    if every_n < 1:
        raise ValueError(f"every_n must be at least 1, got {every_n}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ds = Dataset(dataset_dir)
    out = Path(out_dir)
    names: Optional[list[str]] = None
    counts = {"train": 0, "val": 0}
    for split in counts:  # a re-export replaces the images and labels of an earlier one
        for kind, pattern in (("images", "*.jpg"), ("labels", "*.txt")):
            d = out / kind / split
            d.mkdir(parents=True, exist_ok=True)
            for old in d.glob(pattern):
                old.unlink()
        (out / "labels" / f"{split}.cache").unlink(missing_ok=True)  # ultralytics' label cache
    for entry in ds.videos:
        truth = ds.ground_truth(entry)
        if truth is None:
            log.warning("yolo export: %s has no annotations; skipped", entry.camera_id)
            continue
        if names is None:
            names = list(truth.classes)
        elif names != list(truth.classes):
            raise DatasetError(f"{entry.annotations}: classes {truth.classes} differ from the other videos' {names}")
        path = ds.video_path(entry)
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise DatasetError(f"{path}: OpenCV cannot open the video")
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or len(truth.frames)
        val_from = int(n_frames * (1.0 - val_fraction)) if val_fraction > 0 else n_frames
        f = 0
        try:
            while max_frames is None or f < max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                if f % every_n == 0:
                    split = "val" if f >= val_from else "train"
                    h, w = frame.shape[:2]
                    stem = f"{entry.camera_id}_{f:06d}"
                    lines = []
                    for cls, x1, y1, x2, y2, *_ in truth.frames.get(str(f), []):
                        x1, x2 = max(0.0, x1), min(float(w), x2)
                        y1, y2 = max(0.0, y1), min(float(h), y2)
                        if x2 - x1 < 1 or y2 - y1 < 1:
                            continue
                        lines.append(f"{int(cls)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                                     f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
                    cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), frame,
                                [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                    (out / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
                    counts[split] += 1
                f += 1
        finally:
            cap.release()
    if names is None:
        raise DatasetError(f"{dataset_dir}: no video has annotations to export")
    yaml_path = out / "data.yaml"
    yaml_path.write_text(
        f"path: {_yaml_str(str(out.resolve()))}\ntrain: images/train\nval: images/val\n"
        f"nc: {len(names)}\nnames:\n" + "".join(f"  {i}: {_yaml_str(n)}\n" for i, n in enumerate(names)))
    log.info("yolo export: %d train and %d val images in %s", counts["train"], counts["val"], out)
    return yaml_path
