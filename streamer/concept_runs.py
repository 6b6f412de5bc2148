"""Offline concept runs on analysed dataset clips: the engine of ``imminence concepts`` and the benchmarks.

Built on :mod:`streamer.offline` (every clip analysed by the camera worker's own
source, sampling, clip cutting and privacy masks): :func:`clips_for` analyses a
dataset (or reads the same analysis from a feature cache), :func:`label_videos`
re-labels the clips through a worker's concept stage, :func:`evaluate_videos`
scores those labels against the ground truth, and :func:`episode_sequences` /
:func:`classify_episodes` learn and test the per-event-class co-occurrence.
:func:`detectors_config` applies the command-line overrides to a detectors section.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from detectors.config import DetectorsConfig
from streamer.offline import VideoClips, analyse_dataset

log = logging.getLogger(__name__)


def detectors_config(base: Optional[DetectorsConfig], weights: Optional[str], imgsz: int,
                     concepts_model: Optional[str] = None, cooccurrence: Optional[str] = None,
                     held: Optional[str] = None) -> DetectorsConfig:
    """A copy of the detectors section ``base`` (default: :class:`DetectorsConfig`) with command-line overrides."""
    from detectors.config import YOLODetectorConfig

    cfg = base.model_copy(deep=True) if base is not None else DetectorsConfig()
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
    """The concept vocabulary the classifiers label with (:data:`geo.vocabulary.CONCEPTS`)."""
    from geo.vocabulary import CONCEPTS

    return list(CONCEPTS)


def clips_for(dataset: str, cfg: DetectorsConfig, fps: float, max_seconds: Optional[float],
              cache: Optional[str]) -> list[VideoClips]:
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


def label_videos(videos: list[VideoClips], cfg: DetectorsConfig, model: Any, fps: float) -> None:
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


def dataset_clip_seconds(datasets: list[str]) -> float:
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
