"""The README's commands, run as a new user runs them, with default settings, show a replayed scene's cells.

Issue 17: ``imminence score``, ``imminence map`` and ``imminence web`` started
against ``imminence broker`` with nothing but a grid in their config, then a
generated scene recorded at a past date (the generator's default start, months
ago) replayed with ``imminence replay``: the console must draw the scene's
cells.  The same with one live camera (a real RTSP stream, ``imminence
worker``) publishing before and during the replay: both the live cell and the
replayed cells are drawn.  Real processes, a real broker, Debian's Chromium;
the test waits for what it expects on the page, by content, with a deadline.
It checks cell presence only, never which concepts the clips get.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Optional

import pytest
import yaml

from geo.grid import Grid, GridConfig
from streamer.broker import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
from tests.conftest import CHROMIUM  # noqa: E402
NONE = "#d9dde3"  # the page's colour of a cell without a value
SYSTEM_PYTHON = "/usr/bin/python3"
LIVE_POSITION = {"lon": -79.3871, "lat": 43.6525}  # inside the scene's study area, away from its cameras

if not Path(CHROMIUM).exists():
    msg = (f"\n{'!' * 78}\n!! README REPLAY TEST SKIPPED: {CHROMIUM} is missing. Install Debian's chromium "
           f"(make system-deps, as root).\n{'!' * 78}\n")
    if os.environ.get("CI"):
        raise RuntimeError(msg)
    print(msg, file=sys.stderr)
    pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: make system-deps)", allow_module_level=True)


def _imminence() -> list[str]:
    """The README's `.venv/bin/imminence` (the console script beside this interpreter), else `python -m`."""
    script = Path(sys.executable).parent / "imminence"
    return [str(script)] if script.exists() else [sys.executable, "-m", "imminence.cli"]


class Cmd:
    """One README command as its own process, output to a log file; stopped with SIGTERM like Ctrl-C."""

    def __init__(self, args: list[str], log: Path, cwd: Path = ROOT) -> None:
        self.args = args
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen(_imminence() + args, stdout=self._fh, stderr=subprocess.STDOUT, cwd=cwd,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`imminence {' '.join(self.args)}` still running after {timeout:.0f} s:\n"
                                 f"{self.text()[-3000:]}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()


def _run(args: list[str], log: Path, timeout: float, cwd: Path = ROOT) -> str:
    c = Cmd(args, log, cwd)
    try:
        rc = c.wait(timeout)
    finally:
        c.stop()
    assert rc == 0, f"`imminence {' '.join(args)}` exited {rc}:\n{c.text()[-3000:]}"
    return c.text()


def _wait(cond, timeout: float, what: str, *cmds: Cmd):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        for c in cmds:
            assert c.proc.poll() is None, f"`imminence {' '.join(c.args)}` exited early:\n{c.text()[-3000:]}"
        time.sleep(0.3)
    logs = "\n".join(f"--- imminence {' '.join(c.args)}\n{c.text()[-1500:]}" for c in cmds)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _gst_missing() -> Optional[str]:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')")
    r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["probe failed"])[-1]


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """`imminence scene generate DIR --seed 11`, small, recorded two months ago.

    At noon: without a concept model (the default) the crime models' imminence
    comes from the area's rate and the hour alone, and is 0 in the small hours.
    """
    out = tmp_path_factory.mktemp("readme") / "scene"
    start = (datetime.now(timezone.utc) - timedelta(days=60)).strftime("%Y-%m-%dT12:00:00Z")
    _run(["scene", "generate", str(out), "--cameras", "2", "--minutes", "1", "--seed", "11", "--size", "320x180",
          "--start", start], out.parent / "generate.log", 180)
    return out


@pytest.fixture
def stack(tmp_path: Path, scene: Path) -> Iterator[dict]:
    """A fresh `imminence broker`; the config holds only what a user must give (the grid, maybe a camera)."""
    cmds: list[Cmd] = []
    broker = Cmd(["broker", "--port", str(free_port())], tmp_path / "broker.log")
    cmds.append(broker)
    try:
        bootstrap = _wait(lambda: next((ln for ln in broker.text().splitlines() if ln.startswith("127.0.0.1:")),
                                       None), 60, "the broker's address", broker)
        grid_cfg = json.loads((scene / "manifest.json").read_text())["grid"]
        yield {"dir": tmp_path, "bootstrap": bootstrap, "grid_cfg": grid_cfg, "cmds": cmds,
               "grid": Grid.from_config(GridConfig(**grid_cfg))}
    finally:
        for c in reversed(cmds):
            c.stop()


def _start_services(st: dict, config: Path) -> str:
    """`imminence score`, `imminence map` and `imminence web` as in the README; returns the console's URL."""
    b, d = st["bootstrap"], st["dir"]
    port = free_port()
    for args, name in ((["score", "--config", str(config), "--bootstrap", b], "score"),
                       (["map", "--config", str(config), "--bootstrap", b, "--out", str(d / "map")], "map"),
                       (["web", "--bootstrap", b, "--config", str(config), "--port", str(port)], "web")):
        st["cmds"].append(Cmd(args, d / f"{name}.log"))
    url = f"http://127.0.0.1:{port}/"
    _wait(lambda: _http_ok(url + "api/me"), 90, "the console to answer", *st["cmds"])
    return url


