"""The four crime-imminence ANFIS systems: training pairs, training, loading and scoring.

Inputs of the system for crime type C (``configs/crime_models.yaml``):

* ``rate``: crimes of type C per ``rate_per_hours`` in the cell (the area's crime
  rate).  Learnt from the training windows of the dataset (windows in which a
  crime of type C was staged, per hour observed), overridable per cell in the
  config; stored in the model file, so scoring uses the same table.
* ``hour``: hour of the window start in the configured time zone (default UTC),
  as a real number in [0, 24).
* one input per configured indicator: the count, in the window, of clips whose
  concept is one of the input's concepts.

Target of a (cell, window) pair, on the study's 0..10 imminence scale: with
``s(w)`` = "a crime of type C was staged in the cell during window w",
``target = max(now * s(w), next * s(w+1), after_next * s(w+2))`` (defaults
10, 7, 3): a crime in progress scores 10, one staged in the next window 7
(above the threshold 5, i.e. *imminent*), two windows ahead 3.

Training pairs come from per-clip ground-truth records (:class:`ClipRecord`:
cell, clip start, concept label, crimes staged in the clip).
:func:`records_from_dataset` reads them from a replayable dataset
(``streamer.dataset``: manifest + per-video ground truth); anything else that
yields ``ClipRecord`` works too (:mod:`inference.synthetic` for tests).
Windows are ``window_s`` long, start every ``slide_s`` (default: tumbling), are
aligned to the Unix epoch, as the service's; pairs exist
for windows in which the cell has at least one clip (the service likewise
scores only windows with events).  The split is chronological: the earliest
``train_share`` of the windows train, the rest check, so no future window
leaks into training through the next-window target.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from inference.anfis import ANFIS, ANFISError
from inference.config import CrimeModelsConfig
from inference.windows import window_starts
from geo.vocabulary import CONCEPTS, CRIME_TYPES, VocabularyError, check_concepts, check_crime_types

log = logging.getLogger(__name__)

MODEL_FILE = "{crime}.json"
MAX_IMMINENCE = 10.0
_MAX_RADIUS = 3.0  # widest clusters tried when the data are too few for the configured radius


class CrimeModelError(ValueError):
    """Unusable training data or model folder."""


@dataclass(frozen=True)
class ClipRecord:
    """Ground truth of one clip: where and when, its concept label and the crimes staged in it."""

    cell_id: str
    clip_start: datetime
    concept: str
    crimes: tuple[str, ...] = ()
    camera_id: str = ""


def records_from_dataset(root: str | Path) -> list[ClipRecord]:
    """Per-clip records of every annotated video of a ``streamer.dataset`` folder.

    The cell of a video is its camera position's cell in the manifest's grid; a
    manifest without a grid puts each camera in a cell named after it.
    """
    from datetime import timedelta

    from geo.grid import Grid
    from streamer.dataset import Dataset

    ds = Dataset(root)
    grid = Grid.from_config(ds.manifest.grid, base_dir=Path(root)) if ds.manifest.grid is not None else None
    out: list[ClipRecord] = []
    for v in ds.videos:
        gt = ds.ground_truth(v)
        if gt is None:
            continue
        if grid is not None:
            p = v.position
            cell = grid.cell_of(lon=p.lon, lat=p.lat, x=p.x, y=p.y)
            if cell is None:
                log.warning("camera %s lies outside the dataset's grid; its clips are not used", v.camera_id)
                continue
        else:
            cell = v.camera_id
        for c in gt.clips:
            out.append(ClipRecord(cell, v.start + timedelta(seconds=c.start_s), c.concept, tuple(c.crimes),
                                  v.camera_id))
    if not out:
        raise CrimeModelError(f"{root}: no annotated clips (videos need ground truth with clips)")
    return out


def hour_of(ts: float, tz: Optional[str] = None) -> float:
    """Hour of the day of a Unix time in time zone ``tz`` (default UTC), in [0, 24)."""
    if tz is None or tz == "UTC":
        return (ts % 86400.0) / 3600.0
    t = datetime.fromtimestamp(ts, ZoneInfo(tz))
    return t.hour + t.minute / 60.0 + t.second / 3600.0


def input_names(cfg_crime_concepts: Mapping[str, Sequence[str]]) -> list[str]:
    return ["rate", "hour", *cfg_crime_concepts]


@dataclass
class CrimePairs:
    """Training and checking pairs of one crime type."""

    crime: str
    input_names: list[str]
    X_train: np.ndarray
    y_train: np.ndarray
    X_check: np.ndarray
    y_check: np.ndarray
    rates: dict[str, float]


@dataclass
class PairSet:
    crimes: dict[str, CrimePairs]
    windows: int
    cells: int
    train_windows: int
    split_at: float = 0.0
    staged: dict[str, int] = field(default_factory=dict)


def build_pairs(records: Iterable[ClipRecord], cfg: CrimeModelsConfig) -> PairSet:
    """(cell, window) input/output pairs per crime type, split chronologically into train / check."""
    W = cfg.window_s
    slide = cfg.slide_s or W
    counts: dict[tuple[str, float], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    staged: dict[str, set[tuple[str, float]]] = {c: set() for c in CRIME_TYPES}
    n = 0
    for r in records:
        if r.concept not in CONCEPTS:
            raise CrimeModelError(f"clip of cell {r.cell_id} at {r.clip_start.isoformat()}: unknown concept {r.concept!r}")
        if r.clip_start.tzinfo is None:
            raise CrimeModelError(f"clip of cell {r.cell_id}: clip_start {r.clip_start} has no time zone")
        for c in r.crimes:
            if c not in staged:
                raise CrimeModelError(f"clip of cell {r.cell_id} at {r.clip_start.isoformat()}: unknown crime {c!r}")
        for ws in window_starts(r.clip_start.timestamp(), W, slide):
            counts[(r.cell_id, ws)][r.concept] += 1
            for c in r.crimes:
                staged[c].add((r.cell_id, ws))
        n += 1
    if n == 0:
        raise CrimeModelError("no clip records: the training set is empty")
    keys = sorted(counts, key=lambda k: (k[1], k[0]))
    starts = sorted({k[1] for k in keys})
    split_at = starts[min(len(starts) - 1, max(1, int(round(len(starts) * cfg.train_share))))]
    # training windows end by the split, checking windows start at it; overlapping ones in between are dropped
    keys = [k for k in keys if k[1] + W <= split_at or k[1] >= split_at]
    is_train = np.array([k[1] < split_at for k in keys])
    if is_train.all() or not is_train.any():
        raise CrimeModelError(f"{len(starts)} window(s) of {W:g} s cannot be split into training and checking "
                              f"sets; record a longer dataset")
    cells = sorted({k[0] for k in keys})
    # hours each cell was observed in the training windows
    obs_hours: dict[str, float] = defaultdict(float)
    for k, t in zip(keys, is_train):
        if t:
            obs_hours[k[0]] += W / 3600.0

    out: dict[str, CrimePairs] = {}
    for crime in CRIME_TYPES:
        spec = cfg.crimes[crime]
        names = input_names(spec.concepts)
        s = staged[crime]
        learnt = defaultdict(int)
        for (cell, ws) in s:
            if ws < split_at:
                learnt[cell] += 1
        rates = {cell: learnt[cell] / obs_hours[cell] * cfg.rate_per_hours if obs_hours[cell] else 0.0 for cell in cells}
        total_h = sum(obs_hours.values())
        rates["default"] = sum(learnt.values()) / total_h * cfg.rate_per_hours if total_h else 0.0
        rates.update(cfg.rates.get(crime, {}))
        X = np.zeros((len(keys), len(names)))
        y = np.zeros(len(keys))
        for j, (cell, ws) in enumerate(keys):
            X[j, 0] = rates.get(cell, rates["default"])
            X[j, 1] = hour_of(ws, cfg.timezone)
            cc = counts[(cell, ws)]
            for i, concepts in enumerate(spec.concepts.values()):
                X[j, 2 + i] = sum(cc.get(c, 0) for c in concepts)
            y[j] = max(cfg.target.now * ((cell, ws) in s), cfg.target.next * ((cell, ws + W) in s),
                       cfg.target.after_next * ((cell, ws + 2 * W) in s))
        out[crime] = CrimePairs(crime, names, X[is_train], y[is_train], X[~is_train], y[~is_train], rates)
    return PairSet(out, len(keys), len(cells), int(is_train.sum()), split_at,
                   {c: len(v) for c, v in staged.items()})


def rates_from_incidents(cells: Sequence[Optional[str]], crime_types: Sequence[str], span_hours: float,
                         all_cells: Sequence[str], rate_per_hours: float = 24.0) -> dict[str, dict[str, float]]:
    """Per-cell crime rates (incidents per ``rate_per_hours``) from historical incident reports.

    ``cells[i]`` / ``crime_types[i]`` are the grid cell (None outside the area) and
    type of incident i over ``span_hours``; ``default`` is the mean over ``all_cells``.
    The result has the shape of ``CrimeModelsConfig.rates``.
    """
    if span_hours <= 0:
        raise CrimeModelError(f"incident span must be positive, got {span_hours} h")
    if not all_cells:
        raise CrimeModelError("the grid has no cells")
    counts: dict[str, dict[str, int]] = {c: defaultdict(int) for c in CRIME_TYPES}
    for cell, crime in zip(cells, crime_types):
        if cell is not None and crime in counts:
            counts[crime][cell] += 1
    scale = rate_per_hours / span_hours
    out = {}
    for crime, per_cell in counts.items():
        rates = {cell: per_cell.get(cell, 0) * scale for cell in all_cells}  # cells without incidents: 0
        rates["default"] = sum(n for cell, n in per_cell.items() if cell in rates) * scale / len(all_cells)
        out[crime] = rates
    return out


# -- the trained systems ------------------------------------------------------------
@dataclass
class CrimeModel:
    """One crime type's ANFIS plus what scoring needs to build its inputs."""

    crime: str
    anfis: ANFIS
    concepts: dict[str, list[str]]
    rates: dict[str, float]
    window_s: float
    timezone: str = "UTC"
    _texts: Optional[list[str]] = field(default=None, repr=False)

    @classmethod
    def from_anfis(cls, m: ANFIS, source: str = "<model>") -> "CrimeModel":
        meta = m.meta or {}
        try:
            crime = meta["crime"]
            concepts = {str(k): [str(c) for c in v] for k, v in meta["concepts"].items()}
            rates = {str(k): float(v) for k, v in meta["rates"].items()}
            window_s = float(meta["window_s"])
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise CrimeModelError(f"{source}: not a crime model (meta field {exc} missing or malformed)") from None
        if m.input_names != input_names(concepts):
            raise CrimeModelError(f"{source}: inputs {m.input_names} do not match meta concepts {list(concepts)}")
        try:  # the file stores its own concept names: they must be the vocabulary's
            check_crime_types([crime], f"{source} (meta crime)")
            for name, cs in concepts.items():
                check_concepts(cs, f"{source} (input {name!r})")
        except VocabularyError as exc:
            raise CrimeModelError(str(exc)) from None
        rates.setdefault("default", 0.0)
        return cls(crime, m, concepts, rates, window_s, str(meta.get("timezone", "UTC")))

    def rule_text(self, r: int) -> str:
        if self._texts is None:
            self._texts = [self.anfis.rule_text(i, consequent=False) for i in range(self.anfis.n_rules)]
        return self._texts[r]

    @property
    def version(self) -> str:
        return str(self.anfis.meta.get("version", "unversioned"))

    def inputs(self, cell_id: str, window_start: float, concept_counts: Mapping[str, int]) -> np.ndarray:
        row = [self.rates.get(cell_id, self.rates["default"]), hour_of(window_start, self.timezone)]
        row += [float(sum(concept_counts.get(c, 0) for c in cs)) for cs in self.concepts.values()]
        return np.asarray(row, dtype=float)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Imminence on the 0..10 scale (the linear consequents can overshoot; clipped)."""
        return np.clip(self.anfis.predict(X), 0.0, MAX_IMMINENCE)


def load_models(folder: str | Path) -> dict[str, CrimeModel]:
    """The four crime models of a folder written by :func:`train_models`; a clear error when one is missing."""
    root = Path(folder)
    if not root.is_dir():
        raise CrimeModelError(f"{root}: model folder does not exist")
    out = {}
    for crime in CRIME_TYPES:
        p = root / MODEL_FILE.format(crime=crime)
        if not p.exists():
            raise CrimeModelError(f"{root}: no model for {crime} ({p.name} missing)")
        try:
            m = CrimeModel.from_anfis(ANFIS.load(p), str(p))
        except ANFISError as exc:
            raise CrimeModelError(str(exc)) from None
        if m.crime != crime:
            raise CrimeModelError(f"{p}: holds the {m.crime} model, expected {crime}")
        out[crime] = m
    return out


def default_models_dir() -> Path:
    """The bundled models (trained on generated data by ``scripts/train_default_models.sh``)."""
    return Path(__file__).resolve().parent / "models"


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def train_models(pairs: PairSet, cfg: CrimeModelsConfig, out: str | Path, *, version: str = "1",
                 source: str = "", progress: bool = False, plots: bool = True) -> dict:
    """Train the four systems, write ``{crime}.json``, ``report.json`` and the PNG plots; return the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"source": source, "windows": pairs.windows, "cells": pairs.cells,
                    "train_windows": pairs.train_windows, "window_s": cfg.window_s,
                    "split_at": datetime.fromtimestamp(pairs.split_at, timezone.utc).isoformat(),
                    "crimes": {}}
    models: dict[str, ANFIS] = {}
    for crime in CRIME_TYPES:
        p = pairs.crimes[crime]
        radius = cfg.crimes[crime].radii or cfg.radii
        m = None
        # widen the clusters until the rule base has fewer parameters than training samples
        while m is None:
            try:
                m = ANFIS(radii=radius, input_names=p.input_names, output_name=f"{crime}_imminence").fit(
                    p.X_train, p.y_train, epochs=cfg.epochs, X_check=p.X_check, y_check=p.y_check,
                    progress=progress)
            except ANFISError as exc:
                if "parameters" not in str(exc) or radius >= _MAX_RADIUS:
                    raise CrimeModelError(f"{crime}: {exc} (even with radius {radius:.2f}); {pairs.windows} "
                                          f"(cell, window) pairs are too few: record longer or more cameras") from None
                radius = min(_MAX_RADIUS, radius * 1.5)
                log.info("%s: %s; retrying with radius %.2f", crime, exc, radius)
        m.meta = {"crime": crime, "concepts": cfg.crimes[crime].concepts, "rates": p.rates,
                  "window_s": cfg.window_s, "timezone": cfg.timezone, "version": f"{crime}-{version}", "trained_on": source,
                  "radius": radius}
        m.save(out / MODEL_FILE.format(crime=crime))
        models[crime] = m
        base = float(p.y_train.mean())
        pred = np.clip(m.predict(p.X_check), 0, MAX_IMMINENCE)
        report["crimes"][crime] = {
            "rules": m.n_rules, "inputs": p.input_names, "radius": radius, "epochs": len(m.history_["train"]),
            "best_epoch": m.best_epoch_, "seconds": round(m.fit_seconds_ or 0.0, 3),
            "train_samples": len(p.y_train), "check_samples": len(p.y_check),
            "train_rmse": _rmse(np.clip(m.predict(p.X_train), 0, MAX_IMMINENCE), p.y_train),
            "check_rmse": _rmse(pred, p.y_check),
            "baseline_check_rmse": _rmse(np.full_like(p.y_check, base), p.y_check),
            "check_positive_share": float(np.mean(p.y_check > 0)),
            "flag_accuracy": float(np.mean((pred > 5) == (p.y_check > 5))),
            "flag_recall": float(np.mean(pred[p.y_check > 5] > 5)) if np.any(p.y_check > 5) else None,
            "flag_precision": float(np.mean(p.y_check[pred > 5] > 5)) if np.any(pred > 5) else None,
            "staged_windows": pairs.staged.get(crime, 0),
        }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    if plots:
        plot_report(models, out)
    return report


