"""Transformed copies of a recording, for checking that analysis does not hinge on one camera's look.

:func:`make_variants` writes, beside each other, the recording as it is and as
other cameras would deliver the same scene: resized (another resolution and
aspect), re-encoded at low quality (compression artefacts), mirrored, dimmed
(evening light), and the scene with nobody in it (the per-pixel median of the
recording, i.e. its static background, with sensor noise). Real footage of a
quiet place must stay quiet in every one of them; :func:`quiet_summary` says how
quiet the labels of their clips are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np

from geo.vocabulary import QUIET_CONCEPTS  # a label of a quiet scene may be one of these

VARIANTS = ("original", "resized", "reencoded", "mirrored", "dimmed", "no_people")


def _read(path: Path, max_frames: Optional[int]) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise ValueError(f"{path}: no frame decoded")
    return frames, float(fps)


def _write(path: Path, frames: Iterable[np.ndarray], fps: float, fourcc: str = "mp4v") -> Path:
    frames = list(frames)
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not wr.isOpened():
        raise ValueError(f"{path}: OpenCV cannot write {fourcc}")
    for f in frames:
        wr.write(f)
    wr.release()
    return path


def make_variants(src: str | Path, out_dir: str | Path, *, max_frames: Optional[int] = None,
                  names: Iterable[str] = VARIANTS) -> dict[str, Path]:
    """Write the variants of ``src`` named in ``names`` into ``out_dir``; name -> video path."""
    src, out = Path(src), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames, fps = _read(src, max_frames)
    rng = np.random.default_rng(0)
    made: dict[str, Path] = {}
    for name in names:
        path = out / f"{src.stem}-{name}.mp4"
        if name == "original":
            seq = frames
        elif name == "resized":
            seq = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames]
        elif name == "reencoded":  # heavy JPEG artefacts on every frame, then the video codec again
            seq = [cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 25])[1], cv2.IMREAD_COLOR)
                   for f in frames]
        elif name == "mirrored":
            seq = [cv2.flip(f, 1) for f in frames]
        elif name == "dimmed":
            seq = [cv2.convertScaleAbs(f, alpha=0.45, beta=0) for f in frames]
        elif name == "no_people":
            bg = np.median(np.stack(frames[:: max(1, len(frames) // 40)]), axis=0).astype(np.uint8)
            seq = [cv2.add(bg, rng.integers(0, 4, bg.shape, dtype=np.uint8)) for _ in frames]
        else:
            raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        made[name] = _write(path, seq, fps)
    return made


def quiet_summary(labels: list[str], methods: list[str]) -> dict[str, float]:
    """Clips, share labelled a crime indicator (not normal/loitering), share carrying a label (not abstained)."""
    n = len(labels)
    if n == 0:
        return {"clips": 0, "indicator_share": 0.0, "labelled_share": 0.0}
    indicators = sum(lab not in QUIET_CONCEPTS for lab in labels)
    labelled = sum(m != "abstain" for m in methods)
    return {"clips": n, "indicator_share": indicators / n, "labelled_share": labelled / n}
