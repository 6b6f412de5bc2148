"""Camera worker: clips -> IndicatorEvents with the right times/cells/ids, heartbeats, newest-frame latency, CLI."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.analyzer import ClipAnalyzer
from detectors.config import DetectorsConfig
from detectors.opencv_detector import OpenCVDetector
from detectors.types import Detection
from geo.grid import Grid, GridConfig
from streamer import schemas
from streamer.bus import InMemoryBus
from streamer.config import CameraConfig, Position
from streamer.sources import FileSource, LiveSource
from streamer.worker import CameraWorker

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "data" / "vtest_6s.mp4"
START = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)
GRID = Grid.from_config(GridConfig(bbox=(-79.42, 43.63, -79.36, 43.67), cell_size_m=250))


def camera(**kw) -> CameraConfig:
    base = dict(id="plaza", source=str(CLIP), position=Position(lon=-79.3871, lat=43.6426), fps=5, clip_seconds=2)
    return CameraConfig(**{**base, **kw})


def run_file_worker(bus: InMemoryBus, cam: CameraConfig | None = None, **kw) -> CameraWorker:
    cam = cam or camera()
    w = CameraWorker(cam, DetectorsConfig(), bus, GRID, source=FileSource(cam.source, masks=cam.masks, speed=None),
                     origin=START, replay=True, **kw)
    w.run()
    return w


def test_clips_become_indicator_events() -> None:
    bus = InMemoryBus()
    w = run_file_worker(bus)
    events = bus.records(schemas.TOPIC_INDICATORS)
    events.sort(key=lambda e: e.clip_index)
    assert [e.clip_index for e in events] == [0, 1, 2]
    assert w.summary.frames_read == 60 and w.summary.frames_analysed == 30
    cell = GRID.cell_of(lon=-79.3871, lat=43.6426)
    for k, e in enumerate(events):
        assert e.camera_id == "plaza" and e.cell_id == cell and e.replay
        assert e.clip_start == START + timedelta(seconds=2 * k)
        assert e.clip_end == START + timedelta(seconds=2 * k + 2)
        assert (e.stream_start_s, e.stream_end_s) == (2.0 * k, 2.0 * k + 2)
        assert (e.frame_first, e.frame_last) == (20 * k, 20 * k + 18)  # every other frame at 5 of 10 fps
        assert e.detections.frames == 10
        assert e.captured_at <= e.published_at
        assert e.models["detector"].startswith("opencv-hog-mog2")
        # validated on the way out as on the way in
        assert schemas.decode(schemas.TOPIC_INDICATORS, schemas.encode(e)) == e
    # walking people on the plaza: found in most analysed frames
    with_person = sum(e.detections.frames_with_person for e in events)
    assert with_person / 30 >= 0.7, with_person
    assert all(e.detections.max_counts.get("person", 0) >= 1 for e in events)
    statuses = bus.records(schemas.TOPIC_CAMERAS)
    assert statuses[0].state == "online" and statuses[-1].state == "stopped"
    assert statuses[-1].events_published == 3 and statuses[-1].frames_read == 60


def test_same_footage_gives_the_same_events_and_ids() -> None:
    runs = []
    for _ in range(2):
        bus = InMemoryBus()
        run_file_worker(bus)
        runs.append([e.model_dump(exclude={"captured_at", "published_at"})
                     for e in sorted(bus.records(schemas.TOPIC_INDICATORS), key=lambda e: e.clip_index)])
    assert runs[0] == runs[1]
    bus = InMemoryBus()
    run_file_worker(bus, run_id="second-run")
    assert {e.event_id for e in bus.records(schemas.TOPIC_INDICATORS)}.isdisjoint(e["event_id"] for e in runs[0])


def test_privacy_mask_hides_people_from_the_detector() -> None:
    whole = [[0, 0], [768, 0], [768, 576], [0, 576]]
    bus = InMemoryBus()
    run_file_worker(bus, camera(masks=[whole]))
    events = bus.records(schemas.TOPIC_INDICATORS)
    assert len(events) == 3
    assert all(e.detections.frames_with_person == 0 and e.detections.motion == 0 for e in events)


def test_one_analyzer_per_camera_scopes_track_ids() -> None:
    class Tracked:
        name, version, motion = "fixed", "1", 0.0

        def detect(self, frame):
            return [Detection((0, 0, 10, 20), "person", 0.9, track_id=7)]

    a = ClipAnalyzer(DetectorsConfig(), "cam-a", 5, detector=Tracked())
    b = ClipAnalyzer(DetectorsConfig(), "cam-b", 5, detector=Tracked())
    img = np.zeros((64, 64, 3), np.uint8)
    a.process(img, 0, 0.0)
    b.process(img, 0, 0.0)
    # each camera's own tracker numbers its tracks (a detector-supplied id is not trusted across cameras)
    assert a.end_clip(0).tracks == ["cam-a:1"] and b.end_clip(0).tracks == ["cam-b:1"]


class SlowDetector(OpenCVDetector):
    """The real detector plus a fixed delay: analysis slower than the camera."""

    def detect(self, frame):
        time.sleep(0.25)
        return super().detect(frame)


def test_live_source_with_slow_detector_keeps_latency_bounded() -> None:
    cam = camera(fps=10, clip_seconds=1, live=True)
    bus = InMemoryBus()
    src = LiveSource(str(CLIP), reconnect_max_s=0.2)  # decodes far faster than 10 fps: a fast camera
    w = CameraWorker(cam, DetectorsConfig(), bus, GRID, source=src,
                     analyzer=ClipAnalyzer(DetectorsConfig(), cam.id, cam.fps, detector=SlowDetector()))
    t = threading.Thread(target=w.run)
    t.start()
    time.sleep(6.0)
    w.stop()
    t.join(10)
    events = sorted(bus.records(schemas.TOPIC_INDICATORS), key=lambda e: e.clip_index)
    assert len(events) >= 3
    lat = [(e.published_at - e.captured_at).total_seconds() for e in events]
    # The newest frame is analysed, so capture->publish stays about one detector call, and does not grow.
    assert max(lat) < 1.0, lat
    assert lat[-1] < lat[0] + 0.5, lat
    assert w.summary.frames_dropped > w.summary.frames_analysed
    status = bus.records(schemas.TOPIC_CAMERAS)[-1]
    assert status.frames_dropped == w.summary.frames_dropped and status.state == "stopped"


def write_config(tmp_path: Path, source: str, bootstrap: str = "127.0.0.1:1", namespace: str = "t") -> Path:
    cfg = tmp_path / "cams.yaml"
    cfg.write_text(f"""bus:
  bootstrap: "{bootstrap}"
  namespace: "{namespace}"
