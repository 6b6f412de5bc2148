"""Concept recognition on held-out generated scenes: arg-max, GMCP live, GMCP with lookahead, episodes.

    .venv/bin/python bench/bench_concepts.py [--work artifacts/bench-concepts] [--config configs/demo.yaml]

Renders (once, cached under ``--work``) three held-out scene datasets whose seeds
were never used for training or tuning (41, 42, 43: 4 varied cameras x 2.5 min
each, at 10, 15 and 8 fps), runs them through the camera worker's own analysis
path with the configuration's detector (features cached), labels every clip with
the committed concept classifier, evidence gating, abstention and GMCP exactly as
a worker does, and prints per seed and pooled: overall and balanced accuracy
(mean per-concept recall) of the arg-max of the gated scores, GMCP live (causal
window, as the worker labels), GMCP offline with two clips of lookahead, the
per-concept recall, and episode (video) classification. Confusion matrices go to
``--work`` as PNG.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo"))

#: held-out seeds (never trained or tuned on; see detectors/models/README.md), fps and frame size
HELDOUT = ((41, 10, "640x360"), (42, 15, "768x432"), (43, 8, "640x360"))


def generate(work: Path, seed: int, fps: float, size: str) -> Path:
    out = work / f"s{seed}"
    if not (out / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "imminence.cli", "scene", "generate", str(out), "--cameras", "4",
                        "--minutes", "2.5", "--seed", str(seed), "--fps", str(fps), "--size", size, "--vary",
                        "--jobs", "2"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(ROOT / "artifacts" / "bench-concepts"))
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    ap.add_argument("--lookahead", type=int, default=2)
    args = ap.parse_args()
    os.chdir(ROOT)
    from detectors.concepts.classifiers import ConceptModel
    from detectors.cooccurrence import load_matrices
    from detectors.evaluate import plot_confusion
    from imminence.config import load_config
    from streamer.concept_runs import (EVENT_PREFIX, classify_episodes, clips_for, detectors_config, evaluate_videos,
                                       label_videos)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cfg = detectors_config(load_config(args.config)[0].detectors, None, 320)
    model = ConceptModel.load(cfg.concepts.model)
    concepts = model.concepts
    fps = model.analysis.fps
    events = {n[len(EVENT_PREFIX):]: np.asarray(m.matrix) for n, m in
              load_matrices(cfg.gmcp.cooccurrence, concepts).items() if n.startswith(EVENT_PREFIX)}
    pooled = []
    rows = []
    for seed, vfps, size in HELDOUT:
        videos = clips_for(str(generate(work, seed, vfps, size)), cfg, fps, None, str(work / "cache"))
        label_videos(videos, cfg, model, fps)
        res = evaluate_videos(videos, concepts, cfg.gmcp, args.lookahead)
        ep = classify_episodes(videos, concepts, events, cfg.gmcp.decay) if events else None
        rows.append((f"seed {seed}", res, ep))
        pooled += videos
    res = evaluate_videos(pooled, concepts, cfg.gmcp, args.lookahead)
    ep = classify_episodes(pooled, concepts, events, cfg.gmcp.decay) if events else None
    rows.append(("pooled", res, ep))
    for name, ms in res.items():
        plot_confusion(ms, concepts, work / f"confusion-{name}.png")
    methods = [f"gmcp+{args.lookahead}"] if args.lookahead else []
    head = ["argmax", "gmcp", *methods]
    print(f"model {model.version}; detector {model.analysis.detector}; GMCP {cfg.gmcp.weighting} beta "
          f"{cfg.gmcp.beta} decay {cfg.gmcp.decay} floor {cfg.gmcp.floor} h {cfg.gmcp.window}")
    print("| held-out | clips | " + " | ".join(f"{m} overall / balanced" for m in head) + " | episodes |")
    print("|---|---|" + "---|" * len(head) + "---|")
    for name, r, e in rows:
        n = int(r["gmcp"].confusion.sum())
        cells = " | ".join(f"{r[m].accuracy:.1%} / {r[m].balanced_accuracy:.1%}" for m in head)
        eps = f"{e['correct']}/{e['episodes']} = {e['accuracy']:.1%}" if e else "-"
        print(f"| {name} | {n} | {cells} | {eps} |")
    print()
    print("| concept (pooled) | clips | " + " | ".join(f"{m} recall" for m in head) + " |")
    print("|---|---|" + "---|" * len(head))
    truth_counts = res["gmcp"].confusion.sum(axis=1)
    for i, c in enumerate(concepts):
        print(f"| {c} | {int(truth_counts[i])} | " + " | ".join(
            f"{res[m].per_concept.get(c, float('nan')):.1%}" for m in head) + " |")
    methods_seen: dict[str, int] = {}
    for v in pooled:
        for m in v.methods:
            methods_seen[m] = methods_seen.get(m, 0) + 1
    print(f"\nlabels by method (pooled): {methods_seen}; confusion PNGs in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
