"""Dataset folders: manifest validation, path escapes, ground truth, backward compatibility."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.dataset import MANIFEST, Dataset, DatasetError, GroundTruth

START = "2026-05-01T21:00:00Z"


def _write(root: Path, videos: list[dict], truth: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cam1.mp4").write_bytes(b"not really a video")
    if truth is not None:
        (root / "cam1.gt.json").write_text(json.dumps(truth))
    (root / MANIFEST).write_text(json.dumps({"schema": "imminence.dataset/1", "videos": videos}))
    return root


def _video(**kw) -> dict:
    v = {"file": "cam1.mp4", "camera_id": "cam1", "position": {"lon": -79.38, "lat": 43.65}, "start": START}
    v.update(kw)
    return v


def test_valid_dataset_loads(tmp_path):
    truth = {"fps": 10, "clip_seconds": 2, "clips": [{"index": 0, "start_s": 0, "end_s": 2, "concept": "loitering"}],
             "frames": {"0": [[0, 1, 2, 30, 80, 7]]}}
    ds = Dataset(_write(tmp_path, [_video(annotations="cam1.gt.json")], truth))
    gt = ds.ground_truth(ds.videos[0])
    assert gt.clips[0].concept == "loitering" and gt.episodes == []  # files without episodes still load
    assert ds.videos[0].start.tzinfo is not None


@pytest.mark.parametrize("field, value", [("file", "../x.mp4"), ("file", "/etc/passwd"),
                                          ("annotations", "../../gt.json"), ("annotations", "/tmp/gt.json")])
def test_paths_may_not_escape(tmp_path, field, value):
    root = _write(tmp_path / "ds", [_video(**{field: value})])
    (tmp_path / "x.mp4").write_bytes(b"")
    with pytest.raises(DatasetError, match="absolute|escapes"):
        Dataset(root)


@pytest.mark.parametrize("videos, match", [
    ([_video(file="gone.mp4")], "missing"),
    ([_video(), _video()], "camera ids repeat"),
    ([_video(position={"lon": 500, "lat": 43})], "position"),
    ([_video(start="2026-05-01T21:00:00")], "time zone"),
    ([_video(colour="red")], "colour"),
    ([], "videos"),
])
def test_bad_manifests(tmp_path, videos, match):
    with pytest.raises(DatasetError, match=match) as exc:
        Dataset(_write(tmp_path, videos))
    assert MANIFEST in str(exc.value)


def test_not_json_and_not_a_folder(tmp_path):
    root = _write(tmp_path, [_video()])
    (root / MANIFEST).write_text("{nope")
    with pytest.raises(DatasetError, match="not JSON"):
        Dataset(root)
    with pytest.raises(DatasetError, match="not a dataset folder"):
        Dataset(tmp_path / "absent")


def test_bad_ground_truth_names_file_and_field(tmp_path):
    truth = {"fps": 10, "clip_seconds": 2, "clips": [{"index": 0, "start_s": 0, "end_s": 2, "concept": "dancing",
                                                     "crimes": ["arson"]}]}
    ds = Dataset(_write(tmp_path, [_video(annotations="cam1.gt.json")], truth))
    with pytest.raises(DatasetError, match=r"cam1\.gt\.json: clips\[0\]\.concept: .*dancing") as exc:
        ds.ground_truth(ds.videos[0])
    assert "arson" in str(exc.value)


def test_ground_truth_round_trip():
    gt = GroundTruth(fps=10, clip_seconds=2, episodes=[{"kind": "larceny", "crimes": ["larceny"], "first_clip": 1,
                                                        "end_clip": 4, "phases": [["loitering", 1, 3], ["item_seizure", 3, 4]]}])
    again = GroundTruth.model_validate_json(gt.model_dump_json(by_alias=True))
    assert again == gt
