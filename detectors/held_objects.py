"""What each tracked person carries: a secondary classifier on person crops (bag, weapon).

A nano detector at 416 px cannot find a knife three pixels wide or a bag of ten,
and training it to do so is out of reach on two CPU cores.  The video-analytics
answer (DeepStream's secondary GIEs, Frigate's sub-labels) is a second, small model
that runs only on the primary detector's person boxes: it sees each person at a fixed,
larger scale, so small held objects cover many of its input pixels.

:class:`HeldObjectNet` is a small CNN with one sigmoid output per object family
(``bag``, ``weapon``) over a crop of :data:`CROP_W` x :data:`CROP_H` pixels taken
around a person box by :func:`person_crop` (widened, since an outstretched arm holds
the object outside the torso's box).  :class:`HeldObjectStage` runs it on the
tracked people of each analysed frame and turns its decisions into ordinary
:class:`~detectors.types.Detection` objects of class ``bag`` / ``weapon`` at the
person's hand height, so the clip features (objects near people, a bag changing its
nearest person) read them as they read any detector's boxes.  A decision needs the
score to clear the family's threshold on ``persist`` of the last ``window`` frames
of that person's track, which keeps a single odd frame from becoming a weapon.

Bag identities follow the object, not the person: when a person loses a bag and
another person within reach gains one within ``handover_s``, the bag keeps its id,
so a bag changing hands shows up as a change of its nearest person.

The weights file (``torch.save`` of a dict with ``state_dict``, ``families``,
``crop`` and ``thresholds``; loaded with ``weights_only=True``) is written by
:func:`train_held_objects` from crops :mod:`scenes.held_export` cuts from rendered
scenes with ground truth.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from detectors.types import Detection

CROP_W, CROP_H = 64, 96
FAMILIES: tuple[str, ...] = ("bag", "weapon")
FORMAT = "imminence.held-objects/1"
#: object ids live in their own ranges so they never collide with the tracker's person ids
BAG_IDS, WEAPON_IDS = 1_000_000, 2_000_000


class HeldObjectsError(ValueError):
    """A held-object weights file that cannot be used, with the reason."""


def crop_window(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The frame region (x1, y1, x2, y2) :func:`person_crop` maps onto the crop for a person box.

    Centred on the box, at least 0.9 body heights wide (an outstretched arm holds its
    object outside the torso's box) and 1.1 body heights tall.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    h = max(2.0, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w = max(x2 - x1, 0.9 * h)
    return cx - w / 2, cy - 0.55 * h, cx + w / 2, cy + 0.55 * h


def person_crop(frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The person at ``box`` (x1, y1, x2, y2): its :func:`crop_window` resized to CROP_W x CROP_H.

    Widening to a fixed aspect keeps the scale of a body constant in the crop whatever
    the box's width (arms in or out); pixels outside the frame are black.
    """
    wx1, wy1, wx2, wy2 = crop_window(box)
    src = np.float32([[wx1, wy1], [wx2, wy1], [wx1, wy2]])
    dst = np.float32([[0, 0], [CROP_W, 0], [0, CROP_H]])
    m = cv2.getAffineTransform(src, dst)
    return cv2.warpAffine(frame, m, (CROP_W, CROP_H), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))


def _net(n_out: int):
    import torch.nn as nn  # noqa: PLC0415 - torch only when the stage is configured

    def block(i: int, o: int) -> list:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
                         *block(32, 48), *block(48, 48), nn.MaxPool2d(2), *block(48, 64),
                         nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, n_out))


def _to_tensor(crops: np.ndarray):
    import torch  # noqa: PLC0415

    x = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(0, 3, 1, 2).float() / 255.0
    return x


