"""Replay: datasets and single videos through the worker code, event times from the recording, deterministic."""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from streamer import schemas
from streamer.bus import InMemoryBus
from streamer.config import Position
from streamer.dataset import DatasetError, DatasetManifest, VideoEntry, write_manifest
from streamer.replay import replay_dataset, replay_videos, single_video
from test_worker import cli

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "data" / "vtest_6s.mp4"
START = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)


def make_dataset(root: Path, cameras: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    videos = []
    for i in range(cameras):
        shutil.copy(CLIP, root / f"cam{i}.mp4")
        videos.append(VideoEntry(file=f"cam{i}.mp4", camera_id=f"cam{i}",
                                 position=Position(lon=-79.39 + 0.01 * i, lat=43.65),
                                 start=START + timedelta(minutes=i)))
    write_manifest(root, DatasetManifest(name="t", videos=videos,
                                         grid={"bbox": (-79.42, 43.63, -79.36, 43.67), "cell_size_m": 250}))
    return root


def events_by_camera(bus: InMemoryBus) -> dict[str, list[schemas.IndicatorEvent]]:
    out: dict[str, list] = {}
    for e in bus.records(schemas.TOPIC_INDICATORS):
        out.setdefault(e.camera_id, []).append(e)
    return {k: sorted(v, key=lambda e: e.clip_index) for k, v in sorted(out.items())}


def test_replay_dataset_event_times_come_from_the_recording(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds")
    bus = InMemoryBus()
    summary = replay_dataset(ds, bus, speed=None)
    assert summary.cameras == 2 and summary.clips == 6 and summary.events == 6 and not summary.failed
    assert summary.frames_decoded == 120 and summary.frames_analysed == 60
    by_cam = events_by_camera(bus)
    for i, cam in enumerate(["cam0", "cam1"]):
        evs = by_cam[cam]
        assert [e.clip_start for e in evs] == [START + timedelta(minutes=i, seconds=2 * k) for k in range(3)]
        assert all(e.replay and e.cell_id is not None for e in evs)
    assert by_cam["cam0"][0].cell_id != by_cam["cam1"][0].cell_id  # 800 m apart on a 250 m grid
    assert "cam0" in summary.table() and "frames/s" in summary.table()


def test_replay_is_deterministic(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", cameras=1)
    runs = []
    for _ in range(2):
        bus = InMemoryBus()
        replay_dataset(ds, bus, speed=None)
        runs.append([e.model_dump(exclude={"captured_at", "published_at"}) for e in events_by_camera(bus)["cam0"]])
    assert runs[0] == runs[1] and len(runs[0]) == 3


def test_replay_paced_at_speed(tmp_path: Path) -> None:
    video = single_video(CLIP, "solo", Position(lon=-79.39, lat=43.65), start=START)
    bus = InMemoryBus()
    summary = replay_videos([video], bus, speed=4.0)
    assert summary.events == 3
    assert summary.elapsed_s >= 5.9 / 4 - 0.05  # 6 s of footage at 4x


def test_a_corrupt_video_fails_its_camera_only(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds")
    (ds / "cam1.mp4").write_bytes(b"\x00garbage" * 500)
    bus = InMemoryBus()
    summary = replay_dataset(ds, bus, speed=None)
    assert set(summary.failed) == {"cam1"} and "cam1.mp4" in summary.failed["cam1"]
    assert summary.per_camera["cam0"].events == 3
    assert "FAILED" in summary.table()


@pytest.mark.parametrize("manifest, expected", [
    ("{not json", "not JSON"),
    (json.dumps({"schema": "imminence.dataset/1", "videos": []}), "videos"),
    (json.dumps({"schema": "imminence.dataset/1", "videos": [
        {"file": "nope.mp4", "camera_id": "c", "position": {"lon": 1, "lat": 2}, "start": "2026-01-01T00:00:00Z"}]}),
     "missing"),
    (json.dumps({"schema": "imminence.dataset/1", "videos": [
        {"file": "x.mp4", "camera_id": "c", "position": {"lon": 1}, "start": "2026-01-01T00:00:00"}]}), "position"),
])
def test_malformed_manifest_is_a_clear_error(tmp_path: Path, manifest: str, expected: str,
                                            capsys: pytest.CaptureFixture) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.json").write_text(manifest)
    with pytest.raises(DatasetError) as err:
        replay_dataset(ds, InMemoryBus())
    assert "manifest.json" in str(err.value) and expected in str(err.value)
    if expected != "not JSON":
        return  # the command's exit path is the same for every case: check it once
    code, _, stderr = cli(capsys, "replay", str(ds))
    assert code == 2 and "manifest.json" in stderr and "Traceback" not in stderr


def test_replay_command_starts_its_own_broker(capsys: pytest.CaptureFixture) -> None:
    code, out, err = cli(capsys, "replay", str(CLIP), "--camera-id", "solo", "--position=-79.39,43.65",
                         "--start", "2026-05-01T21:00:00Z", "--fps", "2")
    assert code == 0, out + err
    assert "embedded broker: 127.0.0.1:" in out
    assert "1 camera(s), 3 clips, 3 events, 60 frames decoded (12 analysed)" in out
    acked = re.search(r"bus: (\d+) records acknowledged, 0 dropped, 0 failed", out)
    assert acked and int(acked.group(1)) >= 3 + 2, out  # 3 events + online/stopped heartbeats


def test_replay_command_single_video_needs_camera_and_position(capsys: pytest.CaptureFixture) -> None:
    code, _, err = cli(capsys, "replay", str(CLIP))
    assert code == 2 and "--camera-id" in err and str(CLIP) in err


def test_cameras_share_the_recording_timeline(tmp_path: Path) -> None:
    """At max speed no camera runs ahead of the others on recording time; a later recording waits its turn."""
    ds = make_dataset(tmp_path / "ds", cameras=3)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["videos"][0]["start"] = manifest["videos"][1]["start"] = "2026-05-01T21:00:00Z"
    manifest["videos"][2]["start"] = "2026-05-01T21:01:00Z"  # recorded a minute later
    (ds / "manifest.json").write_text(json.dumps(manifest))
    bus = InMemoryBus()
    replay_dataset(ds, bus, speed=None)
    events = sorted(bus.records(schemas.TOPIC_INDICATORS), key=lambda e: e.published_at)
    assert len(events) == 9
    ahead = max(e.clip_start for e in events[:1])
    for e in events:  # published in recording-time order, up to the skew bound plus a clip
        assert (ahead - e.clip_start).total_seconds() <= 4.5
        ahead = max(ahead, e.clip_start)
    late = [e for e in events if e.camera_id == "cam2"]
    early = [e for e in events if e.camera_id != "cam2"]
    assert max(e.published_at for e in early) <= min(e.published_at for e in late)
