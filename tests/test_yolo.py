"""YOLO detector: offline settings, bad weights, the committed scene model, batching server, tiny training."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.yolo import DetectorError, YOLODetector, ensure_offline, load_yolo

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "detectors" / "models" / "scene-yolov8n-416.pt"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A short generated scene (seed never used for training the committed model) with its frames."""
    from streamer.dataset import Dataset
    from scenes import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("scene"), cameras=1, minutes=0.25, seed=777)
    ds = Dataset(root)
    entry = ds.videos[0]
    cap = cv2.VideoCapture(str(ds.video_path(entry)))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    return root, frames, ds.ground_truth(entry)


@pytest.fixture(scope="module")
def detector() -> YOLODetector:
    return YOLODetector(WEIGHTS, imgsz=320, device="cpu")


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_offline_settings_and_local_font() -> None:
    cdir = ensure_offline()
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "0"
    assert (cdir / "Ultralytics" / "Arial.ttf").stat().st_size > 100_000  # matplotlib's DejaVuSans copy


def test_missing_corrupt_and_unsupported_weights(tmp_path) -> None:
    with pytest.raises(DetectorError, match="do not exist"):
        YOLODetector(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(DetectorError, match="corrupt.pt.*do not load"):
        YOLODetector(corrupt)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(WEIGHTS.read_bytes()[:200_000])
    with pytest.raises(DetectorError, match="do not load"):
        load_yolo(truncated)
    other = tmp_path / "model.h5"
    other.write_bytes(b"x")
    with pytest.raises(DetectorError, match=r"\.pt checkpoint or an exported \.onnx"):
        YOLODetector(other)


def test_onnx_without_runtime_is_a_clear_error(tmp_path) -> None:
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        pytest.skip("onnxruntime is installed here: ONNX models load")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(DetectorError, match="onnxruntime"):
        YOLODetector(onnx)


def test_model_without_person_class_is_refused(tmp_path) -> None:
    ensure_offline()
    from ultralytics import YOLO

    path = tmp_path / "no-person.pt"
    YOLO("yolov8n.yaml").save(str(path))  # an untrained COCO-shaped net whose classes are "0".."79"
    with pytest.raises(DetectorError, match=r"lack \['person'\]"):
        YOLODetector(path)


def test_committed_model_finds_people_in_a_generated_frame(scene, detector) -> None:
    _, frames, gt = scene
    assert set(detector.names.values()) >= {"person", "bag", "vehicle"}
    found = total = 0
    for f in range(5, len(frames), 15):
        people = [b[1:5] for b in gt.frames.get(str(f), []) if gt.classes[int(b[0])] == "person"
                  and (b[3] - b[1]) * (b[4] - b[2]) > 600]
        if not people:
            continue
        dets = [d for d in detector.detect(frames[f]) if d.cls == "person"]
        total += len(people)
        found += sum(any(_iou(p, d.xyxy) > 0.5 for d in dets) for p in people)
    assert total >= 5
    assert found / total >= 0.6, f"recall {found}/{total}"


def test_bad_frames_are_refused(detector) -> None:
    with pytest.raises(DetectorError, match="frame 1"):
        detector.detect_batch([np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.uint8)])
    assert detector.detect_batch([]) == []


def test_batching_server_serves_several_cameras(scene, detector) -> None:
    from detectors.batching import DetectionServer

    _, frames, _ = scene
    picks = frames[10:40:5]
    expected = detector.detect_batch(picks)
    results: dict[str, list] = {}
    with DetectionServer(detector, max_batch=8, max_wait_ms=50) as server:
        def camera(name: str) -> None:
            client = server.client(name)
            results[name] = [client.detect(f) for f in picks]

        threads = [threading.Thread(target=camera, args=(f"cam{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert server.stats.max_batch_seen > 1  # frames of different cameras shared a forward pass
    assert set(results) == {"cam0", "cam1", "cam2", "cam3"}
    for name, per_frame in results.items():
        assert server.stats.by_camera[name] == len(picks)
        for got, want in zip(per_frame, expected):
            assert [d.cls for d in got] == [d.cls for d in want]
            np.testing.assert_allclose([d.xyxy for d in got], [d.xyxy for d in want], atol=1.0)
    with pytest.raises(DetectorError, match="not running"):
        server.submit("cam0", picks[0])


@pytest.mark.slow
def test_training_on_a_tiny_generated_dataset(tmp_path) -> None:
    from detectors.train_yolo import train_yolo
    from scenes import generate_dataset
    from scenes.yolo_export import export_yolo

    root = generate_dataset(tmp_path / "scene", cameras=1, minutes=0.2, seed=5, size=(320, 180))
    data = export_yolo(root, tmp_path / "yolo", every_n=6)
    res = train_yolo(data, tmp_path / "out", epochs=1, imgsz=96, batch=8)
    assert res.checkpoint.is_file() and 0.0 <= res.map50 <= 1.0
    assert (tmp_path / "out" / "yolov8n-96.metrics.json").is_file()
    det = YOLODetector(res.checkpoint, imgsz=96, conf=0.01, device="cpu")
    assert det.names[0] == "person"
    out = det.detect(np.full((180, 320, 3), 120, np.uint8))
    assert isinstance(out, list)
    with pytest.raises(DetectorError, match="no such checkpoint"):  # fine-tuning only from local checkpoints
        train_yolo(data, tmp_path / "out", model="yolov8n.pt", epochs=1)
    with pytest.raises(DetectorError, match="model YAML"):
        train_yolo(data, tmp_path / "out", model="weights.onnx", epochs=1)
    with pytest.raises(DetectorError, match="does not exist"):
        train_yolo(tmp_path / "nope.yaml", tmp_path / "out", epochs=1)
