"""The concept stage of one camera: clip features -> concept scores -> evidence -> GMCP label.

:class:`ConceptStage` is what :class:`detectors.analyzer.ClipAnalyzer` drives: it is
fed every analysed frame (``add``) and, at the end of a clip, returns a
:class:`detectors.types.ConceptLabel` (``end_clip``). The order of decisions:

1. **Abstain** (label ``normal``, ``uncertain``, ``method="abstain"``, reason given)
   when the clip had no detections, or when ``concepts.max_outside`` or more of its
   features lie far outside the training clips' range: a model says nothing
   about footage unlike anything it saw. Abstained clips do not enter the GMCP window.
2. **Evidence** (:mod:`detectors.concepts.evidence`): a concept whose evidence the
   clip (or, for ``suspicious_exit``, the camera's last clips' labels) lacks, that the deployment disabled, or that the detector cannot see (no
   weapon class, say) gets score 0; the scores are renormalised over the rest.
3. **GMCP** over the last h clips of the camera, on those scores. It may move the
   newest clip to a concept only if that concept's own score clears
   ``gmcp.floor``; otherwise the clip keeps its arg-max (flagged fallback).

=========================================  ==================================================
situation                                  label
=========================================  ==================================================
``concepts.model`` not configured          no concept stage: ``ClipAnalysis.concept`` is None
model configured, no co-occurrence file    arg-max of the gated scores, ``method="argmax"``
first clip of a camera (window of 1)       arg-max, ``method="argmax-fallback"``, reason given
solver error, time limit, non-optimal      arg-max, ``method="argmax-fallback"``, reason given
=========================================  ==================================================

A configured model or co-occurrence file that is missing, corrupt, built for
another feature definition or vocabulary, or trained at another analysis rate,
clip length or detector is a start-up error (:class:`ConceptModelError`), not a
silent degradation.
"""
from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from detectors.concepts.classifiers import ConceptModel, ConceptModelError
from detectors.concepts.evidence import CONTEXT, context_mask, evidence_mask, unseeable
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
    """Per-camera concept scoring, evidence gating and GMCP labelling (see the module docstring)."""

    def __init__(self, cfg: Any, fps: float, model: Optional[ConceptModel] = None,
                 cooccurrence: Optional[np.ndarray] = None, collect_features: bool = False, *,
                 clip_seconds: Optional[float] = None, detector_id: Optional[str] = None,
                 detector_classes: Optional[Sequence[str]] = None) -> None:
        """``cfg`` is a :class:`detectors.config.DetectorsConfig`; ``model``/``cooccurrence`` override its files.

        ``clip_seconds`` and ``detector_id`` (when given) are checked against what the
        model was trained with; ``detector_classes`` switches off concepts the
        detector cannot see. Without a model, features are computed only when
        ``collect_features`` is set (training).
        """
        self.cfg = cfg
        self.collect_features = collect_features
        if model is None and cfg.concepts.model:
            model = ConceptModel.load(cfg.concepts.model)
        self.model = model
        self.features = ClipFeatures(fps, max_tracks=cfg.tracker.max_tracks, max_age_s=cfg.tracker.max_age_s)
        self.window = None
        self.versions: dict[str, str] = {}
        self.off: dict[str, str] = {}  # concept -> why it can never be chosen here
        if model is None:
            return
        if clip_seconds is not None and detector_id is not None:
            model.check_analysis(fps, clip_seconds, detector_id)
        unknown = sorted(set(cfg.concepts.disabled) - set(model.concepts))
        if unknown:
            raise ConceptModelError(f"concepts.disabled names {unknown}, not concepts of the model {model.concepts}")
        self.off = {c: "disabled in the configuration" for c in cfg.concepts.disabled}
        if detector_classes is not None:
            self.off.update({c: why for c, why in unseeable(model.concepts, detector_classes).items()
                             if c not in self.off})
        if self.off:
            log.info("concepts switched off: %s", "; ".join(f"{c} ({why})" for c, why in sorted(self.off.items())))
        self._on = np.array([c not in self.off for c in model.concepts])
        self._recent: deque[str] = deque(maxlen=max((n for n, _ in CONTEXT.values()), default=1))
        self._normal = model.concepts.index("normal") if "normal" in model.concepts else 0
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
            self.versions["gmcp"] = (f"h={g.window}:{g.weighting}:beta={g.beta}:decay={g.decay}:floor={g.floor}:"
                                     f"{g.solver}")

    @property
    def enabled(self) -> bool:
        return self.model is not None

    def add(self, frame: Optional[np.ndarray], detections: Sequence[Detection], t: float) -> None:
        if self.model is not None or self.collect_features:
            self.features.add(frame, detections, t)

    def gated_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's scores of clip features ``x`` and the same after evidence gating, renormalised."""
        raw = self.model.scores(x)[0]
        ok = evidence_mask(x, self.model.concepts) & self._on & context_mask(self.model.concepts, self._recent)
        g = np.where(ok, raw, 0.0)
        if g.sum() <= 0:  # nothing the clip shows evidence for scored anything: normal
            g = np.zeros_like(raw)
            g[self._normal] = 1.0
        return raw, g / g.sum()

    def end_clip(self, had_detections: bool) -> tuple[Optional[ConceptLabel], np.ndarray]:
        """The clip's label (None without a model) and its feature vector; starts the next clip."""
        x = self.features.end_clip()
        return (self.label(x, had_detections) if self.model is not None else None), x

    def label(self, x: np.ndarray, had_detections: bool) -> ConceptLabel:
        """Label the camera's next clip from its features (offline evaluation replays cached features here)."""
        out = self._label(x, had_detections)
        self._recent.append(out.label)  # the context later clips' evidence may need
        return out

    def _label(self, x: np.ndarray, had_detections: bool) -> ConceptLabel:
        concepts = self.model.concepts
        if not had_detections:
            return self._abstain("no detections in the clip", {})
        outside = self.model.outside(x)
        _, conf = self.gated_scores(x)
        scores = {c: round(float(s), 6) for c, s in zip(concepts, conf)}
        if len(outside) >= self.cfg.concepts.max_outside:
            shown = ", ".join(outside[:6]) + (" ..." if len(outside) > 6 else "")
            return self._abstain(f"{len(outside)} features outside the training range ({shown})", scores)
        best = int(np.argmax(conf))

        def argmax(method: str, reason: Optional[str], window: int = 1) -> ConceptLabel:
            return ConceptLabel(label=concepts[best], score=float(conf[best]), scores=scores,
                                method=method, window=window, fallback_reason=reason)

        if self.window is None:
            return argmax("argmax", None)
        try:
            res = self.window.push(conf)
        except Exception as exc:  # a solver crash must not stop the worker
            log.warning("GMCP failed: %s", exc)
            return argmax("argmax-fallback", f"GMCP error: {type(exc).__name__}: {exc}", len(self.window))
        if res.method == "gmcp" and res.optimal:
            if res.label != best and conf[res.label] < self.cfg.gmcp.floor:
                return argmax("argmax-fallback", f"GMCP chose {concepts[res.label]} at score "
                              f"{conf[res.label]:.3f}, below the floor {self.cfg.gmcp.floor:g}", res.window)
            return ConceptLabel(label=concepts[res.label], score=float(conf[res.label]),
                                scores=scores, method="gmcp", objective=float(res.objective),
                                window=res.window)
        reason = res.fallback_reason or (f"GMCP {res.method}" + ("" if res.optimal else ", not optimal"))
        out = argmax("argmax-fallback", reason, res.window)
        out.objective = float(res.objective) if res.objective is not None and np.isfinite(res.objective) else None
        return out

    def _abstain(self, reason: str, scores: dict[str, float]) -> ConceptLabel:
        return ConceptLabel(label="normal", score=float(scores.get("normal", 0.0)), scores=scores,
                            method="abstain", uncertain=True, fallback_reason=reason)
