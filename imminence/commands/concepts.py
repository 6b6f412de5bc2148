"""`imminence concepts train|evaluate`: concept classifiers and co-occurrence from labelled clips.

    imminence concepts train DATASET --out artifacts/concepts [--weights detectors/models/scene-yolov8n-416.pt]
    imminence concepts evaluate HELDOUT --model artifacts/concepts/concepts.json \\
        --cooccurrence artifacts/concepts/cooccurrence.json [--out artifacts/concepts/eval]

Both read one or more replayable datasets with ground truth (``streamer.dataset``)
and run each camera through the camera worker's own path
(:func:`streamer.offline.analyse_dataset`: the same decoding, sampling at the
analysis rate ``--fps``, clip cutting, detector, tracker, features, and for
``evaluate`` the concept scores, evidence gating and GMCP window).

``train`` fits the gradient-boosted concept classifier on the clip features
(recording the analysis rate, clip length and detector it was trained with) and learns
the co-occurrence matrix P(b | a) from the ground-truth label sequences (``default``),
plus one matrix per event class (``event:<kind>``) from the clips of the staged
episodes of that kind; it writes ``concepts.json`` and ``cooccurrence.json``
(plain JSON, no pickle).
``evaluate`` prints per-concept and average accuracy of the GMCP labels against
the per-clip arg-max on those (held-out) clips, offline GMCP labelling with
``--lookahead`` future clips (``gmcp+D``), and, when the file has per-class matrices
and the dataset staged episodes, the event class of each episode by
:func:`detectors.gmcp.classify_video`; it writes the confusion matrices as PNG and
the figures as ``evaluation.json``.

This module only parses arguments, prints and writes results: the engine (dataset
analysis and its feature cache, labelling, evaluation, episode classification) is
:mod:`streamer.concept_runs`, which the benchmarks and tests use as well.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from imminence.errors import CommandError
from streamer.concept_runs import (EVENT_PREFIX, classify_episodes, clips_for, concept_vocabulary,
                                   dataset_clip_seconds, detectors_config, episode_sequences, evaluate_videos,
                                   label_videos)


def _detectors_config(config: Optional[str], weights: Optional[str], imgsz: int, concepts_model: Optional[str] = None,
                      cooccurrence: Optional[str] = None, held: Optional[str] = None) -> Any:
    """The detectors section: from an imminence config file if given, with command-line overrides."""
    base = None
    if config:
        from imminence.config import load_config

        base = load_config(config)[0].detectors
    return detectors_config(base, weights, imgsz, concepts_model=concepts_model, cooccurrence=cooccurrence,
                            held=held)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("concepts", help="crime-indicator concept classifiers: train and evaluate",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="concepts_command", metavar="ACTION", required=True)
    for name, func, helptext in (("train", run_train, "train the concept classifier and co-occurrence"),
                                 ("evaluate", run_evaluate, "GMCP vs arg-max accuracy on held-out clips")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("dataset", nargs="+", help="dataset folder(s) with ground truth (manifest.json)")
        s.add_argument("--config", default=None, help="imminence YAML whose detectors section to use")
        s.add_argument("--weights", default=None, help="YOLO weights (overrides the config's detector)")
        s.add_argument("--imgsz", type=int, default=320, help="YOLO input size with --weights (default 320)")
        s.add_argument("--held", default=None, help="held-object weights (bag/weapon on person crops; "
                       "overrides the config's detectors.held_objects)")
        s.add_argument("--fps", type=float, default=5.0, help="analysis rate, as the cameras and replay use it "
                       "(default 5; a dataset's manifest rate wins)")
        s.add_argument("--max-seconds", type=float, default=None, help="analyse only the first S seconds per video")
        s.add_argument("--cache", default=None, help="folder caching analysed clip features per dataset, detector "
                       "and rate (analysis is the slow part; labels are always recomputed)")
        s.add_argument("--out", default=None, help="output folder (train: artifacts/concepts; "
                                                    "evaluate: beside the model)")
        s.set_defaults(func=func)
        if name == "train":
            s.add_argument("--window", type=int, default=8, help="GMCP window h the co-occurrence counts (default 8)")
            s.add_argument("--seed", type=int, default=0, help="random seed of the boosting")
        else:
            s.add_argument("--model", required=True, help="concepts.json written by `concepts train`")
            s.add_argument("--cooccurrence", default=None,
                           help="cooccurrence.json (default: beside --model)")
            s.add_argument("--h", type=int, default=None, help="GMCP window (default: the config's, 8)")
            s.add_argument("--beta", type=float, default=None,
                           help="GMCP co-occurrence weight (default: the config's)")
            s.add_argument("--weighting", choices=("log", "lift", "product"), default=None,
                           help="GMCP edge weights (default: the config's)")
            s.add_argument("--decay", type=float, default=None,
                           help="GMCP per-clip distance decay (default: the config's)")
            s.add_argument("--floor", type=float, default=None,
                           help="GMCP score floor (default: the config's)")
            s.add_argument("--lookahead", type=int, default=2,
                           help="also label each clip offline once the next D clips are in (the study's offline "
                                "labelling; live it would cost D clip lengths of latency); 0 = skip (default 2)")


def run_train(args: argparse.Namespace) -> int:
    from detectors.analyzer import detector_id
    from detectors.concepts.classifiers import ConceptModelError, train_concept_model
    from detectors.concepts.evidence import share_with_evidence
    from detectors.cooccurrence import learn_cooccurrence, learn_per_class, save_matrices
    from detectors.yolo import DetectorError
    from streamer.dataset import DatasetError

    out = Path(args.out or "artifacts/concepts")
    concepts = concept_vocabulary()
    try:
        cfg = _detectors_config(args.config, args.weights, args.imgsz, held=args.held)
        videos = [v for d in args.dataset for v in clips_for(d, cfg, args.fps, args.max_seconds, args.cache)]
        X = np.array([f for v in videos for f in v.features])
        y = [c for v in videos for c in v.truth]
        clip_seconds = dataset_clip_seconds(args.dataset)
        model = train_concept_model(
            X, y, concepts, seed=args.seed,
            analysis={"fps": args.fps, "clip_seconds": clip_seconds, "detector": detector_id(cfg)},
            meta={"datasets": [str(d) for d in args.dataset]})
        cooc = learn_cooccurrence([v.truth for v in videos], concepts, window=max(2, args.window))
    except (ConceptModelError, DatasetError, DetectorError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "concepts.json")
    per_class = learn_per_class(episode_sequences(videos), concepts, window=max(2, args.window))
    save_matrices(out / "cooccurrence.json", {"default": cooc} | {EVENT_PREFIX + k: m for k, m in per_class.items()})
    counts = {c: y.count(c) for c in concepts if y.count(c)}
    print(f"trained on {len(y)} clips from {len(videos)} videos ({model.spec.trained_on['rounds']} boosting rounds): "
          f"{counts}")
    gate = share_with_evidence(X, y)
    print("share of training clips whose features show their concept's evidence: "
          + ", ".join(f"{c} {v:.0%}" for c, v in gate.items()))
    print(f"wrote {out / 'concepts.json'} and {out / 'cooccurrence.json'}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from detectors.concepts.classifiers import ConceptModel, ConceptModelError
    from detectors.evaluate import format_table, plot_confusion
    from detectors.yolo import DetectorError
    from streamer.dataset import DatasetError

    model_path = Path(args.model)
    cooc = Path(args.cooccurrence) if args.cooccurrence else model_path.with_name("cooccurrence.json")
    out = Path(args.out) if args.out else model_path.parent / "evaluation"
    try:
        model = ConceptModel.load(model_path)
        cfg = _detectors_config(args.config, args.weights, args.imgsz, concepts_model=str(model_path),
                               cooccurrence=str(cooc), held=args.held)
        for key in ("beta", "weighting", "decay", "floor"):
            if getattr(args, key) is not None:
                setattr(cfg.gmcp, key, getattr(args, key))
        if args.h:
            cfg.gmcp.window = args.h
        if args.lookahead < 0 or (args.lookahead and args.lookahead >= cfg.gmcp.window):
            raise ValueError(f"--lookahead must be in [0, h={cfg.gmcp.window}), got {args.lookahead}")
        from detectors.analyzer import detector_id

        model.check_analysis(args.fps, dataset_clip_seconds(args.dataset), detector_id(cfg))
        videos = [v for d in args.dataset for v in clips_for(d, cfg, args.fps, args.max_seconds, args.cache)]
        label_videos(videos, cfg, model, args.fps)
    except (ConceptModelError, DatasetError, DetectorError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    results = evaluate_videos(videos, model.concepts, cfg.gmcp, args.lookahead)
    methods: dict[str, int] = {}
    for v in videos:
        for m in v.methods:
            methods[m or "none"] = methods.get(m or "none", 0) + 1
    print(f"held-out clips: {sum(len(v.truth) for v in videos)} from {len(videos)} videos; "
          f"GMCP window h={cfg.gmcp.window}, {cfg.gmcp.weighting}, beta={cfg.gmcp.beta}, decay={cfg.gmcp.decay}, "
          f"floor={cfg.gmcp.floor}; labels by method: {methods}")
    print("gmcp = live (causal: each clip labelled as the newest of its window, as the worker does)"
          + (f"; gmcp+{args.lookahead} = offline, each clip labelled once the next {args.lookahead} clips are in"
             if args.lookahead else ""))
    print(format_table(results, model.concepts))
    out.mkdir(parents=True, exist_ok=True)
    for name, ms in results.items():
        print(f"confusion matrix ({name}): {plot_confusion(ms, model.concepts, out / f'confusion-{name}.png')}")
    video = None
    from detectors.cooccurrence import load_matrices

    events = {n[len(EVENT_PREFIX):]: np.asarray(m.matrix) for n, m in load_matrices(cooc, model.concepts).items()
              if n.startswith(EVENT_PREFIX)}
    if events and any(v.episodes for v in videos):
        video = classify_episodes(videos, model.concepts, events, cfg.gmcp.decay)
        print(f"episode (video) classification, one co-occurrence matrix per event class: {video['correct']}/"
              f"{video['episodes']} = {video['accuracy']:.1%} (chance {1 / video['classes']:.1%}); "
              f"per class {video['per_class']}")
    summary = {"methods": methods, "h": cfg.gmcp.window, "beta": cfg.gmcp.beta, "gmcp_config": cfg.gmcp.model_dump(),
               "lookahead": args.lookahead, "video_classification": video}
    (out / "evaluation.json").write_text(json.dumps({k: v.to_dict() for k, v in results.items()} | summary, indent=1))
    return 0