grid:
  bbox: [-79.42, 43.63, -79.36, 43.67]
  cell_size_m: 250
cameras:
  - id: plaza
    source: {source}
    position: {{lon: -79.3871, lat: 43.6426}}
    fps: 5
    clip_seconds: 1
""")
    return cfg


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run ``imminence ARGS`` in this process (imports already paid), restoring the signal handlers it sets."""
    from imminence.cli import main

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = main(list(args))
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("corrupt", [False, True])
def test_worker_command_fails_clearly_on_a_bad_video(tmp_path: Path, corrupt: bool,
                                                    capsys: pytest.CaptureFixture) -> None:
    video = tmp_path / "gone.mp4"
    if corrupt:
        video.write_bytes(os.urandom(4096))
    cfg = write_config(tmp_path, str(video))
    code, _, err = cli(capsys, "worker", "--camera", "plaza", "--config", str(cfg))
    assert code == 1, err
    assert str(video) in err and "camera plaza" in err
    assert "Traceback" not in err


def test_worker_command_unknown_camera_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = write_config(tmp_path, str(CLIP))
    code, _, err = cli(capsys, "worker", "--camera", "plazza", "--config", str(cfg))
    assert code == 2 and "did you mean 'plaza'" in err and str(cfg) in err


@pytest.mark.slow
def test_worker_on_a_real_broker_flushes_on_sigterm(tmp_path: Path, kafka_bootstrap: str, unique_name: str) -> None:
    from streamer.kafka_bus import KafkaBus

    # a long file read at its own pace, stopped by SIGTERM mid-way
    long_video = tmp_path / "long.avi"
    cap = cv2.VideoCapture(str(CLIP))
    out = cv2.VideoWriter(str(long_video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (384, 288))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f, (384, 288)))
    for f in frames * 5:  # 30 s
        out.write(f)
    out.release()
    cfg = write_config(tmp_path, str(long_video), kafka_bootstrap, unique_name)
    proc = subprocess.Popen([sys.executable, "-m", "imminence.cli", "worker", "--camera", "plaza", "--config", str(cfg)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
    sub = bus.subscribe([schemas.TOPIC_INDICATORS, schemas.TOPIC_CAMERAS], from_beginning=True)
    events, states, keys = {}, [], set()

    def drain(until, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until():
            for r in sub.poll(timeout=1.0):
                keys.add(r.key)
                if r.topic == schemas.TOPIC_INDICATORS:
                    events[r.event.clip_index] = r.event
                else:
                    states.append(r.event.state)

    try:
        drain(lambda: len(events) >= 2, 60)  # running, and its SIGTERM handler installed
        assert len(events) >= 2, "the worker published no events"
        proc.send_signal(signal.SIGTERM)
        out_text, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out_text
        published = int(re.search(r"(\d+) events", out_text).group(1))
        drain(lambda: bool(states) and states[-1] == "stopped" and len(events) == published, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        bus.close()
    assert states[0] == "online" and states[-1] == "stopped", states
    # every clip up to the stop arrived, the partial last one included
    assert sorted(events) == list(range(published))
    assert keys == {"plaza"}  # keyed by camera id
    last = events[max(events)]
    assert last.stream_end_s - last.stream_start_s <= 1.0


def test_unreachable_camera_reports_reconnecting_and_keeps_trying() -> None:
    cam = camera(source="rtsp://user:pw@127.0.0.1:9/cam", open_timeout_s=1, reconnect_max_s=0.5)
    bus = InMemoryBus()
    w = CameraWorker(cam, DetectorsConfig(), bus, GRID, status_interval_s=0.5)
    t = threading.Thread(target=w.run)
    t.start()
    time.sleep(3.0)
    w.stop()
    t.join(10)
    assert not t.is_alive()
    statuses = bus.records(schemas.TOPIC_CAMERAS)
    reconnecting = [s for s in statuses if s.state == "reconnecting"]
    assert reconnecting and reconnecting[-1].reconnects >= 1
    assert "127.0.0.1:9/cam: cannot open stream" in (reconnecting[-1].message or "")
    assert all("pw@" not in (s.message or "") for s in statuses)  # credentials never published
    assert statuses[-1].state == "stopped" and not bus.records(schemas.TOPIC_INDICATORS)


def test_detector_handles_frames_smaller_than_its_window() -> None:
    det = OpenCVDetector()
    for shape in [(32, 32, 3), (100, 60, 3), (127, 200, 3)]:
        assert det.detect(np.full(shape, 128, np.uint8)) == []
    with pytest.raises(ValueError, match="BGR frame"):
        det.detect(np.zeros((10, 10), np.uint8))
