"""Metrics, health, structured logs and the privacy/safety rules, checked on the real processes.

Each test starts ``imminence --metrics-port 0 --log-format json ...`` as a subprocess
against the session's real broker (a ``bus.namespace`` of its own), reads the
bound port from the ``metrics: http://...`` line on stderr, scrapes ``/metrics``
and ``/healthz``, and reads the JSON logs it wrote.  The helpers here are shared
with ``tests/test_faults.py``.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional

import pytest
import yaml

from streamer.revisions import latest_per_window

ROOT = Path(__file__).resolve().parents[1]
GRID = {"bbox": [-79.42, 43.63, -79.36, 43.67], "crs": "lonlat", "cell_size_m": 250}
SECRET = "s3cr3t-pw"


# -- helpers shared with test_faults -------------------------------------------------------------
def write_config(path: Path, bootstrap: str, namespace: str, cameras: Iterable[dict] = (), **sections: dict) -> Path:
    """A root configuration file for the processes under test (grid, bus with its own namespace)."""
    cfg = {"bus": {"bootstrap": bootstrap, "namespace": namespace, **sections.pop("bus", {})},
           "grid": GRID, "cameras": list(cameras), **sections}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Proc:
    """``imminence --log-format json --metrics-port 0 ARGS`` in its own session, stderr to a log file."""

    def __init__(self, args: list[str], log: Path, *, metrics: bool = True, env: Optional[dict] = None) -> None:
        self.log = log
        cmd = [sys.executable, "-m", "imminence.cli", "--log-format", "json"]
        if metrics:
            cmd += ["--metrics-port", "0"]
        self.out = open(log.with_suffix(".out"), "wb")
        self.err = open(log, "wb")
        self.proc = subprocess.Popen(cmd + args, stdout=self.out, stderr=self.err, cwd=ROOT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                     start_new_session=True)
        self._url: Optional[str] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stdout(self) -> str:
        return self.log.with_suffix(".out").read_text(errors="replace")

    def url(self, timeout: float = 90.0) -> str:
        """Base URL of the metrics server, from its ``metrics: http://HOST:PORT/metrics`` line."""
        if self._url:
            return self._url
        m = wait_for(lambda: re.search(r"metrics: (http://[\d.]+:\d+)/metrics", self.text()), timeout,
                      f"metrics line of {self.log.name}", self)
        self._url = m.group(1)
        return self._url

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL the process and anything it spawned (its session), as a crash or cleanup would."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, then kill what is left; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        if self.alive() or _group_alive(self.proc.pid):
            self.kill_group()
        self.out.close()
        self.err.close()
        return self.proc.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_for(pred: Callable[[], object], timeout: float, what: str, proc: Optional[Proc] = None,
             every: float = 0.2) -> object:
    """Poll ``pred`` until it returns something truthy; fail naming ``what`` (and the process log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        if proc is not None and not proc.alive():
            got = pred()
            if got:
                return got
            pytest.fail(f"{what}: process exited with {proc.proc.returncode}; log tail:\n{proc.text()[-3000:]}")
        time.sleep(every)
    tail = f"\nlog tail:\n{proc.text()[-3000:]}" if proc is not None else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def metric(text: str, name: str, **labels: str) -> Optional[float]:
    """Sum of the samples of ``name`` whose labels include ``labels`` (other labels, e.g. pid, ignored)."""
    from prometheus_client.parser import text_string_to_metric_families

    total, found = 0.0, False
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
                found = True
    return total if found else None


def scrape_until(proc: Proc, name: str, minimum: float = 1.0, timeout: float = 60.0, **labels: str) -> str:
    """Scrape /metrics until ``name{labels}`` reaches ``minimum``; returns that scrape."""
    def ok() -> Optional[str]:
        code, body = http_get(proc.url() + "/metrics")
        if code == 200 and (metric(body, name, **labels) or 0) >= minimum:
            return body
        return None

    return wait_for(ok, timeout, f"{name}{labels} >= {minimum}", proc)  # type: ignore[return-value]


def json_lines(text: str) -> list[dict]:
    """Every log line as an object; the one plain ``metrics: URL`` line of the CLI is skipped."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("metrics: http"):
            continue
        out.append(json.loads(line))  # a line that is not one JSON object fails the test here
    return out


