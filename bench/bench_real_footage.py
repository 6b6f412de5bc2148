"""False alarms on real footage: the shipped configuration on ``../shared/data/vtest.avi`` and variants.

    .venv/bin/python bench/bench_real_footage.py [--config configs/demo.yaml] [--video ../shared/data/vtest.avi]

OpenCV's plaza recording (people walking across a plaza, no crime) and its
resized, re-encoded, mirrored, dimmed and empty (no people) copies
(:mod:`streamer.variants`) go through the camera worker's own path
(:func:`streamer.offline.analyse_file`) with the detectors section of each
configuration given (default: ``configs/demo.yaml``, the shipped YOLO and concept
classifier; ``--config`` may be repeated, e.g. with an OpenCV configuration).
Prints one row per configuration and variant: clips, share labelled a crime
indicator (anything but normal and loitering; aim at most 5 %), share carrying a
label rather than abstaining (aim at least 90 % where there are people), and the
labels seen.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo"))
VTEST = ROOT.parent / "shared" / "data" / "vtest.avi"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", default=None, help="imminence YAML (repeatable)")
    ap.add_argument("--video", default=str(VTEST))
    ap.add_argument("--max-frames", type=int, default=None)
    args = ap.parse_args()
    if not Path(args.video).exists():
        print(f"{args.video} not found: nothing to measure")
        return 0
    from imminence.config import load_config
    from streamer.config import CameraConfig
    from streamer.offline import analyse_file
    from streamer.variants import VARIANTS, make_variants, quiet_summary

    os.chdir(ROOT)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = make_variants(args.video, tmp, max_frames=args.max_frames)
        for config in args.config or ["configs/demo.yaml"]:
            det = load_config(config)[0].detectors
            name = f"{Path(config).name} ({det.detector.type})"
            for var in VARIANTS:
                cam = CameraConfig(id="plaza", source=str(variants[var]), position={"x": 0.0, "y": 0.0},
                                   fps=5.0, clip_seconds=2.0)
                clips = analyse_file(variants[var], cam, det)
                labels = [c.analysis.concept.label if c.analysis.concept else "none" for c in clips]
                methods = [c.analysis.concept.method if c.analysis.concept else "none" for c in clips]
                s = quiet_summary(labels, methods)
                seen = Counter(f"{lab}{'?' if m == 'abstain' else ''}" for lab, m in zip(labels, methods))
                rows.append((name, var, s["clips"], s["indicator_share"], s["labelled_share"],
                             ", ".join(f"{k} {v}" for k, v in seen.most_common())))
                print(f"  {name} {var}: {rows[-1][2:]}", file=sys.stderr)
    print("| configuration | variant | clips | crime-indicator clips | labelled (not abstained) | labels (? = abstained) |")
    print("|---|---|---|---|---|---|")
    for name, var, n, ind, lab, seen in rows:
        print(f"| {name} | {var} | {n} | {ind:.1%} | {lab:.1%} | {seen} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
