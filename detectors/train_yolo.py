"""Train a YOLO detector offline from a model YAML (no pretrained weights) on a YOLO-format dataset.

``train_yolo(data_yaml, model="yolov8n.yaml", epochs=..., imgsz=...)`` builds the
network from the YAML that ships inside ultralytics, trains it with
``pretrained=False`` and AMP off (ultralytics' AMP check downloads a checkpoint),
then validates ``best.pt`` on the dataset's ``val`` split and returns the
checkpoint path with mAP50 and mAP50-95; the figures are also written beside the
checkpoint as ``metrics.json``. Nothing is downloaded (see :func:`detectors.yolo.ensure_offline`).
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from detectors.yolo import DetectorError, default_device, ensure_offline

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    checkpoint: Path
    map50: float
    map50_95: float
    epochs: int
    imgsz: int
    model: str
    data: str
    classes: list[str]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["checkpoint"] = str(self.checkpoint)
        return d


def _check_data_yaml(data_yaml: Path) -> list[str]:
    import yaml

    if not data_yaml.is_file():
        raise DetectorError(f"YOLO dataset file {str(data_yaml)!r} does not exist")
    try:
        spec = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as exc:
        raise DetectorError(f"{data_yaml}: not YAML: {exc}") from None
    if not isinstance(spec, dict) or "train" not in spec or "val" not in spec or "names" not in spec:
        raise DetectorError(f"{data_yaml}: a YOLO dataset file needs 'train', 'val' and 'names'")
    names = spec["names"]
    return [str(v) for v in (names.values() if isinstance(names, dict) else names)]


def train_yolo(data_yaml: str | Path, out_dir: str | Path, model: str = "yolov8n.yaml", epochs: int = 30,
               imgsz: int = 320, batch: int = 16, device: Optional[str] = None, workers: int = 0,
               seed: int = 0, name: Optional[str] = None) -> TrainResult:
    """Train from ``model`` (a YAML: no pretrained weights; or a local checkpoint of ours to fine-tune),
    copy the best checkpoint to ``out_dir``."""
    data_yaml = Path(data_yaml).resolve()
    classes = _check_data_yaml(data_yaml)
    finetune = str(model).endswith(".pt")
    if finetune and not Path(model).is_file():
        raise DetectorError(f"model {model!r}: no such checkpoint (only local checkpoints; nothing is downloaded)")
    if not finetune and not str(model).endswith((".yaml", ".yml")):
        raise DetectorError(f"model {model!r}: train from a model YAML such as yolov8n.yaml or a local .pt checkpoint")
    if epochs < 1:
        raise DetectorError(f"epochs must be at least 1, got {epochs}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ensure_offline()
    from ultralytics import YOLO

    try:
        net = YOLO(model, task="detect")
    except Exception as exc:
        raise DetectorError(f"model {model!r}: cannot build: {type(exc).__name__}: {exc}") from None
    dev = device or default_device()
    run_name = name or Path(model).stem
    log.info("training %s on %s: %d epochs at %d px on %s", model, data_yaml, epochs, imgsz, dev)
    net.train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, device=dev, workers=workers,
              pretrained=finetune, amp=False, seed=seed, deterministic=True, project=str(out / "runs"),
              name=run_name, exist_ok=True, plots=True, verbose=False, val=True, patience=max(epochs, 50))
    save_dir = Path(net.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"
    if not best.is_file():
        best = save_dir / "weights" / "last.pt"
    if not best.is_file():
        raise DetectorError(f"training wrote no checkpoint under {save_dir}")
    final = out / f"{run_name}-{imgsz}.pt"
    shutil.copyfile(best, final)
    metrics = YOLO(str(final), task="detect").val(data=str(data_yaml), imgsz=imgsz, batch=batch, device=dev,
                                                  workers=workers, plots=False, verbose=False,
                                                  project=str(out / "runs"), name=f"{run_name}-val", exist_ok=True)
    result = TrainResult(checkpoint=final, map50=float(metrics.box.map50), map50_95=float(metrics.box.map),
                         epochs=epochs, imgsz=imgsz, model=str(model), data=str(data_yaml), classes=classes)
    (out / f"{run_name}-{imgsz}.metrics.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