def make_event(camera: str, cell: Optional[str], index: int, start: datetime, concept: str = "loitering",
               run: str = "") -> "IndicatorEvent":
    from streamer.schemas import ConceptResult, DetectionSummary, IndicatorEvent

    t0 = start + timedelta(seconds=2 * index)
    return IndicatorEvent(
        event_id=f"{run}{camera}-{index}", camera_id=camera, cell_id=cell, clip_index=index, clip_start=t0,
        clip_end=t0 + timedelta(seconds=2), stream_start_s=2.0 * index, stream_end_s=2.0 * index + 2,
        frame_first=index * 10, frame_last=index * 10 + 9, captured_at=datetime.now(timezone.utc),
        published_at=datetime.now(timezone.utc), detections=DetectionSummary(frames=10),
        concept=ConceptResult(label=concept, score=0.9))


def table(title: str, rows: dict[str, object]) -> None:
    """Print a scenario's counts (shown with -s)."""
    width = max(len(k) for k in rows)
    print(f"\n== {title}")
    for k, v in rows.items():
        print(f"  {k:<{width}}  {v}")


def read_topic(bootstrap: str, namespace: str, topic: str, until: Callable[[list], bool], timeout: float = 60.0,
               what: str = "") -> list:
    """Every valid message of ``topic`` from the beginning, polled until ``until(messages)`` or the deadline."""
    from streamer.kafka_bus import KafkaBus

    bus = KafkaBus(bootstrap, namespace=namespace, create_topics=False)
    sub = bus.subscribe([topic], None, from_beginning=True)
    got: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            got += [r.event for r in sub.poll(timeout=0.5, max_records=1000)]
            if until(got):
                return got
    finally:
        sub.close()
        bus.close(5)
    pytest.fail(f"{topic}: condition not met within {timeout:.0f}s ({what}); {len(got)} messages read")


def latest_windows(cells: list) -> dict:
    """The highest revision per (cell, window): what a downstream reader keeps."""
    return latest_per_window(cells)


