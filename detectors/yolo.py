"""YOLO detection with any ultralytics checkpoint (``.pt``) or exported ONNX model, offline.

Ultralytics reaches for the network in three places (settings sync, auto-install of
missing requirements, and the Arial font used when plotting); :func:`ensure_offline`
closes all three *before* ultralytics is first imported: ``YOLO_OFFLINE=1``,
``YOLO_AUTOINSTALL=0``, ``YOLO_CONFIG_DIR`` inside the project, and matplotlib's
DejaVuSans copied to ``$YOLO_CONFIG_DIR/Ultralytics/Arial.ttf``. Every module of this
package that touches ultralytics calls it first.

The detector runs on the GPU when torch sees one and on the CPU otherwise, and
predicts a list of frames in one batched forward pass (:meth:`YOLODetector.detect_batch`),
which the detection server (:mod:`detectors.batching`) uses to serve several cameras.

An ONNX model is run by ultralytics through ``onnxruntime``; that package is not a
dependency of this project, so loading ``.onnx`` without it fails with a clear
:class:`DetectorError` rather than an attempted install.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from detectors.types import Detection

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: classes a concept stage needs from a detector; missing ones are an error (see YOLODetector)
REQUIRED_CLASSES: tuple[str, ...] = ("person",)


class DetectorError(RuntimeError):
    """A detector that cannot be built or run: missing/corrupt weights, unusable classes, bad input."""


def ensure_offline(config_dir: Optional[Path] = None) -> Path:
    """Set ultralytics' offline settings and the local font; call before importing ultralytics.

    Existing environment values win (tests and deployments may point elsewhere).
    Returns the config directory.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir or PROJECT_ROOT / ".yolo"))
    cdir = Path(os.environ["YOLO_CONFIG_DIR"])
    font = cdir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, font)  # check_font() finds it here and never downloads
    if "ultralytics" in sys.modules and os.environ.get("YOLO_OFFLINE") != "1":
        log.warning("ultralytics was imported before the offline settings were applied")
    return cdir


def default_device() -> str:
    """``cuda:0`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def file_digest(path: Path, n: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def load_yolo(weights: str | Path) -> Any:
    """Load an ultralytics model from ``weights``; any failure is a :class:`DetectorError` naming the file."""
    path = Path(weights)
    if not path.is_file():
        raise DetectorError(f"YOLO weights {str(path)!r} do not exist (detectors.detector.weights)")
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".onnx"):
        raise DetectorError(f"YOLO weights {str(path)!r}: expected a .pt checkpoint or an exported .onnx model")
    if suffix == ".onnx" and importlib.util.find_spec("onnxruntime") is None:
        raise DetectorError(f"YOLO weights {str(path)!r}: running an ONNX model needs the onnxruntime package, "
                            "which is not installed (use the .pt checkpoint or install onnxruntime)")
    ensure_offline()
    from ultralytics import YOLO

    try:
        model = YOLO(str(path), task="detect")
        names = model.names  # forces the backend to load for ONNX as well
    except Exception as exc:  # ultralytics raises many types for a corrupt file
        raise DetectorError(f"YOLO weights {str(path)!r} do not load: {type(exc).__name__}: {exc}") from None
    if not names:
        raise DetectorError(f"YOLO weights {str(path)!r}: the model has no class names")
    return model


class YOLODetector:
    """Boxes from an ultralytics model; ``detect`` one frame or ``detect_batch`` many at once.

    ``required`` names classes the downstream stages cannot do without (``person``
    by default: tracks, pair dynamics and counts are about people); a model lacking
    one is refused with a :class:`DetectorError` listing the model's classes. Other
    useful classes (bags, weapons, vehicles) are optional: when absent, the concept
    features that use them are zero, which the classifiers were trained with too.
    """

    name = "yolo"

    def __init__(self, weights: str | Path, imgsz: int = 320, conf: float = 0.25, iou: float = 0.5,
                 device: Optional[str] = None, required: Iterable[str] = REQUIRED_CLASSES) -> None:
        self.path = Path(weights)
        self.model = load_yolo(self.path)
        self.names: dict[int, str] = {int(k): str(v) for k, v in dict(self.model.names).items()}
        self.classes: tuple[str, ...] = tuple(self.names.values())
        missing = [c for c in required if c not in self.names.values()]
        if missing:
            have = sorted(self.names.values())
            shown = ", ".join(have[:12]) + (f", ... ({len(have)} in all)" if len(have) > 12 else "")
            raise DetectorError(f"YOLO weights {str(self.path)!r}: model classes [{shown}] "
                                f"lack {missing}, which the tracker and concept features need")
        self.imgsz = int(imgsz)
        self.conf = float(conf)
        self.iou = float(iou)
        self.device = device or default_device()
        self.version = f"{self.path.name}:{file_digest(self.path)}:{self.imgsz}"

    @classmethod
    def from_config(cls, cfg: Any) -> "YOLODetector":
        """Build from a :class:`detectors.config.YOLODetectorConfig`."""
        return cls(cfg.weights, imgsz=cfg.imgsz, conf=cfg.conf, iou=cfg.iou, device=cfg.device)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """One forward pass over all ``frames`` (BGR uint8, any sizes); boxes in each frame's pixels."""
        if not frames:
            return []
        for i, f in enumerate(frames):
            if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise DetectorError(f"frame {i}: expected a BGR uint8 array HxWx3, got "
                                    f"{getattr(f, 'shape', type(f))} {getattr(f, 'dtype', '')}")
        results = self.model.predict(list(frames), imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                                     device=self.device, verbose=False, batch=len(frames))
        out: list[list[Detection]] = []
        for r in results:
            b = r.boxes
            xyxy = b.xyxy.cpu().numpy() if len(b) else np.zeros((0, 4))
            conf = b.conf.cpu().numpy() if len(b) else np.zeros(0)
            cls = b.cls.cpu().numpy().astype(int) if len(b) else np.zeros(0, int)
            out.append([Detection(xyxy=tuple(float(v) for v in box), cls=self.names.get(int(c), str(int(c))),
                                  score=float(s)) for box, s, c in zip(xyxy, conf, cls)])
        return out
