"""`imminence concepts train|evaluate`: concept classifiers and co-occurrence from labelled clips.

    imminence concepts train DATASET --out artifacts/concepts [--weights detectors/models/scene-yolov8n-320.pt]
    imminence concepts evaluate HELDOUT --model artifacts/concepts/concepts.json \\
        --cooccurrence artifacts/concepts/cooccurrence.json [--out artifacts/concepts/eval]

Both read a replayable dataset with ground truth (``streamer.dataset``), decode
every video with OpenCV at its analysis rate, and run each camera through a
:class:`detectors.analyzer.ClipAnalyzer` exactly as a worker does (detector,
per-camera tracker, clip features, and for ``evaluate`` the concept scores and
the GMCP window). Clips are cut every ``clip_seconds`` of the ground truth.

``train`` fits one binary classifier per concept on the clip features and learns
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
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class VideoClips:
    """One camera's clips: features, truth, and (when a model ran) labels and scores."""

    camera_id: str
    features: list[np.ndarray] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)
    labels: list[Optional[str]] = field(default_factory=list)
    methods: list[Optional[str]] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # clip index (in the ground truth) of each kept clip
    episodes: list[tuple[str, int, int]] = field(default_factory=list)  # staged incidents: kind, first, end clip
    frames: int = 0
    seconds: float = 0.0


def detectors_config(config: Optional[str], weights: Optional[str], imgsz: int, concepts_model: Optional[str] = None,
                     cooccurrence: Optional[str] = None) -> Any:
    """The detectors section: from an imminence config file if given, with command-line overrides."""
    from detectors.config import DetectorsConfig, YOLODetectorConfig

    if config:
        from imminence.config import load_config

        cfg = load_config(config)[0].detectors.model_copy(deep=True)
    else:
        cfg = DetectorsConfig()
    if weights:
        cfg.detector = YOLODetectorConfig(weights=weights, imgsz=imgsz)
    if concepts_model is not None:
        cfg.concepts.model = concepts_model
    if cooccurrence is not None:
        cfg.gmcp.cooccurrence = cooccurrence
    return cfg


