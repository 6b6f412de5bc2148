"""Fit, apply, save and load the CNN-LSTM forecaster.

Training walks blocks of consecutive target days: one step runs the CNN once
over the block's T + K - 1 input days and the LSTMs over the whole block, then
scores the K windows of T days (each predicting the day after it).  So an
epoch costs about two CNN passes per training day rather than T.  Loss:
BCE(hotspot) + lambda * MSE(count) over the cells inside the city and every
target.  The last ``val_days`` before the cutoff are held out; the epoch with
the least validation loss is kept.  Seeds fix numpy and torch; on CPU the
result is bitwise repeatable with the same thread count.

Checkpoints are plain dicts of tensors and primitives, written with
``torch.save`` and read with ``torch.load(weights_only=True)``; they carry the
grid id, the types and the feature names, and refuse another grid.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mapping.forecast.data import CellFeatures, DailyMaps
from mapping.forecast.model import CNNLSTMForecaster, ModelConfig

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


class ForecastError(ValueError):
    """A forecast request that cannot be served (wrong grid, dates outside the data...)."""


@dataclass
class TrainConfig:
    """Training settings (stored in checkpoints)."""

    epochs: int = 4
    block: int = 48               # target days per step
    lr: float = 3e-3
    weight_decay: float = 1e-4
    lam: float = 0.1              # weight of the count MSE against the hotspot BCE
    seed: int = 0
    width: float = 0.25           # CNN channel multiplier (1.0 = the design's 32..256)
    history: int = 30             # T
    lstm: tuple[int, int] = (500, 500)
    lstm3_max: int = 1024
    dropout: float = 0.2
    warmup_days: int = 365        # first training target: the long-run rate needs history
    val_days: int = 90            # last days before the cutoff, held out to pick the epoch
    max_steps: Optional[int] = 15     # steps (random blocks of days) per epoch; None = every block
    threads: Optional[int] = None
    device: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Forecaster:
    """A trained network plus everything needed to apply it to the same grid."""

    model: CNNLSTMForecaster
    grid_id: str
    types: tuple[str, ...]
    targets: tuple[str, ...]
    feature_names: list[str]
    premises_kinds: tuple[str, ...]
    trained_until: str            # first day NOT used for training (YYYY-MM-DD)
    train_config: TrainConfig
    history_log: dict = field(default_factory=dict)

    # -- inputs ---------------------------------------------------------------------------
    def _check(self, maps: DailyMaps) -> None:
        if maps.grid_id != self.grid_id:
            raise ForecastError(f"checkpoint is for grid {self.grid_id}, but the data is on grid {maps.grid_id} "
                                f"(different area, cell size or origin); train a forecast for this grid")
        if tuple(maps.types) != self.types:
            raise ForecastError(f"checkpoint predicts types {self.types}, data has {maps.types}")
        if tuple(maps.premises_kinds) != self.premises_kinds:
            raise ForecastError(f"checkpoint expects premises kinds {self.premises_kinds}, data has {maps.premises_kinds}")

    @torch.no_grad()
    def predict(self, maps: DailyMaps, days: np.ndarray, *, block: int = 32,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """P(hotspot) and expected counts for day indices ``days`` (``len(maps.days)`` = the next day).

        Returns two arrays (n, K, H, W) over targets (types + all), 0 outside the city.
        Each day is predicted from the ``history`` days before it.
        """
        self._check(maps)
        t = self.model.cfg.history
        days = np.asarray(days, dtype=np.int64)
        if days.size and days.min() < t:
            raise ForecastError(f"a forecast needs {t} days of history; first day asked is day {days.min()}")
        if days.size and days.max() > len(maps.days):
            raise ForecastError("cannot forecast beyond the day after the data")
        dev = next(self.model.parameters()).device
        self.model.eval()
        feats = CellFeatures(maps)
        x = np.log1p(maps.counts)
        n_t = len(self.targets)
        h, w = maps.mask.shape
        probs = np.zeros((len(days), n_t, h, w), dtype=np.float32)
        counts = np.zeros_like(probs)
        # contiguous runs of days share one pass over their inputs
        order = np.argsort(days)
        runs = np.split(order, np.flatnonzero(np.diff(days[order]) != 1) + 1)
        chunks = [r[i:i + block] for r in runs for i in range(0, len(r), block)]
        for ch in tqdm(chunks, desc="predict", disable=not progress, leave=False):
            s, e = int(days[ch[0]]), int(days[ch[-1]]) + 1
            inp = torch.from_numpy(x[s - t:e - 1]).to(dev)[None]
            f = torch.from_numpy(feats.days(np.arange(s, e))).to(dev)[None]
            logit, cnt = self.model(inp, f)
            p = torch.sigmoid(logit[0]).cpu().numpy()       # (K_days, targets, N)
            c = cnt[0].cpu().numpy()
            for j, idx in enumerate(ch):
                probs[idx][:, maps.mask] = p[j]
                counts[idx][:, maps.mask] = c[j]
        return probs, counts

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg = self.model.cfg.to_dict()
        cfg["lstm"] = list(cfg["lstm"])
        tcfg = self.train_config.to_dict()
        tcfg["lstm"] = list(tcfg["lstm"])
        torch.save({"version": CHECKPOINT_VERSION, "state_dict": self.model.state_dict(),
                    "model_config": cfg, "train_config": tcfg, "grid_id": self.grid_id,
                    "types": list(self.types), "targets": list(self.targets),
                    "feature_names": list(self.feature_names), "premises_kinds": list(self.premises_kinds),
                    "trained_until": self.trained_until,
                    "history": {k: [float(v) for v in vs] for k, vs in self.history_log.items()}}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, grid_id: Optional[str] = None, device: str = "cpu") -> "Forecaster":
        try:
            ck = torch.load(Path(path), map_location=pick_device(device), weights_only=True)
        except FileNotFoundError:
            raise ForecastError(f"{path}: no such checkpoint") from None
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
            raise ForecastError(f"{path}: not a forecast checkpoint ({type(exc).__name__}: {exc})") from None
        if not isinstance(ck, dict) or ck.get("version") != CHECKPOINT_VERSION:
            raise ForecastError(f"{path}: not a forecast checkpoint of version {CHECKPOINT_VERSION}")
        if grid_id is not None and ck["grid_id"] != grid_id:
            raise ForecastError(f"{path}: checkpoint is for grid {ck['grid_id']}, this grid is {grid_id} "
                                f"(different area, cell size or origin); train a forecast for this grid")
        mc = dict(ck["model_config"])
        mc["lstm"] = tuple(mc["lstm"])
        model = CNNLSTMForecaster(ModelConfig(**mc))
        model.load_state_dict(ck["state_dict"])
        model.to(pick_device(device)).eval()
        tc = dict(ck["train_config"])
        tc["lstm"] = tuple(tc["lstm"])
        return cls(model, ck["grid_id"], tuple(ck["types"]), tuple(ck["targets"]), list(ck["feature_names"]),
                   tuple(ck["premises_kinds"]), ck["trained_until"], TrainConfig(**tc), dict(ck.get("history", {})))


def _loss(logit: torch.Tensor, cnt: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    bce = nn.functional.binary_cross_entropy_with_logits(logit, (y > 0).float())
    return bce + lam * nn.functional.mse_loss(cnt, y)


def fit(maps: DailyMaps, train_end: int, cfg: TrainConfig = TrainConfig(), *, progress: bool = True,
        curve_png: str | Path | None = None) -> Forecaster:
    """Train on target days ``[warmup, train_end)``; days >= ``train_end`` are never read."""
    t = cfg.history
    first = max(cfg.warmup_days, t)
    val_start = train_end - cfg.val_days
    if val_start - first < cfg.block:
        raise ForecastError(f"too little training data: {train_end} days before the cutoff, need at least "
                            f"{first + cfg.val_days + cfg.block} (warm-up {cfg.warmup_days}, validation {cfg.val_days})")
    if cfg.threads:
        # small models train faster on one thread; the setting is process-wide, so put it back after
        before = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            return fit(maps, train_end, replace(cfg, threads=None), progress=progress, curve_png=curve_png)
        finally:
            torch.set_num_threads(before)
    seed_everything(cfg.seed)
    dev = pick_device(cfg.device)
    # only the past enters: slice everything at the cutoff before building any input
    past = DailyMaps(maps.counts[:train_end], maps.days[:train_end], maps.types, maps.mask, maps.grid_id,
                     maps.premises, maps.premises_kinds)
    feats = CellFeatures(past)
    x = torch.from_numpy(np.log1p(past.counts))
    y_all = torch.from_numpy(past.target_counts()[:, :, past.mask].copy())       # (D, K, N)
    mcfg = ModelConfig(in_channels=len(maps.types), rows=maps.mask.shape[0], cols=maps.mask.shape[1],
                       n_features=feats.n_features, n_targets=len(past.targets), n_cells=int(maps.mask.sum()),
                       history=t, width=cfg.width, lstm=tuple(cfg.lstm), lstm3_max=cfg.lstm3_max,
                       dropout=cfg.dropout, rate_index=feats.rate_index)
    model = CNNLSTMForecaster(mcfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)

    def batch(s: int, e: int):
        inp = x[s - t:e - 1].to(dev)[None]
        f = torch.from_numpy(feats.days(np.arange(s, e))).to(dev)[None]
        return inp, f, y_all[s:e].to(dev)[None]

    def val_loss() -> float:
        model.eval()
        tot, n = 0.0, 0
        with torch.no_grad():
            for s in range(val_start, train_end, cfg.block):
                e = min(s + cfg.block, train_end)
                inp, f, y = batch(s, e)
                logit, cnt = model(inp, f)
                tot += float(_loss(logit, cnt, y, cfg.lam)) * (e - s)
                n += e - s
        return tot / n

    hist: dict[str, list[float]] = {"step_loss": [], "val_loss": [], "epoch_s": []}
    best = (val_loss(), {k: v.detach().clone() for k, v in model.state_dict().items()}, 0)
    hist["val_loss"].append(best[0])
    log.info("forecast: %d training days, %d validation days, %d cells, %d features, device %s",
             val_start - first, cfg.val_days, mcfg.n_cells, mcfg.n_features, dev)
    for ep in range(1, cfg.epochs + 1):
        model.train()
        offset = int(rng.integers(0, cfg.block))
        starts = np.arange(first + offset, val_start - 1, cfg.block)
        rng.shuffle(starts)
        if cfg.max_steps:
            starts = starts[:cfg.max_steps]
        t0 = time.perf_counter()
        bar = tqdm(starts, desc=f"epoch {ep}/{cfg.epochs}", disable=not progress, leave=False)
        for s in bar:
            e = min(int(s) + cfg.block, val_start)
            inp, f, y = batch(int(s), e)
            logit, cnt = model(inp, f)
            loss = _loss(logit, cnt, y, cfg.lam)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            hist["step_loss"].append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.4f}")
        hist["epoch_s"].append(time.perf_counter() - t0)
        v = val_loss()
        hist["val_loss"].append(v)
        log.info("epoch %d: %.1f s, train loss %.4f, validation loss %.4f", ep, hist["epoch_s"][-1],
                 float(np.mean(hist["step_loss"][-len(starts):])), v)
        if v < best[0]:
            best = (v, {k: vv.detach().clone() for k, vv in model.state_dict().items()}, ep)
    model.load_state_dict(best[1])
    model.eval()
    hist["best_epoch"] = [best[2]]
    fc = Forecaster(model, maps.grid_id, tuple(maps.types), tuple(past.targets), feats.names,
                    tuple(maps.premises_kinds), str(maps.days[train_end]) if train_end < len(maps.days)
                    else str(maps.days[-1] + 1), cfg, hist)
    if curve_png:
        training_curve(hist, curve_png)
    return fc


def training_curve(hist: dict, path: str | Path) -> Path:
    """Training loss per step and validation loss per epoch, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = hist.get("step_loss", [])
    ax.plot(np.arange(1, len(steps) + 1), steps, lw=0.8, label="training loss (per step)")
    vl = hist.get("val_loss", [])
    if vl and steps:
        per = max(1, math.ceil(len(steps) / max(1, len(vl) - 1)))
        ax.plot([i * per for i in range(len(vl))], vl, "o-", label="validation loss (per epoch)")
    ax.set_xlabel("step")
    ax.set_ylabel("BCE + lambda * MSE")
    ax.set_title("CNN-LSTM forecast training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