def plot_report(models: Mapping[str, ANFIS], out: Path) -> None:
    """error_curves.png (train/check RMSE per epoch) and membership_functions.png (per input)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skfuzzy import gaussmf

    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.2), squeeze=False)
    for ax, (crime, m) in zip(axes[0], models.items()):
        ax.plot(m.history_["train"], label="training")
        ax.plot(m.history_["check"], label="checking")
        if m.best_epoch_ is not None:
            ax.axvline(m.best_epoch_, color="grey", ls=":", label="kept epoch")
        ax.set_title(f"{crime} ({m.n_rules} rules)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("RMSE (imminence)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "error_curves.png", dpi=90)
    plt.close(fig)

    n_in = max(m.n_inputs for m in models.values())
    fig, axes = plt.subplots(len(models), n_in, figsize=(2.3 * n_in, 1.9 * len(models)), squeeze=False)
    for row, (crime, m) in zip(axes, models.items()):
        for i, ax in enumerate(row):
            if i >= m.n_inputs:
                ax.axis("off")
                continue
            xs = np.linspace(-0.1, 1.1, 200)
            for c, s in zip(m.centres[i], m.sigmas[i]):
                ax.plot(xs * m.x_range[i] + m.x_min[i], gaussmf(xs, c, s), lw=0.8)
            ax.set_title(f"{crime}: {m.input_names[i]}", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(out / "membership_functions.png", dpi=80)
    plt.close(fig)


def _num(v: Optional[float]) -> str:
    return f"{v:>6.3f}" if v is not None else f"{'-':>6}"


def format_report(report: dict) -> str:
    """The training report as a plain-text table."""
    head = f"{'crime':<9} {'rules':>5} {'train':>6} {'check':>6} {'rmse_tr':>8} {'rmse_chk':>8} {'baseline':>8} {'flag_acc':>8} {'recall':>6} {'prec':>6} {'s':>6}"
    lines = [head, "-" * len(head)]
    for crime, r in report["crimes"].items():
        lines.append(f"{crime:<9} {r['rules']:>5} {r['train_samples']:>6} {r['check_samples']:>6} "
                     f"{r['train_rmse']:>8.3f} {r['check_rmse']:>8.3f} {r['baseline_check_rmse']:>8.3f} "
                     f"{r['flag_accuracy']:>8.3f} {_num(r['flag_recall'])} {_num(r['flag_precision'])} {r['seconds']:>6.2f}")
    return "\n".join(lines)


def score_rows(models: Mapping[str, CrimeModel], rows: Sequence[tuple[str, float, Mapping[str, int]]],
               top_rules: int = 3) -> list[dict]:
    """Score many (cell, window_start, concept_counts) rows at once (one pass per crime type).

    Returns per row: ``imminence`` and ``inputs`` per crime, and ``top_rules`` per
    crime as (rule text, normalised strength, consequent output), strongest
    first, as :meth:`ANFIS.explain` gives them.  The imminence is the sum of
    strength x output over all rules, clipped to 0..10.
    """
    results: list[dict] = [{"imminence": {}, "inputs": {}, "top_rules": {}} for _ in rows]
    if not rows:
        return results
    for crime, model in models.items():
        X = np.vstack([model.inputs(cell, ws, cc) for cell, ws, cc in rows])
        wbar, outs = model.anfis.strengths(X)
        scores = np.clip((wbar * outs).sum(1), 0.0, MAX_IMMINENCE)
        k = min(top_rules, wbar.shape[1])
        top = np.argsort(-wbar, axis=1, kind="stable")[:, :k] if k else None
        names = model.anfis.input_names
        for j, res in enumerate(results):
            res["imminence"][crime] = float(scores[j])
            res["inputs"][crime] = dict(zip(names, X[j].tolist()))
            if k:
                res["top_rules"][crime] = [(model.rule_text(int(r)), float(wbar[j, r]), float(outs[j, r]))
                                           for r in top[j]]
    return results
