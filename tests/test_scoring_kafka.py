"""The scoring service end to end on a real broker (tansu): `imminence score` killed mid-stream and
restarted as a new process; every event is counted exactly once in the final per-cell results."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from streamer.kafka_bus import KafkaBus
from streamer.revisions import keep_latest
from streamer.schemas import TOPIC_CELLS, TOPIC_DLQ, TOPIC_INDICATORS, CellImminence, ConceptResult, DetectionSummary, IndicatorEvent

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)
CONCEPTS = ["normal", "sneaking", "violent_movement", "loitering", "item_seizure"]


def indicator(i: int) -> IndicatorEvent:
    cam = f"cam{i % 6}"
    cell = f"r{(i % 6) // 3}c{i % 3}"  # six cameras in six cells of a 4x4 grid
    start = T0 + timedelta(seconds=i // 6 * 2)  # each camera one clip every 2 s: 4 minutes for 720 events
    return IndicatorEvent(
        event_id=f"{cam}:{i // 6}", camera_id=cam, cell_id=cell, clip_index=i // 6, clip_start=start,
        clip_end=start + timedelta(seconds=2), stream_start_s=0, stream_end_s=2, frame_first=0, frame_last=9,
        captured_at=start, detections=DetectionSummary(frames=10),
        concept=ConceptResult(label=CONCEPTS[i % len(CONCEPTS)], score=0.8), replay=True)


def write_config(path: Path, bootstrap: str, ns: str) -> Path:
    path.write_text(f"""
bus:
  bootstrap: "{bootstrap}"
  namespace: "{ns}"
grid:
  bbox: [0, 0, 400, 400]
  crs: metric
  cell_size_m: 100
scoring:
  window_s: 60
  slide_s: 60
  allowed_lateness_s: 1000000   # replayed stream: never drop, the test is about loss and double counts
  emit_interval_s: 5         # the kill below lands between processing and the next publish+commit
  restore_idle_s: 2
  group: "{ns}-score"
""")
    return path


def start_service(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "imminence.cli", "score", "--config", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def read_cells(sub, state: dict, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for r in sub.poll(timeout=0.3, max_records=500):
            m = r.event
            assert isinstance(m, CellImminence)
            keep_latest(state, m)


@pytest.mark.slow
def test_score_service_killed_mid_stream_and_restarted_counts_each_event_once(kafka_bootstrap, unique_name,
                                                                             tmp_path) -> None:
    events = [indicator(i) for i in range(720)]
    first, second = events[0::2], events[1::2]  # both halves span every window: restarts split windows
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
    config = write_config(tmp_path / "score.yaml", kafka_bootstrap, unique_name)
    state: dict = {}
    proc = None
    try:
        cells = bus.subscribe([TOPIC_CELLS], None, from_beginning=True)
        for e in first:
            bus.publish(TOPIC_INDICATORS, e)
        bus.publish_raw(TOPIC_INDICATORS, b"{not an indicator", "cam0")  # must go to the DLQ, not stop anything
        assert bus.flush(20)
        proc = start_service(config, tmp_path / "one.log")
        deadline = time.monotonic() + 40
        while not state and time.monotonic() < deadline:
            read_cells(cells, state, 0.5)
        assert state, (tmp_path / "one.log").read_text()[-3000:]
        # the second half, plus producer retries of already published events, then a crash
        for e in second + first[:40]:
            bus.publish(TOPIC_INDICATORS, e)
        assert bus.flush(20)
        time.sleep(0.7)
        proc.kill()
        proc.wait(10)

        proc = start_service(config, tmp_path / "two.log")
        expected = {e.event_id for e in events}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            read_cells(cells, state, 0.5)
            if sum(m.events for m in state.values()) >= len(expected):
                break
        read_cells(cells, state, 2.0)  # anything still coming would show a double count
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log2 = (tmp_path / "two.log").read_text()
        stats = ast.literal_eval([ln for ln in log2.splitlines() if ln.startswith("{'events'")][-1])
        # the new instance rebuilt the windows, got the uncommitted events again, and dropped the repeats
        assert stats["restored_windows"] > 0 and stats["events"]["in"] >= len(second), stats
        assert stats["events"]["duplicate"] >= 40, stats
        ids = [i for m in state.values() for i in m.event_ids]
        assert len(ids) == len(set(ids)), "an event counted in two windows or twice"
        assert set(ids) == expected, f"missing {len(expected - set(ids))}"
        assert all(m.events == len(m.event_ids) for m in state.values())
        assert sum(m.events for m in state.values()) == 720
        # 6 cells x 4 one-minute windows, each with 30 clips of its camera
        assert len(state) == 24 and {m.events for m in state.values()} == {30}
        cells.close()
        dlq = bus.subscribe([TOPIC_DLQ], None, from_beginning=True)
        letters = []
        deadline = time.monotonic() + 15
        while not letters and time.monotonic() < deadline:
            letters += [r.event for r in dlq.poll(timeout=0.5)]
        dlq.close()
        assert letters and letters[0].source_topic == TOPIC_INDICATORS and "not JSON" in letters[0].reason
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        bus.close(5)
