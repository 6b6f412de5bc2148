"""`imminence detectors|concepts` commands end to end on generated scenes, and the worker/upload path they train."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imminence.cli import main

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "detectors" / "models" / "scene-yolov8n-416.pt"
IMGSZ = "160"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Concept classifiers and co-occurrence trained by the CLI on a small generated dataset."""
    from scenes import generate_dataset

    base = tmp_path_factory.mktemp("concepts")
    train = generate_dataset(base / "train", cameras=2, minutes=0.25, seed=21)
    heldout = generate_dataset(base / "heldout", cameras=1, minutes=0.2, seed=22)
    out = base / "model"
    # imgsz 160 keeps the test quick on two CPU cores; the model was trained at 320
    rc = main(["concepts", "train", str(train), "--weights", str(WEIGHTS), "--imgsz", IMGSZ, "--out", str(out)])
    assert rc == 0
    return out, heldout


@pytest.mark.slow
def test_concepts_train_writes_plain_json(trained) -> None:
    out, _ = trained
    doc = json.loads((out / "concepts.json").read_text())
    assert doc["format"].startswith("imminence.concept-classifiers") and len(doc["concepts"]) == 10
    assert doc["trained_on"]["clips"] >= 14
    cooc = json.loads((out / "cooccurrence.json").read_text())
    assert np.allclose(np.array(cooc["matrices"]["default"]["matrix"]).sum(axis=1), 1.0)


@pytest.mark.slow
def test_concepts_evaluate_prints_accuracy_and_writes_confusion_png(trained, capsys) -> None:
    out, heldout = trained
    capsys.readouterr()
    rc = main(["concepts", "evaluate", str(heldout), "--weights", str(WEIGHTS), "--imgsz", IMGSZ,
               "--model", str(out / "concepts.json"),
               "--out", str(out / "eval")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "gmcp" in text and "argmax" in text and "average (balanced)" in text
    for name in ("gmcp", "argmax"):
        png = out / "eval" / f"confusion-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads((out / "eval" / "evaluation.json").read_text())
    assert 0.0 <= figures["gmcp"]["accuracy"] <= 1.0 and sum(figures["methods"].values()) >= 5
    assert figures["methods"].get("gmcp", 0) > 0 and figures["h"] == 8


def test_bad_inputs_give_clear_errors(tmp_path, capsys) -> None:
    assert main(["concepts", "evaluate", str(tmp_path), "--model", str(tmp_path / "none.json")]) == 1
    assert "none.json" in capsys.readouterr().err
    assert main(["concepts", "train", str(tmp_path / "missing")]) == 1
    assert "not a dataset folder" in capsys.readouterr().err
    assert main(["detectors", "train", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["detectors", "train", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1
    assert "missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["detectors", "train"])


def _analyzer(trained, detector=None):
    from detectors.analyzer import ClipAnalyzer
    from detectors.config import DetectorsConfig, YOLODetectorConfig

    out, _ = trained
    cfg = DetectorsConfig(detector=YOLODetectorConfig(weights=str(WEIGHTS), imgsz=int(IMGSZ), device="cpu"))
    cfg.concepts.model = str(out / "concepts.json")
    cfg.gmcp.cooccurrence = str(out / "cooccurrence.json")
    cfg.gmcp.window = 4
    cfg.concepts.max_outside = 10_000  # a 14-clip training set has narrow ranges: test the GMCP flow, not abstention
    return cfg, ClipAnalyzer(cfg, "camX", 5.0, detector=detector, clip_seconds=2.0)


def _frames(root: Path, n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(next(root.glob("*.mp4"))))
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return frames


@pytest.mark.slow
def test_worker_path_labels_clips_with_gmcp_and_flags_fallbacks(trained) -> None:
    cfg, an = _analyzer(trained)
    frames = _frames(trained[1], 100)
    clips = []
    for c in range(5):
        for i in range(20):
            an.process(frames[c * 20 + i], c * 20 + i, (c * 20 + i) / 10)
        clips.append(an.end_clip(c))
    assert {"detector", "tracker", "concepts", "cooccurrence", "gmcp"} <= set(clips[0].models)
    assert clips[0].concept.method == "argmax-fallback" and clips[0].concept.window == 1
    later = [c.concept for c in clips[1:]]
    assert all(c.method == "gmcp" and c.objective is not None for c in later)
    assert [c.window for c in later] == [2, 3, 4, 4]
    assert all(t.startswith("camX:") for c in clips for t in c.tracks) and clips[2].tracks
    # the camera goes dark: a quiet label (abstaining when nothing at all was detected), the worker carries on
    black = np.zeros_like(frames[0])
    for i in range(20):
        an.process(black, 100 + i, 10 + i / 10)
    dark_clip = an.end_clip(5)
    dark = dark_clip.concept
    assert dark.label in ("normal", "loitering", "camera_tampering")
    if not dark_clip.counts:
        assert (dark.label, dark.method, dark.uncertain) == ("normal", "abstain", True)
        assert "no detections" in dark.fallback_reason
    for i in range(20):
        an.process(frames[i], 120 + i, 12 + i / 10)
    assert an.end_clip(6).concept.method == "gmcp"


@pytest.mark.slow
def test_upload_analysis_keeps_key_frames_and_boxes(trained) -> None:
    from detectors.clip import analyze_clip, analyze_frames

    cfg, _ = _analyzer(trained)
    frames = _frames(trained[1], 45)
    one = analyze_clip(frames, cfg, 10.0, key_frames=2)
    assert one.frames == 45 and one.concept is not None and one.concept.method == "argmax-fallback"
    assert len(one.key_frames) == 2
    idx, img, boxes = one.key_frames[0]
    assert img.shape == frames[0].shape and boxes and any(b.track_id is not None for b in boxes)
    clips = analyze_frames(frames, cfg, 10.0, clip_seconds=2.0)
    assert [c.frames for c in clips] == [20, 20, 5] and not clips[0].key_frames
    assert clips[1].concept.method == "gmcp"
    with pytest.raises(ValueError, match="no frames"):
        analyze_clip([], cfg, 10.0)


@pytest.mark.slow
def test_train_held_writes_weights_curve_and_refuses_data_without_truth(trained, tmp_path, capsys) -> None:
    """`detectors train-held` end to end on a small scene: a loadable weights file, its curve, its figures."""
    from detectors.held_objects import HeldObjectNet

    _, heldout = trained
    train = heldout.parent / "train"
    out = tmp_path / "held.pt"
    capsys.readouterr()
    rc = main(["detectors", "train-held", str(train), "--val", str(heldout), "--epochs", "1", "--every", "6",
               "--out", str(out), "--cache", str(tmp_path / "crops")])
    text = capsys.readouterr().out
    assert rc == 0 and "bag: threshold" in text and "weapon: threshold" in text
    net = HeldObjectNet.load(out)
    assert set(net.thresholds) == {"bag", "weapon"}
    assert out.with_suffix(".curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tmp_path / "crops").glob("*.npz"))) == 2  # crops kept for the next run
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["detectors", "train-held", str(empty), "--val", str(heldout), "--out", str(tmp_path / "x.pt")]) == 1
    assert "imminence detectors train-held:" in capsys.readouterr().err
