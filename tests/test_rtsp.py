"""Live RTSP cameras against a real local RTSP server (GStreamer): drop, stall and recovery under the supervisor.

Two servers, two cameras, one ``imminence workers`` supervisor, a real broker.
Camera ``a``'s server is killed (the worker must go ``reconnecting`` and come
back ``online`` with new events once the server returns, without a process
restart), then SIGSTOPped (a stall: the read timeout or the watchdog must
notice and reconnect after SIGCONT).  Camera ``b`` must keep publishing
throughout.  Needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0 for the
system python; skipped loudly without them.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from streamer import schemas

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def _gst_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')")
    r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    return None if r.returncode == 0 else r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "probe failed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RTSPServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> "RTSPServer":
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        assert "READY" in line, f"RTSP server did not start: {line}"
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)


class Watch:
    """Reads camera states and events from the broker as they arrive."""

    def __init__(self, bootstrap: str, namespace: str) -> None:
        from streamer.kafka_bus import KafkaBus

        self.bus = KafkaBus(bootstrap, namespace=namespace)
        self.sub = self.bus.subscribe([schemas.TOPIC_INDICATORS, schemas.TOPIC_CAMERAS], from_beginning=True)
        self.states: dict[str, list[tuple[datetime, str]]] = {"a": [], "b": []}
        self.events: dict[str, list[schemas.IndicatorEvent]] = {"a": [], "b": []}
        self.last: dict[str, schemas.CameraStatus] = {}

    def pump(self, timeout: float = 0.5) -> None:
        for r in self.sub.poll(timeout=timeout):
            if r.topic == schemas.TOPIC_CAMERAS:
                self.states[r.event.camera_id].append((r.event.at, r.event.state))
                self.last[r.event.camera_id] = r.event
            else:
                self.events[r.event.camera_id].append(r.event)

    def until(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if cond():
                return
        raise AssertionError(f"timed out waiting for {what}; states a={self.states['a'][-5:]} "
                             f"events a={len(self.events['a'])} b={len(self.events['b'])}")

    def state_since(self, cam: str, since: datetime, state: str) -> bool:
        return any(at >= since and s == state for at, s in self.states[cam])

    def events_since(self, cam: str, since: datetime) -> int:
        return sum(e.captured_at >= since for e in self.events[cam])

    def close(self) -> None:
        self.sub.close()
        self.bus.close()


def test_rtsp_drop_stall_and_recovery(tmp_path: Path, kafka_bootstrap: str, unique_name: str) -> None:
    missing = _gst_missing()
    if missing:
        msg = f"GStreamer RTSP server packages missing for {SYSTEM_PYTHON} ({missing}): RTSP FAULT TESTS NOT RUN"
        warnings.warn(msg)
        print(f"\n*** {msg} ***", file=sys.stderr)
        pytest.skip(msg)
    server_a, server_b = RTSPServer(_free_port()).start(), RTSPServer(_free_port()).start()
    cfg = tmp_path / "rtsp.yaml"
    cams = "".join(f"""  - id: {cid}
    source: {srv.url}
    position: {{lon: -79.3871, lat: 43.6426}}
    fps: 5
    clip_seconds: 1
    open_timeout_s: 3
    read_timeout_s: 2
    watchdog_s: 4
    reconnect_max_s: 1
""" for cid, srv in (("a", server_a), ("b", server_b)))
    cfg.write_text(f"""bus:
  bootstrap: "{kafka_bootstrap}"
  namespace: "{unique_name}"
grid:
  bbox: [-79.42, 43.63, -79.36, 43.67]
cameras:
{cams}""")
    workers = subprocess.Popen([sys.executable, "-m", "imminence.cli", "workers", "--config", str(cfg)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watch = Watch(kafka_bootstrap, unique_name)
    try:
        now = lambda: datetime.now(timezone.utc)  # noqa: E731
        watch.until(lambda: len(watch.events["a"]) >= 2 and len(watch.events["b"]) >= 2, 90, "both cameras online")

        # 1. the server dies: reconnecting, then online again once it is back; b never stops
        t_kill = now()
        server_a.kill()
        watch.until(lambda: watch.state_since("a", t_kill, "reconnecting"), 20, "a reconnecting after the kill")
        b_before = len(watch.events["b"])
        time.sleep(1.5)  # a stays down a while
        t_back = now()
        server_a.start()
        watch.until(lambda: watch.state_since("a", t_back, "online") and watch.events_since("a", t_back) >= 1, 40,
                    "a online with new events after the server came back")
        assert len(watch.events["b"]) > b_before + 2, "camera b stopped while a was down"

        # 2. the server stalls (SIGSTOP): the read timeout/watchdog reconnects; SIGCONT: back online
        t_stall = now()
        server_a.signal(signal.SIGSTOP)
        watch.until(lambda: watch.state_since("a", t_stall, "reconnecting"), 20, "a reconnecting after a stall")
        b_before = len(watch.events["b"])
        t_cont = now()
        server_a.signal(signal.SIGCONT)
        watch.until(lambda: watch.state_since("a", t_cont, "online") and watch.events_since("a", t_cont) >= 1, 40,
                    "a online with new events after the stall ended")
        assert len(watch.events["b"]) > b_before, "camera b stopped while a was stalled"
        assert not any(s == "reconnecting" for _, s in watch.states["b"])
        a_ids = [e.event_id for e in watch.events["a"]]
        assert len(set(a_ids)) == len(a_ids)
        assert watch.last["a"].reconnects >= 2 and watch.last["b"].reconnects == 0
    finally:
        workers.send_signal(signal.SIGTERM)
        try:
            out, _ = workers.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            workers.kill()
            out, _ = workers.communicate()
        server_a.kill()
        server_b.kill()
        watch.close()
    assert workers.returncode == 0, out[-3000:]
    # each worker ran in one process the whole time: the supervisor never had to restart one
    assert out.count("started worker:a") == 1 and out.count("started worker:b") == 1, out[-3000:]


def test_watchdog_replaces_a_reader_stuck_in_read() -> None:
    """A stall shorter than the read timeout but longer than the watchdog: the watchdog must act."""
    missing = _gst_missing()
    if missing:
        msg = f"GStreamer RTSP server packages missing for {SYSTEM_PYTHON} ({missing}): RTSP WATCHDOG TEST NOT RUN"
        warnings.warn(msg)
        pytest.skip(msg)
    from streamer.sources import LiveSource

    server = RTSPServer(_free_port()).start()
    src = LiveSource(server.url, open_timeout_s=3, read_timeout_s=60, watchdog_s=2, reconnect_max_s=0.5)
    src.open()

    def wait(cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            src.read(timeout=0.2)
        return cond()

    try:
        assert wait(lambda: src.state == "online" and src.frames_read > 5, 30), src.last_error
        server.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        assert wait(lambda: src.state == "reconnecting", 10), "the watchdog did not notice the stall"
        error = src.last_error or ""
        assert time.monotonic() - t0 < 8  # long before the 60 s read timeout
        assert "no frame for 2s (stalled stream)" in error, error
        server.signal(signal.SIGCONT)
        before = src.frames_read
        assert wait(lambda: src.state == "online" and src.frames_read > before + 5, 30), src.last_error
        assert src.reconnects >= 1
    finally:
        src.close()
        server.kill()