class HeldObjectNet:
    """The trained classifier: ``predict(crops) -> (N, families)`` probabilities."""

    def __init__(self, state: dict, families: Sequence[str], thresholds: dict[str, float], source: str = "") -> None:
        import torch  # noqa: PLC0415

        self.families = tuple(families)
        self.thresholds = dict(thresholds)
        self.model = _net(len(self.families))
        self.model.load_state_dict(state)
        self.model.eval()
        self.source = source
        self._torch = torch

    @classmethod
    def load(cls, path: str | Path) -> "HeldObjectNet":
        import torch  # noqa: PLC0415

        p = Path(path)
        if not p.is_file():
            raise HeldObjectsError(f"{p}: held-object weights not found")
        try:
            blob = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise HeldObjectsError(f"{p}: not a held-object weights file ({exc.__class__.__name__}: {exc})") from exc
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise HeldObjectsError(f"{p}: format {blob.get('format') if isinstance(blob, dict) else None!r}, "
                                   f"expected {FORMAT!r}")
        if tuple(blob.get("crop", ())) != (CROP_W, CROP_H):
            raise HeldObjectsError(f"{p}: trained on {blob.get('crop')} crops, this code cuts {(CROP_W, CROP_H)}")
        return cls(blob["state_dict"], blob["families"], blob["thresholds"], source=p.name)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.families)), np.float32)
        with self._torch.inference_mode():
            return self._torch.sigmoid(self.model(_to_tensor(crops))).numpy()


@dataclass
class _Carry:
    """One person's recent decisions and the id of the bag they hold."""

    hits: dict[str, deque] = field(default_factory=dict)
    bag_id: Optional[int] = None
    last_t: float = 0.0
    center: tuple[float, float] = (0.0, 0.0)
    height: float = 1.0