def counted_ids(cells: list) -> dict[str, int]:
    """How often each event id is counted across the latest window messages (1 = exactly once)."""
    counts: dict[str, int] = {}
    for m in latest_windows(cells).values():
        for eid in m.event_ids:
            counts[eid] = counts.get(eid, 0) + 1
    return counts


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 1-minute street scene (small frames), long enough to scrape a running worker."""
    from scenes.generate import generate_dataset

    out = generate_dataset(tmp_path_factory.mktemp("scene"), cameras=1, minutes=1.0, seed=3, fps=10,
                           size=(320, 180))
    return next(Path(out).glob("*.mp4"))


@pytest.fixture
def procs() -> Iterable[list[Proc]]:
    """Processes started by a test; stopped (then killed) whatever happens."""
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop(timeout=20)


def _grid():
    from geo.grid import Grid, GridConfig

    return Grid.from_config(GridConfig(**GRID))


# -- the tests ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_workers_serve_camera_metrics_health_and_json_logs(kafka_bootstrap, unique_name, tmp_path, scene_video,
                                                           procs) -> None:
    """`imminence workers`: per-camera counters of the child processes on the supervisor's /metrics,
    /healthz 200, JSON logs naming the camera, RTSP credentials masked in logs and camera events."""
    ns = unique_name
    rtsp = f"rtsp://viewer:{SECRET}@127.0.0.1:1/cam"
    cfg = write_config(tmp_path / "cfg.yaml", kafka_bootstrap, ns, cameras=[
        {"id": "cam-a", "source": str(scene_video), "position": {"lon": -79.39, "lat": 43.65}, "fps": 5,
         "clip_seconds": 1},
        {"id": "cam-rtsp", "source": rtsp, "position": {"lon": -79.38, "lat": 43.64}, "open_timeout_s": 1,
         "read_timeout_s": 1, "reconnect_max_s": 1},
    ])
    p = Proc(["workers", "--config", str(cfg), "--stop-timeout", "10"], tmp_path / "workers.log")
    procs.append(p)
    body = scrape_until(p, "imminence_camera_clips_total", 2, timeout=90, camera="cam-a")
    assert metric(body, "imminence_camera_frames_read_total", camera="cam-a") >= metric(
        body, "imminence_camera_frames_analysed_total", camera="cam-a") > 0
    assert metric(body, "imminence_stage_seconds_count", stage="inference") > 0
    assert metric(body, "imminence_stage_seconds_count", stage="decode") > 0
    assert metric(body, "imminence_supervisor_process_up", process="worker:cam-a") == 1
    assert metric(body, "imminence_bus_sent_total", topic="imminence.indicators") is not None
    # the unreachable camera is retried and counted, without ever killing its process
    wait_for(lambda: (metric(http_get(p.url() + "/metrics")[1], "imminence_camera_reconnects_total",
                             camera="cam-rtsp") or 0) >= 1, 60, "reconnects of cam-rtsp", p)
    code, health = http_get(p.url() + "/healthz")
    assert code == 200, health
    report = json.loads(health)
    assert report["supervisor"]["processes"]["worker:cam-rtsp"]["running"] is True

    status = read_topic(kafka_bootstrap, ns, "imminence.cameras",
                        lambda ms: any(m.camera_id == "cam-rtsp" and m.state == "reconnecting" for m in ms),
                        what="cam-rtsp reconnecting")
    p.stop()
    logs = p.text()
    lines = json_lines(logs)
    assert {ln.get("camera") for ln in lines} >= {"cam-a", "cam-rtsp"}
    assert all(ln.get("camera") for ln in lines if ln.get("process", "").startswith("worker:"))
    assert SECRET not in logs and SECRET not in p.stdout()
    assert "***:***@127.0.0.1:1/cam" in logs  # the URL is still named, masked
    assert all(SECRET not in m.model_dump_json() for m in status)


@pytest.mark.slow
def test_worker_health_is_503_while_its_source_is_unreachable(kafka_bootstrap, unique_name, tmp_path,
                                                               procs) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", kafka_bootstrap, unique_name, cameras=[
        {"id": "lobby", "source": f"rtsp://admin:{SECRET}@127.0.0.1:1/cam", "position": {"lon": -79.39, "lat": 43.65},
         "open_timeout_s": 1, "read_timeout_s": 1, "reconnect_max_s": 1}])
    p = Proc(["worker", "--camera", "lobby", "--config", str(cfg)], tmp_path / "worker.log")
    procs.append(p)

    def unhealthy() -> Optional[dict]:
        code, body = http_get(p.url() + "/healthz")
        return json.loads(body) if code == 503 else None

    report = wait_for(unhealthy, 60, "/healthz 503", p)
    assert report["ok"] is False and report["camera:lobby"]["state"] == "reconnecting"
    body = http_get(p.url() + "/metrics")[1]
    assert metric(body, "imminence_camera_online", camera="lobby") == 0
    p.stop()
    lines = json_lines(p.text())
    # from the moment the camera's worker starts, every line of the process names it
    first = next(i for i, ln in enumerate(lines) if ln.get("camera"))
    assert lines[first:] and all(ln.get("camera") == "lobby" for ln in lines[first:])
    assert all(ln["logger"] == "streamer.observability" for ln in lines[:first])
    assert SECRET not in p.text()


@pytest.mark.slow
def test_score_and_map_serve_metrics_and_health(kafka_bootstrap, unique_name, tmp_path, procs) -> None:
    """Score and map on the real broker: event outcomes, DLQ, model versions, lag, snapshots; health 200."""
    from streamer.kafka_bus import KafkaBus
    from streamer.schemas import TOPIC_INDICATORS

    ns = unique_name
    cfg = write_config(tmp_path / "cfg.yaml", kafka_bootstrap, ns,
                       scoring={"group": f"{ns}-score", "emit_interval_s": 0.3, "restore_idle_s": 1.0},
                       map={"group": f"{ns}-map", "interval_s": 1.0, "out_dir": str(tmp_path / "map")})
    grid = _grid()
    cell = grid.cell_of(lon=-79.39, lat=43.65)
    score = Proc(["score", "--config", str(cfg)], tmp_path / "score.log")
    mapper = Proc(["map", "--config", str(cfg), "--out", str(tmp_path / "map")], tmp_path / "map.log")
    procs += [score, mapper]
    score.url(), mapper.url()
    bus = KafkaBus(kafka_bootstrap, namespace=ns)
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    events = [make_event("cam-a", cell, i, start, "violent_movement" if i % 2 else "loitering") for i in range(12)]
    for ev in events:
        bus.publish(TOPIC_INDICATORS, ev)
    bus.publish_raw(TOPIC_INDICATORS, b"\x00\xffnot json", key="cam-a")
    assert bus.flush(30)
    bus.close()

    body = scrape_until(score, "imminence_scoring_events_total", 12, outcome="in")
    assert metric(body, "imminence_scoring_events_total", outcome="added") == 12
    scrape_until(score, "imminence_dlq_total", 1, topic="imminence.indicators")
    body = scrape_until(score, "imminence_scoring_cells_published_total", 1)
    assert metric(body, "imminence_model_info", model="anfis-robbery") == 1
    body = scrape_until(score, "imminence_consumer_lag", 0, timeout=30, group=f"{ns}-score",
                        topic="imminence.indicators")
    code, health = http_get(score.url() + "/healthz")
    assert code == 200 and json.loads(health)["scoring"]["events"]["added"] == 12

    body = scrape_until(mapper, "imminence_map_cell_updates_total", 1, outcome="applied")
    scrape_until(mapper, "imminence_map_snapshots_total", 1)
    code, health = http_get(mapper.url() + "/healthz")
    assert code == 200 and json.loads(health)["map"]["cells_live"] == 1
    assert http_get(mapper.url() + "/nowhere")[0] == 404
    # the dead letter is logged by topic/partition/offset, as JSON, never with its payload
    warn = [ln for ln in json_lines(score.text()) if "invalid record" in ln.get("msg", "")]
    assert warn and "not json" not in score.text()


def test_json_log_lines_carry_context_and_mask_secrets(capsys) -> None:
    import logging

    from imminence.logs import add_log_context, setup_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("INFO", "json")
        add_log_context(camera="gate-3")
        log = logging.getLogger("imminence.test")
        log.warning("opening rtsp://u:%s@10.0.0.1/stream", SECRET)
        log.info("cell update", extra={"cell": "r1c2", "camera": "gate-4"})
        err = capsys.readouterr().err
    finally:  # the handler wrote to capsys's stream: put pytest's own handlers back
        root.handlers[:], level = saved
        root.setLevel(level)
    first, second = (json.loads(x) for x in err.strip().splitlines())
    assert first["camera"] == "gate-3" and SECRET not in err and "***:***@10.0.0.1" in first["msg"]
    assert second["camera"] == "gate-4" and second["cell"] == "r1c2"  # explicit context wins


def test_manifest_paths_cannot_escape_the_dataset_folder(tmp_path) -> None:
    from streamer.dataset import Dataset, DatasetError

    (tmp_path / "outside.mp4").write_bytes(b"x")
    ds = tmp_path / "ds"
    ds.mkdir()
    for bad in ("../outside.mp4", str(tmp_path / "outside.mp4"), "sub/../../outside.mp4"):
        manifest = {"schema": "imminence.dataset/1", "name": "evil", "videos": [
            {"file": bad, "camera_id": "c1", "position": {"lon": -79.39, "lat": 43.65},
             "start": "2026-05-01T21:00:00Z"}]}
        (ds / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(DatasetError, match="escapes the dataset folder|absolute paths"):
            Dataset(ds)
    res = subprocess.run([sys.executable, "-m", "imminence.cli", "replay", str(ds), "--bootstrap", "127.0.0.1:1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2 and "escapes the dataset folder" in res.stderr


class _Boom:
    """A pickle payload that would run code (touch a file) when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (Path.touch, (self.marker,))