def analyse_dataset(root: str | Path, cfg: Any, *, max_seconds: Optional[float] = None,
                    progress: bool = True, detector_factory: Optional[Callable[[], Any]] = None) -> list[VideoClips]:
    """Run every video of a dataset through a ClipAnalyzer per camera; one VideoClips per video."""
    import cv2
    from tqdm import tqdm

    from detectors.analyzer import ClipAnalyzer
    from streamer.dataset import Dataset, DatasetError

    ds = Dataset(root)
    out: list[VideoClips] = []
    for entry in ds.videos:
        gt = ds.ground_truth(entry)
        if gt is None or not gt.clips:
            raise DatasetError(f"{ds.root}: video {entry.file!r} has no ground-truth clips to learn from")
        truth_by_index = {c.index: c.concept for c in gt.clips}
        cap = cv2.VideoCapture(str(ds.video_path(entry)))
        if not cap.isOpened():
            raise DatasetError(f"{ds.video_path(entry)}: OpenCV cannot open the video")
        vfps = cap.get(cv2.CAP_PROP_FPS) or gt.fps
        afps = min(entry.fps or vfps, vfps)
        step = vfps / afps
        n_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        analyzer = ClipAnalyzer(cfg, entry.camera_id, afps,
                                detector=detector_factory() if detector_factory else None)
        analyzer.concepts.collect_features = True
        vc = VideoClips(camera_id=entry.camera_id,
                        episodes=[(e.kind, e.first_clip, e.end_clip) for e in gt.episodes])
        clip_index, next_sample, i = 0, 0.0, 0
        bar = tqdm(total=n_total, desc=entry.camera_id, unit="frame", disable=not progress, leave=False)

        def close_clip(index: int) -> None:
            ca = analyzer.end_clip(index)
            if ca.frames == 0 or index not in truth_by_index:
                return
            vc.features.append(analyzer.last_features)
            vc.truth.append(truth_by_index[index])
            vc.indices.append(index)
            vc.labels.append(ca.concept.label if ca.concept else None)
            vc.methods.append(ca.concept.method if ca.concept else None)
            vc.scores.append(dict(ca.concept.scores) if ca.concept else {})

        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t = i / vfps
            if max_seconds is not None and t >= max_seconds:
                break
            idx = int(t // gt.clip_seconds)
            if idx != clip_index:
                close_clip(clip_index)
                clip_index = idx
            if i >= next_sample - 1e-6:
                analyzer.process(frame, i, t)
                vc.frames += 1
                next_sample += step
            i += 1
            bar.update(1)
        bar.close()
        cap.release()
        close_clip(clip_index)
        vc.seconds = i / vfps
        out.append(vc)
        log.info("%s: %d clips from %d analysed frames", entry.camera_id, len(vc.truth), vc.frames)
    return out


EVENT_PREFIX = "event:"  # co-occurrence matrices per event class are stored as "event:<kind>"
VIDEO_BETA = 1.0  # GMCP weight for video classification (weighting "log"), chosen on validation seed 5


def episode_clips(v: VideoClips, first: int, end: int) -> list[int]:
    """Positions in ``v``'s clip lists of the clips with ground-truth index in [first, end)."""
    return [i for i, idx in enumerate(v.indices) if first <= idx < end]


def episode_sequences(videos: list[VideoClips]) -> dict[str, list[list[str]]]:
    """Ground-truth concept sequence of every staged episode, grouped by the episode's kind."""
    out: dict[str, list[list[str]]] = {}
    for v in videos:
        for kind, first, end in v.episodes:
            seq = [v.truth[i] for i in episode_clips(v, first, end)]
            if len(seq) >= 2:
                out.setdefault(kind, []).append(seq)
    return out


def classify_episodes(videos: list[VideoClips], concepts: list[str], matrices: dict[str, np.ndarray],
                      decay: float) -> dict:
    """Event class of every held-out episode by :func:`detectors.gmcp.classify_video` (one matrix per class)."""
    from detectors.gmcp import classify_video

    truth, pred = [], []
    for v in videos:
        for kind, first, end in v.episodes:
            pos = episode_clips(v, first, end)
            if len(pos) < 2:
                continue
            S = np.array([[v.scores[i][c] for c in concepts] for i in pos])
            truth.append(kind)
            pred.append(classify_video(S, matrices, weighting="log", beta=VIDEO_BETA, decay=decay)[0])
    right = sum(t == p for t, p in zip(truth, pred))
    per = {k: f"{sum(t == p for t, p in zip(truth, pred) if t == k)}/{truth.count(k)}" for k in sorted(set(truth))}
    return {"episodes": len(truth), "correct": right, "accuracy": right / len(truth) if truth else 0.0,
            "classes": len(matrices), "per_class": per}


def concept_vocabulary() -> list[str]:
    from streamer.schemas import CONCEPTS

    return list(CONCEPTS)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("concepts", help="crime-indicator concept classifiers: train and evaluate",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="concepts_command", metavar="ACTION", required=True)
    for name, func, helptext in (("train", run_train, "train per-concept classifiers and co-occurrence"),
                                 ("evaluate", run_evaluate, "GMCP vs arg-max accuracy on held-out clips")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("dataset", help="dataset folder with ground truth (manifest.json)")
        s.add_argument("--config", default=None, help="imminence YAML whose detectors section to use")
        s.add_argument("--weights", default=None, help="YOLO weights (overrides the config's detector)")
        s.add_argument("--imgsz", type=int, default=320, help="YOLO input size with --weights (default 320)")
        s.add_argument("--max-seconds", type=float, default=None, help="analyse only the first S seconds per video")
        s.add_argument("--out", default=None, help="output folder (train: artifacts/concepts; "
                                                    "evaluate: beside the model)")
        s.set_defaults(func=func)
        if name == "train":
            s.add_argument("--window", type=int, default=8, help="GMCP window h the co-occurrence counts (default 8)")
            s.add_argument("--C", type=float, default=0.5, help="inverse L2 strength of the classifiers")
            s.add_argument("--link", choices=("sigmoid", "softmax"), default="sigmoid",
                           help="one-vs-rest binary classifiers (sigmoid, default) or one multinomial model")
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
            s.add_argument("--lookahead", type=int, default=2,
                           help="also label each clip offline once the next D clips are in (the study's offline "
                                "labelling; live it would cost D clip lengths of latency); 0 = skip (default 2)")


def _fail(cmd: str, exc: Exception) -> int:
    print(f"imminence concepts {cmd}: {exc}", file=sys.stderr)
    return 1


def run_train(args: argparse.Namespace) -> int:
    from detectors.concepts.classifiers import ConceptModelError, train_concept_model
    from detectors.cooccurrence import learn_cooccurrence, learn_per_class, save_matrices
    from detectors.yolo import DetectorError
    from streamer.dataset import DatasetError

    out = Path(args.out or "artifacts/concepts")
    concepts = concept_vocabulary()
    try:
        cfg = detectors_config(args.config, args.weights, args.imgsz)
        cfg.concepts.model = None  # training needs features only
        videos = analyse_dataset(args.dataset, cfg, max_seconds=args.max_seconds)
        X = np.array([f for v in videos for f in v.features])
        y = [c for v in videos for c in v.truth]
        model = train_concept_model(X, y, concepts, C=args.C, link=args.link,
                                    meta={"dataset": str(args.dataset), "detector": cfg.detector.type})
        cooc = learn_cooccurrence([v.truth for v in videos], concepts, window=max(2, args.window))
    except (ConceptModelError, DatasetError, DetectorError, ValueError) as exc:
        return _fail("train", exc)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "concepts.json")
    per_class = learn_per_class(episode_sequences(videos), concepts, window=max(2, args.window))
    save_matrices(out / "cooccurrence.json", {"default": cooc} | {EVENT_PREFIX + k: m for k, m in per_class.items()})
    counts = {c: y.count(c) for c in concepts if y.count(c)}
    print(f"trained on {len(y)} clips from {len(videos)} videos: {counts}")
    print(f"wrote {out / 'concepts.json'} and {out / 'cooccurrence.json'}")
    return 0


def evaluate_videos(videos: list[VideoClips], concepts: list[str], gmcp: Any = None, lookahead: int = 0) -> dict:
    """Accuracy of the analyzer's labels (live GMCP path), of the per-clip arg-max and, given the
    ``gmcp`` config section and ``lookahead`` > 0, of offline GMCP labelling with that many future clips."""
    from detectors.evaluate import gmcp_labels, score_labels

    index = {c: i for i, c in enumerate(concepts)}
    truth = [index[t] for v in videos for t in v.truth]
    gm = [index[lab] for v in videos for lab in v.labels]
    am = [int(np.argmax([s[c] for c in concepts])) for v in videos for s in v.scores]
    out = {"gmcp": score_labels("gmcp", truth, gm, concepts), "argmax": score_labels("argmax", truth, am, concepts)}
    if gmcp is not None and gmcp.cooccurrence and lookahead > 0:
        from detectors.concepts.stage import load_cooccurrence

        P, _ = load_cooccurrence(gmcp.cooccurrence, concepts)
        off: list[int] = []
        for v in videos:
            S = np.array([[s[c] for c in concepts] for s in v.scores])
            if len(S):
                off.extend(gmcp_labels(S, P, gmcp.window, gmcp.time_limit_s, gmcp.solver, gmcp.beta, lookahead,
                                       gmcp.decay, gmcp.weighting)[0])
        name = f"gmcp+{lookahead}"
        out[name] = score_labels(name, truth, off, concepts)
    return out


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
        cfg = detectors_config(args.config, args.weights, args.imgsz, concepts_model=str(model_path),
                               cooccurrence=str(cooc))
        if args.h:
            cfg.gmcp.window = args.h
        if args.beta is not None:
            cfg.gmcp.beta = args.beta
        if args.weighting is not None:
            cfg.gmcp.weighting = args.weighting
        if args.decay is not None:
            cfg.gmcp.decay = args.decay
        if args.lookahead < 0 or (args.lookahead and args.lookahead >= cfg.gmcp.window):
            raise ValueError(f"--lookahead must be in [0, h={cfg.gmcp.window}), got {args.lookahead}")
        videos = analyse_dataset(args.dataset, cfg, max_seconds=args.max_seconds)
    except (ConceptModelError, DatasetError, DetectorError, ValueError) as exc:
        return _fail("evaluate", exc)
    results = evaluate_videos(videos, model.concepts, cfg.gmcp, args.lookahead)
    methods: dict[str, int] = {}
    for v in videos:
        for m in v.methods:
            methods[m or "none"] = methods.get(m or "none", 0) + 1
    print(f"held-out clips: {sum(len(v.truth) for v in videos)} from {len(videos)} videos; "
          f"GMCP window h={cfg.gmcp.window}, {cfg.gmcp.weighting}, beta={cfg.gmcp.beta}, decay={cfg.gmcp.decay}; "
          f"labels by method: {methods}")
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
