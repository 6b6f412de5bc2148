"""Scene generator: determinism, concept coverage and structure, boxes, video, YOLO export, CLI."""
from __future__ import annotations

import collections
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from imminence.cli import main
from geo.grid import Grid
from streamer.dataset import Dataset
from scenes import CLASSES, SceneError, generate_dataset
from scenes.yolo_export import export_yolo
from streamer.schemas import CONCEPTS, CRIME_TYPES


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo size: 4 cameras x 2 minutes at 10 fps, 640x360."""
    return generate_dataset(tmp_path_factory.mktemp("scene") / "demo", cameras=4, minutes=2, seed=11)


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_same_seed_same_dataset_other_seed_differs(tmp_path):
    a = generate_dataset(tmp_path / "a", cameras=2, minutes=0.4, seed=5)
    b = generate_dataset(tmp_path / "b", cameras=2, minutes=0.4, seed=5, jobs=2)  # in two processes
    c = generate_dataset(tmp_path / "c", cameras=2, minutes=0.4, seed=6)
    for name in ("manifest.json", "cam01.gt.json", "cam02.gt.json", "cam01.mp4", "cam02.mp4"):
        assert _md5(a / name) == _md5(b / name), name
    assert _md5(a / "cam01.gt.json") != _md5(c / "cam01.gt.json")


def test_every_concept_and_crime_appears_in_demo(demo):
    ds = Dataset(demo)
    concepts, crimes = collections.Counter(), collections.Counter()
    for v in ds.videos:
        gt = ds.ground_truth(v)
        assert len(gt.clips) == 60
        concepts.update(c.concept for c in gt.clips)
        crimes.update(x for c in gt.clips for x in c.crimes)
    assert set(concepts) == set(CONCEPTS), concepts
    assert min(concepts.values()) >= 3, concepts  # each concept in several clips, not one
    assert set(crimes) == set(CRIME_TYPES), crimes


def test_temporal_structure_of_episodes(demo):
    """Seizures are preceded by loitering or a weapon and followed by a getaway; burglary sneaks first."""
    ds = Dataset(demo)
    seen = collections.Counter()
    for v in ds.videos:
        gt = ds.ground_truth(v)
        labels = [c.concept for c in gt.clips]
        for ep in gt.episodes:
            order = [p[0] for p in ep.phases]
            assert labels[ep.first_clip:ep.end_clip] == [p[0] for p in ep.phases for _ in range(p[1], p[2])]
            for c in range(ep.first_clip, ep.end_clip):
                assert gt.clips[c].crimes == ep.crimes
            if ep.kind == "larceny":
                assert order[:2] == ["loitering", "item_seizure"] and order[2:] in ([], ["suspicious_exit"])
            if ep.kind.startswith("robbery"):
                i = order.index("forceful_seizure")
                assert order[i + 1] == "suspicious_exit"
                assert ep.kind == "robbery_snatch" or order[i - 1] == "lethal_object"
            if ep.kind == "burglary":
                assert order.index("sneaking") < order.index("suspicious_exit")
            seen[ep.kind] += 1
        # outside episodes every clip is normal
        inside = {c for ep in gt.episodes for c in range(ep.first_clip, ep.end_clip)}
        assert all(labels[c] == "normal" and not gt.clips[c].crimes for c in range(len(labels)) if c not in inside)
    assert len(seen) == 8, seen


def test_boxes_inside_frame_and_tracks_stable(demo):
    ds = Dataset(demo)
    for v in ds.videos:
        gt = ds.ground_truth(v)
        assert gt.classes == list(CLASSES)
        assert len(gt.frames) == 1200
        cls_of: dict[int, int] = {}
        people = 0
        for f, boxes in gt.frames.items():
            for cls, x1, y1, x2, y2, tid in boxes:
                assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360, (f, x1, y1, x2, y2)
                assert cls_of.setdefault(int(tid), int(cls)) == int(cls), f"track {tid} changes class"
                people += cls == 0
        assert people > 1000  # people are on screen most of the time
        assert {c for c in cls_of.values()} == {0, 1, 3} or {c for c in cls_of.values()} == {0, 1, 2, 3}


def test_tracks_move_smoothly(demo):
    """No person teleports between consecutive frames (outside tampering, which moves the picture)."""
    ds = Dataset(demo)
    for v in ds.videos:
        gt = ds.ground_truth(v)
        tampered = {c.index for c in gt.clips if c.concept == "camera_tampering"}
        last: dict[int, tuple[int, float, float]] = {}
        for f in range(len(gt.frames)):
            for cls, x1, y1, x2, y2, tid in gt.frames[str(f)]:
                if cls != 0:
                    continue
                if tid in last and last[tid][0] == f - 1 and not {f // 20, (f - 1) // 20} & tampered:
                    assert abs((x1 + x2) / 2 - last[tid][1]) + abs(y2 - last[tid][2]) < 80, (v.camera_id, f, tid)
                last[tid] = (f, (x1 + x2) / 2, y2)


def test_weapon_boxes_only_in_armed_robberies(demo):
    ds = Dataset(demo)
    n = 0
    for v in ds.videos:
        gt = ds.ground_truth(v)
        armed = {c for ep in gt.episodes if ep.kind == "robbery_armed" for c in range(ep.first_clip, ep.end_clip)}
        for f, boxes in gt.frames.items():
            if any(b[0] == 2 for b in boxes):
                n += 1
                assert int(f) // 20 in armed
    assert n > 0


def test_video_decodes_with_expected_frames_and_fps(demo):
    ds = Dataset(demo)
    v = ds.videos[0]
    cap = cv2.VideoCapture(str(ds.video_path(v)))
    assert cap.isOpened()
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if n == 0:
            assert frame.shape == (360, 640, 3)
        n += 1
    assert n == 1200


def test_manifest_positions_cells_and_times(demo):
    ds = Dataset(demo)
    grid = Grid.from_config(ds.manifest.grid)
    cells = [grid.cell_of(lon=v.position.lon, lat=v.position.lat) for v in ds.videos]
    assert None not in cells and len(set(cells)) == len(cells)
    for v in ds.videos:
        assert v.start.utcoffset().total_seconds() == 0 and 18 <= v.start.hour <= 23
        assert v.fps is None  # the replay's analysis rate applies


def test_tampering_changes_the_picture(demo):
    """Frames in camera_tampering clips differ from the untouched scene far more than normal ones."""
    ds = Dataset(demo)
    for v in ds.videos:
        gt = ds.ground_truth(v)
        tamper = [c.index for c in gt.clips if c.concept == "camera_tampering"]
        if tamper:
            break
    cap = cv2.VideoCapture(str(ds.video_path(v)))
    frames = []
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(fr, cv2.COLOR_BGR2GRAY).astype(np.float32))
    ref = np.median(np.stack(frames[::25]), axis=0)
    diff = lambda c: np.mean([np.abs(frames[f] - ref).mean() for f in range(c * 20 + 10, c * 20 + 17)])  # noqa: E731
    normal = [c.index for c in gt.clips if c.concept == "normal"]
    assert min(diff(c) for c in tamper) > 2 * np.median([diff(c) for c in normal])


def test_yolo_export_labels_match(demo, tmp_path):
    data = export_yolo(demo, tmp_path / "yolo", every_n=40, val_fraction=0.25)
    text = data.read_text()
    assert "train: images/train" in text and "val: images/val" in text and "0: 'person'" in text
    imgs = {s: sorted((tmp_path / "yolo" / "images" / s).glob("*.jpg")) for s in ("train", "val")}
    labels = {s: sorted((tmp_path / "yolo" / "labels" / s).glob("*.txt")) for s in ("train", "val")}
    assert len(imgs["train"]) == 4 * 23 and len(imgs["val"]) == 4 * 7
    for s in ("train", "val"):
        assert [p.stem for p in imgs[s]] == [p.stem for p in labels[s]]
    gt = Dataset(demo).ground_truth(Dataset(demo).videos[0])
    rows = 0
    for p in labels["train"] + labels["val"]:
        for line in p.read_text().splitlines():
            cls, *xywh = line.split()
            assert 0 <= int(cls) < len(CLASSES)
            assert all(0 <= float(v) <= 1 for v in xywh)
            rows += 1
    assert rows > 100
    # one label file checked box by box against the ground truth
    cam, f = labels["train"][3].stem.rsplit("_", 1)
    assert cam == "cam01"
    boxes = gt.frames[str(int(f))]
    lines = labels["train"][3].read_text().splitlines()
    assert len(lines) == len(boxes)
    for line, b in zip(lines, boxes):
        c, cx, cy, w, h = map(float, line.split())
        assert c == b[0] and cx * 640 == pytest.approx((b[1] + b[3]) / 2, abs=0.01)
        assert h * 360 == pytest.approx(b[4] - b[2], abs=0.01)
    # exporting again, sparser, leaves no stale images behind
    export_yolo(demo, tmp_path / "yolo", every_n=120, val_fraction=0.25)
    assert len(list((tmp_path / "yolo" / "images" / "train").glob("*.jpg"))) == 4 * 8
    assert len(list((tmp_path / "yolo" / "labels" / "train").glob("*.txt"))) == 4 * 8


@pytest.mark.parametrize("kwargs, match", [
    (dict(cameras=0), "--cameras"),
    (dict(minutes=0), "--minutes"),
    (dict(size=(100, 50)), "--size"),
    (dict(clip_seconds=0.01), "--clip-seconds"),
    (dict(minutes=0.05, clip_seconds=2), "fewer than four clips"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(SceneError, match=match):
        generate_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli_generate_and_bad_size(tmp_path, capsys):
    assert main(["scene", "generate", str(tmp_path / "d"), "--cameras", "1", "--minutes", "0.2", "--seed", "2",
                 "--size", "320x180", "--fps", "5", "--start", "2026-06-01T22:30:00Z"]) == 0
    ds = Dataset(tmp_path / "d")
    assert ds.videos[0].start.hour == 22
    assert ds.ground_truth(ds.videos[0]).fps == 5
    assert main(["scene", "generate", str(tmp_path / "e"), "--size", "big"]) == 2
    assert "--size must look like 640x360" in capsys.readouterr().err
    assert main(["scene", "export-yolo", str(tmp_path / "nothing"), str(tmp_path / "y")]) == 2


def test_stats_counts_and_transitions(demo, tmp_path, capsys):
    from scenes.stats import dataset_stats

    s = dataset_stats(demo)
    assert s["clips"] == 240 == sum(s["concepts"].values())
    t = np.array(s["transitions"])
    assert t.sum() == 240 - 4  # one transition per pair of neighbouring clips, per camera
    i = CONCEPTS.index
    # a seizure is followed by the getaway far more often than by anything else but itself
    fs = t[i("forceful_seizure")]
    assert fs[i("suspicious_exit")] == max(v for k, v in enumerate(fs) if k != i("forceful_seizure"))
    assert main(["scene", "stats", str(demo), "--png", str(tmp_path / "t.png")]) == 0
    assert "clips per concept" in capsys.readouterr().out
    assert (tmp_path / "t.png").stat().st_size > 10_000


def test_yolo_export_bad_input(tmp_path):
    import json

    from streamer.dataset import DatasetError

    root = generate_dataset(tmp_path / "d", cameras=1, minutes=0.15, seed=1, size=(320, 180))
    with pytest.raises(ValueError, match="every_n"):
        export_yolo(root, tmp_path / "y", every_n=0)
    with pytest.raises(ValueError, match="val_fraction"):
        export_yolo(root, tmp_path / "y", val_fraction=1.0)
    m = json.loads((root / "manifest.json").read_text())
    del m["videos"][0]["annotations"]
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="no video has annotations"):
        export_yolo(root, tmp_path / "y")
    (root / "cam01.mp4").write_bytes(b"\x00" * 100)  # corrupt video, annotations back
    m["videos"][0]["annotations"] = "cam01.gt.json"
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="cannot open"):
        export_yolo(root, tmp_path / "y")