def test_model_files_load_without_executing_code(tmp_path) -> None:
    """Forecast checkpoints go through torch.load(weights_only=True); our own models are JSON."""
    import torch

    from inference.crime_models import CrimeModelError, load_models
    from mapping.forecast.train import ForecastError, Forecaster

    marker = tmp_path / "pwned"
    ck = tmp_path / "evil.pt"
    torch.save({"version": 1, "payload": _Boom(marker)}, ck)
    with pytest.raises(ForecastError, match="not a forecast checkpoint"):
        Forecaster.load(ck)
    assert not marker.exists()

    folder = tmp_path / "models"
    folder.mkdir()
    for crime in ("robbery", "burglary", "larceny", "battery"):
        (folder / f"{crime}.json").write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(CrimeModelError):
        load_models(folder)
    assert not marker.exists()
    # every torch.load in the project's own code asks for weights only
    calls = []
    for pkg in ("streamer", "detectors", "inference", "mapping", "console", "imminence"):
        for f in (ROOT / pkg).rglob("*.py"):
            calls += [(f, ln) for ln in f.read_text().splitlines() if "torch.load(" in ln]
    assert calls, "the forecast loader should use torch.load"
    assert all("weights_only=True" in ln for _, ln in calls), calls


def test_health_endpoint_reports_failing_checks_as_503() -> None:
    from streamer.observability import serve, set_health, _health_checks

    saved = dict(_health_checks)
    server = serve(0)
    try:
        set_health("alpha", lambda: {"ok": True})
        url = f"http://127.0.0.1:{server.port}"
        assert http_get(url + "/healthz")[0] == 200
        set_health("beta", lambda: (_ for _ in ()).throw(RuntimeError("broker away")))
        code, body = http_get(url + "/healthz")
        assert code == 503 and json.loads(body)["beta"] == {"ok": False, "error": "broker away"}
    finally:
        server.close()
        _health_checks.clear()
        _health_checks.update(saved)


