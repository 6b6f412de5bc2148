"""The concept stage of one camera: clip features -> concept scores -> GMCP label, with flagged fallbacks.

:class:`ConceptStage` is what :class:`detectors.analyzer.ClipAnalyzer` drives: it is
fed every analysed frame (``add``) and, at the end of a clip, returns a
:class:`detectors.types.ConceptLabel` (``end_clip``). Labelling, and what happens
when it cannot be done as intended (the worker never stops for these):

=========================================  ==================================================
situation                                  label
=========================================  ==================================================
``concepts.model`` not configured          no concept stage: ``ClipAnalysis.concept`` is None
model configured, no co-occurrence file    arg-max of the scores, ``method="argmax"``
first clip of a camera (window of 1)       arg-max, ``method="argmax-fallback"``, reason given
fewer clips than h so far                  GMCP over the clips there are, ``window`` < h
clip with no detections at all             arg-max, ``method="argmax-fallback"``; the clip is
                                           not added to the GMCP window (no evidence to link)
solver error, time limit, non-optimal      arg-max, ``method="argmax-fallback"``, reason given
=========================================  ==================================================

A configured model or co-occurrence file that is missing, corrupt, or built for
another feature definition or vocabulary is a start-up error
(:class:`ConceptModelError`), not a silent degradation.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from detectors.concepts.classifiers import ConceptModel, ConceptModelError
from detectors.concepts.features import ClipFeatures
from detectors.types import ConceptLabel, Detection

log = logging.getLogger(__name__)


def load_cooccurrence(path: str | Path, concepts: Sequence[str], name: str = "default") -> tuple[np.ndarray, str]:
    """The matrix called ``name`` (or the only one) of a co-occurrence file, checked against ``concepts``."""
    from detectors.cooccurrence import load_matrices

    try:
        mats = load_matrices(path, concepts=list(concepts))
    except ValueError as exc:
        raise ConceptModelError(f"co-occurrence file: {exc}") from None
    if not mats:
        raise ConceptModelError(f"co-occurrence file {str(path)!r} holds no matrices")
    key = name if name in mats else next(iter(mats))
    return np.asarray(mats[key].matrix, dtype=float), key


class ConceptStage:
    """Per-camera concept scoring and GMCP labelling (see the module table for fallbacks)."""

    def __init__(self, cfg: Any, fps: float, model: Optional[ConceptModel] = None,
                 cooccurrence: Optional[np.ndarray] = None, collect_features: bool = False) -> None:
        """``cfg`` is a :class:`detectors.config.DetectorsConfig`; ``model``/``cooccurrence`` override its files.

        Without a model, features are computed only when ``collect_features`` is set (training).
        """
        self.cfg = cfg
        self.collect_features = collect_features
        if model is None and cfg.concepts.model:
            model = ConceptModel.load(cfg.concepts.model)
        self.model = model
        self.features = ClipFeatures(fps, max_tracks=cfg.tracker.max_tracks, max_age_s=cfg.tracker.max_age_s)
        self.window = None
        self.versions: dict[str, str] = {}
        if model is None:
            return
        self.versions["concepts"] = model.version
        if cooccurrence is None and cfg.gmcp.cooccurrence:
            cooccurrence, name = load_cooccurrence(cfg.gmcp.cooccurrence, model.concepts)
            self.versions["cooccurrence"] = f"{Path(cfg.gmcp.cooccurrence).name}:{name}"
        if cooccurrence is not None:
            from detectors.gmcp import GMCPWindow

            P = np.asarray(cooccurrence, dtype=float)
            if P.shape != (len(model.concepts), len(model.concepts)):
                raise ConceptModelError(f"co-occurrence matrix of shape {P.shape} does not fit the "
                                        f"{len(model.concepts)} concepts of the model")
            g = cfg.gmcp
            self.window = GMCPWindow(P, h=g.window, weighting=g.weighting, beta=g.beta, decay=g.decay,
                                     time_limit=g.time_limit_s, solver=g.solver)
            self.versions["gmcp"] = f"h={g.window}:{g.weighting}:beta={g.beta}:decay={g.decay}:{g.solver}"

    @property
    def enabled(self) -> bool:
        return self.model is not None

    def add(self, frame: Optional[np.ndarray], detections: Sequence[Detection], t: float) -> None:
        if self.model is not None or self.collect_features:
            self.features.add(frame, detections, t)

    def end_clip(self, had_detections: bool) -> tuple[Optional[ConceptLabel], np.ndarray]:
        """The clip's label (None without a model) and its feature vector; starts the next clip."""
        x = self.features.end_clip()
        if self.model is None:
            return None, x
        conf = self.model.scores(x)[0]
        scores = {c: float(s) for c, s in zip(self.model.concepts, conf)}
        best = int(np.argmax(conf))

        def argmax(method: str, reason: Optional[str], window: int = 1) -> ConceptLabel:
            return ConceptLabel(label=self.model.concepts[best], score=float(conf[best]), scores=scores,
                                method=method, window=window, fallback_reason=reason)

        if self.window is None:
            return argmax("argmax", None), x
        if not had_detections:
            return argmax("argmax-fallback", "no detections in the clip: not added to the GMCP window"), x
        try:
            res = self.window.push(conf)
        except Exception as exc:  # a solver crash must not stop the worker
            log.warning("GMCP failed: %s", exc)
            return argmax("argmax-fallback", f"GMCP error: {type(exc).__name__}: {exc}", len(self.window)), x
        if res.method == "gmcp" and res.optimal:
            return ConceptLabel(label=self.model.concepts[res.label], score=float(conf[res.label]),
                                scores=scores, method="gmcp", objective=float(res.objective),
                                window=res.window), x
        reason = res.fallback_reason or (f"GMCP {res.method}" + ("" if res.optimal else ", not optimal"))
        out = argmax("argmax-fallback", reason, res.window)
        out.objective = float(res.objective) if res.objective is not None and np.isfinite(res.objective) else None
        return out, x