class HeldObjectStage:
    """Per camera: adds ``bag``/``weapon`` detections for the tracked people who carry one."""

    def __init__(self, net: HeldObjectNet, window: int = 5, persist: int = 2, handover_s: float = 1.5,
                 max_people: int = 40) -> None:
        self.net = net
        self.window, self.persist, self.handover_s = window, persist, handover_s
        self.max_people = max_people  # crops per frame, largest people first (a crowd costs a bounded time)
        self._people: dict[int, _Carry] = {}
        self._dropped: list[tuple[int, float, tuple[float, float], float]] = []  # bag id, time, where, body height
        self._next_bag = BAG_IDS

    @property
    def version(self) -> str:
        return f"held:{self.net.source}"

    def update(self, frame: np.ndarray, detections: list[Detection], t: float) -> list[Detection]:
        """``detections`` (tracked) plus one detection per held object decided on this frame."""
        people = [d for d in detections if d.cls == "person" and d.track_id is not None]
        people.sort(key=lambda d: d.xyxy[3] - d.xyxy[1], reverse=True)
        people = people[: self.max_people]
        probs = self.net.predict(np.stack([person_crop(frame, d.xyxy) for d in people])) if people else None
        out = list(detections)
        seen, holding = set(), []
        for i, d in enumerate(people):
            c = self._people.setdefault(int(d.track_id), _Carry())
            seen.add(int(d.track_id))
            x1, y1, x2, y2 = d.xyxy
            c.last_t, c.center, c.height = t, ((x1 + x2) / 2, (y1 + y2) / 2), max(1.0, y2 - y1)
            for j, fam in enumerate(self.net.families):
                q = c.hits.setdefault(fam, deque(maxlen=self.window))
                q.append(bool(probs[i, j] >= self.net.thresholds[fam]))
                if sum(q) >= self.persist:
                    holding.append((i, j, fam, d, c))
                elif fam == "bag" and c.bag_id is not None:  # the decision ended: the bag is let go
                    self._dropped.append((c.bag_id, t, c.center, c.height))
                    c.bag_id = None
        # drops of this frame first, so a bag passed between two people in one frame keeps its id
        for i, j, fam, d, c in holding:
            if fam == "bag" and c.bag_id is None:
                c.bag_id = self._take_bag(c, t)
            oid = c.bag_id if fam == "bag" else WEAPON_IDS + int(d.track_id)
            out.append(Detection(xyxy=self._hand_box(d.xyxy), cls=fam, score=float(probs[i, j]), track_id=oid))
        self._forget(seen, t)
        return out

    def _take_bag(self, c: _Carry, t: float) -> int:
        """A bag another person let go of within reach and ``handover_s`` keeps its id; else a new bag."""
        best = None
        for k, (bid, td, where, height) in enumerate(self._dropped):
            reach = 1.2 * max(height, c.height)
            if t - td <= self.handover_s and math.dist(where, c.center) <= reach:
                best = k
        if best is not None:
            return self._dropped.pop(best)[0]
        self._next_bag += 1
        return self._next_bag

    def _forget(self, seen: set[int], t: float) -> None:
        for tid in [k for k, c in self._people.items() if k not in seen and t - c.last_t > 10.0]:
            c = self._people.pop(tid)
            if c.bag_id is not None:
                self._dropped.append((c.bag_id, c.last_t, c.center, c.height))
        self._dropped = [x for x in self._dropped if t - x[1] <= self.handover_s]

    @staticmethod
    def _hand_box(box: Sequence[float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        h = y2 - y1
        return (x1, y1 + 0.45 * h, x2, y1 + 0.75 * h)


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the precision-recall curve (sklearn's step-wise AP); nan without positives."""
    from sklearn.metrics import average_precision_score  # noqa: PLC0415

    return float(average_precision_score(y, p)) if y.any() else float("nan")


def train_held_objects(train: dict[str, np.ndarray], val: dict[str, np.ndarray], out: str | Path,
                       epochs: int = 6, batch: int = 128, lr: float = 3e-3, seed: int = 0,
                       target_precision: float = 0.9,
                       progress: Optional[Callable[[str], None]] = None) -> dict:
    """Fit :class:`HeldObjectNet` on crops ``train`` (``x`` uint8 N x H x W x 3, ``y`` N x families).

    Each family's threshold is the lowest that reaches ``target_precision`` on ``val``
    (crops of other scenes), so the stage's false alarms are set on data it did not fit.
    Writes ``out`` and returns the figures per epoch and per family.
    """
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = _net(len(FAMILIES))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train["x"]) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    y_all = train["y"].astype(np.float32)
    pos = y_all.mean(axis=0).clip(1e-3, None)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(np.sqrt((1 - pos) / pos), dtype=torch.float32))
    history = []
    for ep in range(epochs):
        t0 = time.time()
        model.train()
        order = rng.permutation(len(train["x"]))
        total = 0.0
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            xb = train["x"][idx]
            if rng.random() < 0.5:  # mirror: held objects are in either hand
                xb = xb[:, :, ::-1]
            x = _to_tensor(xb)
            x = x * torch.empty(len(idx), 1, 1, 1).uniform_(0.6, 1.4) + torch.empty(len(idx), 3, 1, 1).uniform_(-0.1, 0.1)
            opt.zero_grad()
            loss = loss_fn(model(x.clamp(0, 1)), torch.from_numpy(y_all[idx]))
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        net = HeldObjectNet(model.state_dict(), FAMILIES, {f: 0.5 for f in FAMILIES})
        pv = np.concatenate([net.predict(val["x"][s:s + 512]) for s in range(0, len(val["x"]), 512)])
        aps = {f: average_precision(val["y"][:, j], pv[:, j]) for j, f in enumerate(FAMILIES)}
        history.append({"epoch": ep + 1, "loss": total / len(order), "val_ap": aps, "seconds": time.time() - t0})
        if progress:
            progress(f"epoch {ep + 1}/{epochs}: loss {total / len(order):.4f}, val AP "
                     + ", ".join(f"{f} {a:.3f}" for f, a in aps.items()) + f" ({time.time() - t0:.0f} s)")
    thresholds = {f: _threshold_at_precision(val["y"][:, j], pv[:, j], target_precision)
                  for j, f in enumerate(FAMILIES)}
    recall = {f: float((pv[val["y"][:, j] == 1, j] >= thresholds[f]).mean()) if val["y"][:, j].any() else float("nan")
              for j, f in enumerate(FAMILIES)}
    torch.save({"format": FORMAT, "state_dict": model.state_dict(), "families": list(FAMILIES),
                "crop": [CROP_W, CROP_H], "thresholds": thresholds}, str(out))
    return {"history": history, "thresholds": thresholds, "recall": recall}


def _threshold_at_precision(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The lowest score threshold whose precision on (y, p) reaches ``target`` (0.99 if none does)."""
    from sklearn.metrics import precision_recall_curve  # noqa: PLC0415

    if not y.any():
        return 0.99
    prec, _, thr = precision_recall_curve(y, p)
    ok = np.nonzero(prec[:-1] >= target)[0]
    return float(thr[ok[0]]) if len(ok) else 0.99
