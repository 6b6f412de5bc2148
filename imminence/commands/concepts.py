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
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from imminence.errors import CommandError
from streamer.offline import VideoClips, analyse_dataset

log = logging.getLogger(__name__)


def detectors_config(config: Optional[str], weights: Optional[str], imgsz: int, concepts_model: Optional[str] = None,
                     cooccurrence: Optional[str] = None, held: Optional[str] = None) -> Any:
    """The detectors section: from an imminence config file if given, with command-line overrides."""
    from detectors.config import DetectorsConfig, YOLODetectorConfig

    if config:
        from imminence.config import load_config

        cfg = load_config(config)[0].detectors.model_copy(deep=True)
    else:
        cfg = DetectorsConfig()
    if weights:
        cfg.detector = YOLODetectorConfig(weights=weights, imgsz=imgsz)
    if held:
        from detectors.config import HeldObjectsConfig

        cfg.held_objects = HeldObjectsConfig(weights=held)
    if concepts_model is not None:
        cfg.concepts.model = concepts_model
    if cooccurrence is not None:
        cfg.gmcp.cooccurrence = cooccurrence
    return cfg


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
    from geo.vocabulary import CONCEPTS

    return list(CONCEPTS)


def clips_for(dataset: str, cfg: Any, fps: float, max_seconds: Optional[float], cache: Optional[str]) -> list[VideoClips]:
    """The dataset's analysed clips: from ``cache`` when the same analysis was cached there, else analysed now."""
    import hashlib

    from detectors.analyzer import detector_id
    from detectors.concepts.features import FEATURE_VERSION
    from streamer.offline import load_clips, save_clips

    root = Path(dataset).resolve()
    path = None
    if cache:
        stamp = (root / "manifest.json").stat().st_mtime if (root / "manifest.json").exists() else 0
        key = f"{root}|{stamp}|{detector_id(cfg)}|{fps}|{max_seconds}|{FEATURE_VERSION}"
        path = Path(cache) / f"{root.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
        if path.exists():
            log.info("%s: clips from the cache %s", dataset, path)
            return load_clips(path)
    no_model = cfg.model_copy(deep=True)
    no_model.concepts.model = None  # features only: labels are (re)computed from them
    videos = analyse_dataset(dataset, no_model, fps=fps, max_seconds=max_seconds)
    if path is not None:
        save_clips(path, videos)
    return videos


def label_videos(videos: list[VideoClips], cfg: Any, model: Any, fps: float) -> None:
    """Label every clip in order through a fresh :class:`detectors.concepts.stage.ConceptStage` per camera,
    exactly as a worker's stage labels them (evidence, abstention, GMCP window)."""
    from detectors.concepts.stage import ConceptStage

    for v in videos:
        stage = ConceptStage(cfg, fps, model=model)
        v.labels, v.methods, v.scores = [], [], []
        for x, det in zip(v.features, v.detected):
            lab = stage.label(np.asarray(x), det)
            v.labels.append(lab.label)
            v.methods.append(lab.method)
            v.scores.append(dict(lab.scores) if lab.scores else {c: float(c == "normal") for c in model.concepts})


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
        cfg = detectors_config(args.config, args.weights, args.imgsz, held=args.held)
        videos = [v for d in args.dataset for v in clips_for(d, cfg, args.fps, args.max_seconds, args.cache)]
        X = np.array([f for v in videos for f in v.features])
        y = [c for v in videos for c in v.truth]
        clip_seconds = _clip_seconds(args.dataset)
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


def _clip_seconds(datasets: list[str]) -> float:
    """The one clip length of the datasets' ground truth (a model is trained on one length)."""
    from streamer.dataset import Dataset, DatasetError

    lengths = set()
    for d in datasets:
        ds = Dataset(d)
        for entry in ds.videos:
            gt = ds.ground_truth(entry)
            if gt is not None:
                lengths.add(float(gt.clip_seconds))
    if len(lengths) != 1:
        raise DatasetError(f"datasets must share one clip length; found {sorted(lengths)}")
    return lengths.pop()


def evaluate_videos(videos: list[VideoClips], concepts: list[str], gmcp: Any = None, lookahead: int = 0) -> dict:
    """Accuracy of the stage's labels (live GMCP path), of the arg-max of the same gated scores and, given the
    ``gmcp`` config section and ``lookahead`` > 0, of offline GMCP labelling with that many future clips.
    Abstained clips count as labelled ``normal`` for every method."""
    from detectors.evaluate import gmcp_labels, score_labels

    index = {c: i for i, c in enumerate(concepts)}
    truth = [index[t] for v in videos for t in v.truth]
    gm = [index[lab] for v in videos for lab in v.labels]
    am = [index["normal"] if m == "abstain" else int(np.argmax([s[c] for c in concepts]))
          for v in videos for s, m in zip(v.scores, v.methods)]
    out = {"gmcp": score_labels("gmcp", truth, gm, concepts), "argmax": score_labels("argmax", truth, am, concepts)}
    if gmcp is not None and gmcp.cooccurrence and lookahead > 0:
        from detectors.concepts.stage import load_cooccurrence

        P, _ = load_cooccurrence(gmcp.cooccurrence, concepts)
        off: list[int] = []
        for v in videos:
            keep = [i for i, m in enumerate(v.methods) if m != "abstain"]
            lab = [index["normal"]] * len(v.methods)
            S = np.array([[v.scores[i][c] for c in concepts] for i in keep])
            if len(S):
                for i, a in zip(keep, gmcp_labels(S, P, gmcp.window, gmcp.time_limit_s, gmcp.solver, gmcp.beta,
                                                  lookahead, gmcp.decay, gmcp.weighting)[0]):
                    lab[i] = a
            off.extend(lab)
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
                               cooccurrence=str(cooc), held=args.held)
        for key in ("beta", "weighting", "decay", "floor"):
            if getattr(args, key) is not None:
                setattr(cfg.gmcp, key, getattr(args, key))
        if args.h:
            cfg.gmcp.window = args.h
        if args.lookahead < 0 or (args.lookahead and args.lookahead >= cfg.gmcp.window):
            raise ValueError(f"--lookahead must be in [0, h={cfg.gmcp.window}), got {args.lookahead}")
        from detectors.analyzer import detector_id

        model.check_analysis(args.fps, _clip_seconds(args.dataset), detector_id(cfg))
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
