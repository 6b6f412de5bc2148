"""Scene generator figures: generation speed, HOG findability of the drawn people, YOLO export speed.

    .venv/bin/python bench/bench_scene.py [--cameras 4] [--minutes 2] [--seed 1] [--every 5]

Prints one table:

* seconds to generate ``cameras x minutes`` at 10 fps, 640x360 (one process);
* of the sampled frames whose ground truth holds a person, the share in which
  OpenCV's default HOG people detector (``detectMultiScale``, winStride 8,
  scale 1.05, as the worker's no-weights detector uses it) finds at least one
  person, and the per-person recall (a ground-truth person box matched by a HOG
  box with IoU >= 0.3) split by box height;
* the share of HOG boxes that lie on a ground-truth person (precision);
* seconds to export the dataset for YOLO (every 5th frame).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from streamer.dataset import Dataset  # noqa: E402
from scenes import generate_dataset  # noqa: E402
from scenes.yolo_export import export_yolo  # noqa: E402


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def hog_figures(root: Path, every: int) -> dict:
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    ds = Dataset(root)
    frames_with, frames_found, n_dets, n_true = 0, 0, 0, 0
    by_h = {"<100 px": [0, 0], "100-130 px": [0, 0], ">=130 px": [0, 0]}
    t = time.perf_counter()
    n = 0
    for v in ds.videos:
        gt = ds.ground_truth(v)
        cap = cv2.VideoCapture(str(ds.video_path(v)))
        f = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if f % every == 0:
                people = [b[1:5] for b in gt.frames.get(str(f), []) if b[0] == 0]
                if people:
                    rects, _ = hog.detectMultiScale(frame, winStride=(8, 8), padding=(8, 8), scale=1.05)
                    n += 1
                    dets = [(x, y, x + w, y + h) for x, y, w, h in (rects if len(rects) else [])]
                    frames_with += 1
                    frames_found += bool(dets)
                    n_dets += len(dets)
                    n_true += sum(any(iou(p, d) >= 0.3 for p in people) for d in dets)
                    for p in people:
                        hh = p[3] - p[1]
                        key = "<100 px" if hh < 100 else ("100-130 px" if hh < 130 else ">=130 px")
                        by_h[key][0] += 1
                        by_h[key][1] += any(iou(p, d) >= 0.3 for d in dets)
            f += 1
    return dict(frames=frames_with, found=frames_found, by_h=by_h, dets=n_dets, true=n_true, s_per_frame=(time.perf_counter() - t) / max(1, n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--every", type=int, default=5, help="HOG on every n-th frame")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "scene"
        t = time.perf_counter()
        cpu = time.process_time()
        generate_dataset(root, cameras=args.cameras, minutes=args.minutes, seed=args.seed)
        gen_s, gen_cpu = time.perf_counter() - t, time.process_time() - cpu
        n_frames = int(args.cameras * args.minutes * 600)
        size_mb = sum(p.stat().st_size for p in root.iterdir()) / 1e6
        h = hog_figures(root, args.every)
        t = time.perf_counter()
        export_yolo(root, Path(tmp) / "yolo", every_n=5)
        exp_s = time.perf_counter() - t
    rows = [
        ("generate", f"{args.cameras} cams x {args.minutes:g} min, 640x360 @10 fps",
         f"{gen_s:.1f} s wall, {gen_cpu:.1f} s CPU ({n_frames / gen_s:.0f} frames/s), {size_mb:.0f} MB"),
        ("HOG frames", "frames with GT people where HOG finds >= 1",
         f"{h['found']}/{h['frames']} = {h['found'] / max(1, h['frames']):.1%}"),
    ]
    for k, (tot, hit) in h["by_h"].items():
        rows.append(("HOG recall", f"GT person boxes {k} (IoU >= 0.3)", f"{hit}/{tot} = {hit / max(1, tot):.1%}"))
    rows.append(("HOG precision", "HOG boxes on a GT person (IoU >= 0.3)",
                 f"{h['true']}/{h['dets']} = {h['true'] / max(1, h['dets']):.1%}"))
    rows.append(("HOG speed", "detectMultiScale per frame, 1 thread", f"{h['s_per_frame'] * 1000:.0f} ms"))
    rows.append(("YOLO export", "every 5th frame", f"{exp_s:.1f} s"))
    w = max(len(r[1]) for r in rows)
    print(f"{'figure':<13} {'what':<{w}} value")
    for a, b, c in rows:
        print(f"{a:<13} {b:<{w}} {c}")


if __name__ == "__main__":
    main()