def _coloured(page) -> set[str]:
    return set(page.eval_on_selector_all(f"#cell-index li[data-cell-id]:not([data-color='{NONE}'])",
                                         "els => els.map(e => e.dataset.cellId)"))


def _latest(url: str, cell: str) -> Optional[dict]:
    """The console's latest window of a cell (its own API, as the page's cell panel reads it)."""
    with urllib.request.urlopen(f"{url}api/cells/{cell}", timeout=5) as r:
        return json.loads(r.read())["latest"]


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.errors = errors
    return page


def _replay_and_expect_cells(browser, url: str, st: dict, scene: Path, *, live_cell: Optional[str] = None) -> None:
    """`imminence replay DIR`, then the page must draw the scene's cells (and the live camera's)."""
    grid: Grid = st["grid"]
    cams = json.loads((scene / "manifest.json").read_text())["videos"]
    starts = [datetime.fromisoformat(v["start"].replace("Z", "+00:00")) for v in cams]
    assert max(starts) < datetime.now(timezone.utc) - timedelta(days=1), starts  # a past recording
    scene_cells = {grid.cell_of(lon=v["position"]["lon"], lat=v["position"]["lat"]) for v in cams} - {None}
    assert scene_cells, cams
    _run(["replay", str(scene), "--speed", "max", "--bootstrap", st["bootstrap"]], st["dir"] / "replay.log", 300)
    page = _open(browser, url)
    try:
        # every scene camera's windows reach the console...
        latest = _wait(lambda: (lambda d: d if all(d.values()) else None)({c: _latest(url, c) for c in scene_cells}),
                       120, f"the scene cameras' cells {sorted(scene_cells)} in the console", *st["cmds"])
        # ...and each cell whose window has an imminence is drawn: cells, and no empty map
        hot = {c for c, w in latest.items() if max(w["imminence"].values()) > 0}
        assert hot, f"the crime models gave the scene's windows no imminence at all: {latest}"
        if live_cell is not None and max(_latest(url, live_cell)["imminence"].values()) > 0:
            hot.add(live_cell)
        got = _wait(lambda: (lambda c: c if hot <= c else None)(_coloured(page)), 60,
                    f"the cells {sorted(hot)} coloured on the page", *st["cmds"])
        assert page.locator("#map-notice").is_hidden()
        assert not page.errors, page.errors
        print(f"{len(got)} cells drawn; scene cameras' cells {sorted(scene_cells)} (with imminence {sorted(hot)})")
    finally:
        page.close()


def test_readme_commands_with_defaults_show_a_past_replay(browser, stack, scene) -> None:
    config = stack["dir"] / "config.yaml"
    config.write_text(yaml.safe_dump({"grid": stack["grid_cfg"]}, sort_keys=False))
    url = _start_services(stack, config)
    _replay_and_expect_cells(browser, url, stack, scene)


def test_readme_commands_with_a_live_camera_beside_the_replay(browser, stack, scene) -> None:
    missing = _gst_missing()
    if missing:
        msg = f"GStreamer RTSP server packages missing for {SYSTEM_PYTHON} ({missing}): LIVE + REPLAY TEST NOT RUN"
        warnings.warn(msg)
        print(f"\n*** {msg} ***", file=sys.stderr)
        pytest.skip(msg)
    port = free_port()
    server = subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "READY" in server.stdout.readline()
        config = stack["dir"] / "config.yaml"
        config.write_text(yaml.safe_dump({
            "grid": stack["grid_cfg"],
            "cameras": [{"id": "lobby", "source": f"rtsp://127.0.0.1:{port}/cam", "position": LIVE_POSITION,
                         "fps": 5, "clip_seconds": 2}]}, sort_keys=False))
        url = _start_services(stack, config)
        stack["cmds"].append(Cmd(["worker", "--camera", "lobby", "--config", str(config),
                                  "--bootstrap", stack["bootstrap"]], stack["dir"] / "worker.log"))
        live_cell = stack["grid"].cell_of(**LIVE_POSITION)
        assert live_cell is not None
        # the live camera's windows reach the console first (the scoring watermark is now "now"),
        # then the months-old replay joins it
        url_cell = lambda: _latest(url, live_cell)  # noqa: E731
        live = _wait(lambda: (lambda w: w if w and "lobby" in w["cameras"] else None)(url_cell()), 120,
                     f"the live camera's window in cell {live_cell}", *stack["cmds"])
        assert datetime.fromisoformat(live["window_end"]) > datetime.now(timezone.utc) - timedelta(minutes=5)
        _replay_and_expect_cells(browser, url, stack, scene, live_cell=live_cell)
        # still live after the replay: its window keeps coming, stamped from the wall clock
        assert datetime.fromisoformat(url_cell()["window_end"]) > datetime.now(timezone.utc) - timedelta(minutes=5)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