def test_child_process_metrics_are_merged(tmp_path, monkeypatch) -> None:
    """A supervised child's counters (prometheus multiprocess files) appear on the parent's /metrics."""
    import streamer.worker  # noqa: F401 - registers the same counter in this process

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    code = ("from prometheus_client import Counter; "
            "Counter('imminence_camera_clips_total', 'x', ['camera']).labels('child-cam').inc(3)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    from streamer.observability import metrics_text

    text = metrics_text().decode()
    assert metric(text, "imminence_camera_clips_total", camera="child-cam") == 3
    assert text.count("# TYPE imminence_camera_clips_total counter") == 1


@pytest.mark.slow
def test_console_health_follows_its_broker(unique_name, tmp_path, procs) -> None:
    """`imminence web`: /healthz is 503 while the console's broker is away and 200 once it is reachable."""
    from streamer.broker import EmbeddedBroker, free_port

    port = free_port()
    cfg = write_config(tmp_path / "cfg.yaml", f"127.0.0.1:{port}", unique_name, web={"port": free_port()})
    web = Proc(["web", "--config", str(cfg)], tmp_path / "web.log")
    procs.append(web)

    def health(code: int) -> Optional[dict]:
        got, body = http_get(web.url() + "/healthz")
        return json.loads(body) if got == code else None

    down = wait_for(lambda: health(503), 60, "console /healthz 503 without a broker", web)
    assert down["console"]["stale"] is True
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu.log").start()
    try:
        up = wait_for(lambda: health(200), 60, "console /healthz 200 once the broker is up", web)
    finally:
        web.stop()
        broker.stop()
    assert up["console"]["connected"] is True
