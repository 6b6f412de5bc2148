"""`imminence detectors train`: train a YOLO detector offline on a scene dataset (or any YOLO dataset).

    imminence detectors train DATASET --model yolov8n.yaml --epochs 30 --imgsz 320 --out artifacts/yolo

DATASET is one or more replayable dataset folders with ground-truth boxes (the
scene generator's output): each is exported to ultralytics' YOLO layout
(``scenes.yolo_export``) under OUT/yolo-data/NAME and one data.yaml lists
them all. A YOLO ``data.yaml`` may be given instead and is used as is. Training
starts from the model YAML (no pretrained weights) or continues from one of this
project's own checkpoints (``--model detectors/models/scene-yolov8n-416.pt``);
nothing is downloaded. Prints the checkpoint path and
the validation mAP50 / mAP50-95 (also written to OUT/<model>-<imgsz>.metrics.json).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imminence.errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("detectors", help="detector models: train a YOLO detector offline",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="detectors_command", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train YOLO from a model YAML on a scene dataset",
                       description=__doc__.split("\n\n")[2])
    t.add_argument("dataset", nargs="+", help="dataset folder(s) (manifest.json + ground truth) or a YOLO data.yaml")
    t.add_argument("--model", default="yolov8n.yaml", help="model YAML to build from (default yolov8n.yaml), or a "
                   "local checkpoint of ours to fine-tune")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--imgsz", type=int, default=320, help="training and validation input size (default 320)")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--out", default="artifacts/yolo", help="output folder (default artifacts/yolo)")
    t.add_argument("--val-share", type=float, default=0.2,
                   help="share of the exported frames kept for validation (default 0.2)")
    t.add_argument("--every", type=int, default=5, help="export every N-th annotated frame (default 5)")
    t.add_argument("--device", default=None, help="cuda:0 / cpu (default: the GPU when present)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=run_train)
    h = sub.add_parser("train-held", help="train the held-object classifier (bag, weapon) on person crops",
                       description="Cut person crops labelled with the bag or weapon each person carries from "
                       "scene datasets with ground truth (scenes.held_export), train the small held-object CNN "
                       "(detectors.held_objects) and set each family's threshold for the wanted precision on the "
                       "validation datasets' crops (other scenes). Writes the weights file and a training-curve PNG.")
    h.add_argument("dataset", nargs="+", help="training dataset folder(s) with ground-truth boxes")
    h.add_argument("--val", nargs="+", required=True, help="validation dataset folder(s) (other seeds)")
    h.add_argument("--out", default="detectors/models/held-objects.pt")
    h.add_argument("--epochs", type=int, default=6)
    h.add_argument("--every", type=int, default=3, help="cut crops from every N-th annotated frame (default 3)")
    h.add_argument("--precision", type=float, default=0.9,
                   help="per-family validation precision the threshold is set for (default 0.9)")
    h.add_argument("--cache", default=None, help="folder to keep the cut crops in (.npz per dataset)")
    h.add_argument("--seed", type=int, default=0)
    h.set_defaults(func=run_train_held)


def _export(dataset: Path, out: Path, val_share: float, every: int) -> Path:
    from scenes.yolo_export import export_yolo

    return Path(export_yolo(dataset, out, every_n=every, val_fraction=val_share))


def _export_many(srcs: list[Path], out: Path, val_share: float, every: int) -> Path:
    """Export each dataset to OUT/NAME and write one data.yaml whose train and val list them all."""
    import yaml

    parts = []
    for src in srcs:
        print(f"exporting {src} to YOLO format under {out / src.name}", file=sys.stderr)
        parts.append(yaml.safe_load(_export(src, out / src.name, val_share, every).read_text()))
    names = parts[0]["names"]
    if any(p["names"] != names for p in parts):
        raise ValueError("the datasets' box classes differ")
    spec = {"train": [str(Path(p["path"]) / p["train"]) for p in parts],
            "val": [str(Path(p["path"]) / p["val"]) for p in parts], "nc": len(names), "names": names}
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_train(args: argparse.Namespace) -> int:
    from detectors.train_yolo import train_yolo
    from detectors.yolo import DetectorError
    from streamer.dataset import DatasetError

    srcs = [Path(d) for d in args.dataset]
    out = Path(args.out)
    try:
        if len(srcs) == 1 and srcs[0].suffix in (".yaml", ".yml"):
            data_yaml = srcs[0]
        elif len(srcs) == 1:
            print(f"exporting {srcs[0]} to YOLO format under {out / 'yolo-data'}", file=sys.stderr)
            data_yaml = _export(srcs[0], out / "yolo-data", args.val_share, args.every)
        else:
            data_yaml = _export_many(srcs, out / "yolo-data", args.val_share, args.every)
        res = train_yolo(data_yaml, out, model=args.model, epochs=args.epochs, imgsz=args.imgsz,
                         batch=args.batch, device=args.device, seed=args.seed)
    except (DetectorError, DatasetError, FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"checkpoint: {res.checkpoint}")
    print(f"val mAP50: {res.map50:.3f}  mAP50-95: {res.map50_95:.3f}  ({res.epochs} epochs, imgsz {res.imgsz}, "
          f"classes {res.classes})")
    return 0


def _crops(dataset: Path, every: int, seed: int, cache: Path | None) -> dict:
    import numpy as np

    from scenes.held_export import export_held_crops

    path = cache / f"{dataset.resolve().name}-every{every}-seed{seed}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return {"x": z["x"], "y": z["y"]}
    crops = export_held_crops(dataset, every_n=every, seed=seed,
                              progress=lambda m: print(f"  {m}", file=sys.stderr))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **crops)
    return crops


def _stack(parts: list[dict]) -> dict:
    import numpy as np

    return {"x": np.concatenate([p["x"] for p in parts]), "y": np.concatenate([p["y"] for p in parts])}


def run_train_held(args: argparse.Namespace) -> int:
    from detectors.held_objects import FAMILIES, HeldObjectsError, train_held_objects
    from streamer.dataset import DatasetError

    cache = Path(args.cache) if args.cache else None
    try:
        train = _stack([_crops(Path(d), args.every, args.seed, cache) for d in args.dataset])
        val = _stack([_crops(Path(d), args.every, args.seed + 1, cache) for d in args.val])
    except (DatasetError, FileNotFoundError, HeldObjectsError) as exc:
        raise CommandError(str(exc)) from exc
    for name, part in (("train", train), ("val", val)):
        share = ", ".join(f"{f} {part['y'][:, j].mean():.1%}" for j, f in enumerate(FAMILIES))
        print(f"{name}: {len(part['x'])} crops ({share})", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = train_held_objects(train, val, out, epochs=args.epochs, seed=args.seed, target_precision=args.precision,
                             progress=lambda m: print(m, file=sys.stderr))
    png = out.with_suffix(".curve.png")
    _plot_curve(res["history"], png)
    for fam, thr in res["thresholds"].items():
        print(f"{fam}: threshold {thr:.3f} for precision {args.precision:.2f} on validation; "
              f"recall there {res['recall'][fam]:.1%}; val AP {res['history'][-1]['val_ap'][fam]:.3f}")
    print(f"weights: {out}\ncurve: {png}")
    return 0


def _plot_curve(history: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep, [h["loss"] for h in history], "o-")
    a.set(xlabel="epoch", ylabel="training loss", title="held-object CNN: loss")
    for fam in history[0]["val_ap"]:
        b.plot(ep, [h["val_ap"][fam] for h in history], "o-", label=fam)
    b.set(xlabel="epoch", ylabel="average precision", ylim=(0, 1), title="validation AP (other scenes)")
    b.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
