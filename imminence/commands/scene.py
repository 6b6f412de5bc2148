"""`imminence scene generate|export-yolo|stats`: render a scene dataset with ground truth, export it for YOLO, summarise it.

    imminence scene generate data/scene --cameras 4 --minutes 2 --seed 1
    imminence scene export-yolo data/scene data/scene-yolo --every-n 5
    imminence scene stats data/scene --png data/scene/transitions.png
"""
from __future__ import annotations

import argparse
import logging
import time
from datetime import datetime

from imminence.errors import USAGE, CommandError

log = logging.getLogger("imminence.scene")


def _generate(args: argparse.Namespace) -> int:
    from scenes.generate import SceneError, generate_dataset, parse_size

    try:
        start = None
        if args.start:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        t = time.perf_counter()
        out = generate_dataset(args.out, cameras=args.cameras, minutes=args.minutes, seed=args.seed, fps=args.fps,
                               size=parse_size(args.size), clip_seconds=args.clip_seconds, start=start,
                               progress=True, jobs=args.jobs, vary=args.vary)
    except (SceneError, ValueError) as exc:
        raise CommandError(str(exc), code=USAGE) from exc
    except OSError as exc:
        raise CommandError(f"{args.out}: {exc}") from exc
    print(f"wrote {out} ({args.cameras} cameras x {args.minutes:g} min) in {time.perf_counter() - t:.1f} s")
    return 0


def _export(args: argparse.Namespace) -> int:
    from streamer.dataset import DatasetError
    from scenes.yolo_export import export_yolo

    try:
        path = export_yolo(args.dataset, args.out, every_n=args.every_n, val_fraction=args.val_fraction)
    except (DatasetError, ValueError) as exc:
        raise CommandError(str(exc), code=USAGE) from exc
    print(f"wrote {path}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from streamer.dataset import DatasetError
    from scenes.stats import dataset_stats, format_stats, write_png

    try:
        s = dataset_stats(args.dataset)
    except DatasetError as exc:
        raise CommandError(str(exc), code=USAGE) from exc
    print(format_stats(s))
    if args.png:
        print(f"wrote {write_png(s, args.png)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scene", help="synthetic scenes with ground truth (generate, export-yolo, stats)",
                              description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="scene_command", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="render a replayable dataset of staged concept episodes")
    g.add_argument("out", help="output dataset folder (created)")
    g.add_argument("--cameras", type=int, default=4)
    g.add_argument("--minutes", type=float, default=2.0, help="recording length per camera")
    g.add_argument("--seed", type=int, default=0, help="same seed, same dataset")
    g.add_argument("--fps", type=float, default=10.0)
    g.add_argument("--size", default="640x360", help="WIDTHxHEIGHT")
    g.add_argument("--clip-seconds", type=float, default=2.0, help="clip length of the ground-truth labels")
    g.add_argument("--jobs", type=int, default=1, help="render cameras in this many processes (same output)")
    g.add_argument("--vary", action="store_true", help="give every camera its own look: person size (camera "
                   "height, zoom), crowd, static clutter, light, palette, blur, noise, compression (training data)")
    g.add_argument("--start", default=None, help="UTC start of the recordings (ISO 8601; default 2026-05-01T21:00Z)")
    g.set_defaults(func=_generate)
    e = sub.add_parser("export-yolo", help="write an ultralytics YOLO dataset from a dataset's frames and boxes")
    e.add_argument("dataset")
    e.add_argument("out")
    e.add_argument("--every-n", type=int, default=5, help="export every n-th frame")
    e.add_argument("--val-fraction", type=float, default=0.2, help="last share of each video that goes to val")
    e.set_defaults(func=_export)
    st = sub.add_parser("stats", help="clips per concept and crime, episodes, boxes, concept transitions")
    st.add_argument("dataset")
    st.add_argument("--png", default=None, help="also draw the transition matrix to this PNG")
    st.set_defaults(func=_stats)
