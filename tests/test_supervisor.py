"""Supervisor: restart what crashes (with backoff), leave what exits cleanly, never disturb the others, bounded stop."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from streamer.supervisor import ProcessSpec, Supervisor


# Targets run in spawned children: top-level functions of this module.
def crash(stop, marker: str) -> int:
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return 3


def finish(stop, marker: str) -> int:
    Path(marker).write_text("done")
    return 0


def serve(stop, marker: str) -> int:
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    while not stop.wait(0.1):
        pass
    Path(marker + ".stopped").write_text("clean")
    return 0


def stubborn(stop, marker: str) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(marker).write_text("up")
    while True:
        time.sleep(0.1)


def wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.mark.slow
def test_crashes_restart_with_backoff_and_others_keep_running(tmp_path: Path) -> None:
    crash_m, done_m, serve_m = (str(tmp_path / n) for n in ("crash", "done", "serve"))
    sup = Supervisor([ProcessSpec("worker:crashy", crash, (crash_m,)),
                      ProcessSpec("worker:short", finish, (done_m,)),
                      ProcessSpec("worker:steady", serve, (serve_m,))],
                     restarts_per_minute=2, backoff_s=30.0, stop_timeout_s=10, check_interval_s=0.2)
    sup.start()
    try:
        steady_pid = sup.children["worker:steady"].process.pid
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and sup.children["worker:crashy"].total_restarts < 2:
            sup.check()
            time.sleep(0.2)
        crashy = sup.children["worker:crashy"]
        assert crashy.total_restarts == 2 and crashy.last_exitcode == 3
        assert wait_for(lambda: len(Path(crash_m).read_text().split()) == 3, 20)  # first start + 2 restarts
        # after `restarts_per_minute` restarts it waits (backoff) instead of spinning
        for _ in range(15):
            sup.check()
            time.sleep(0.2)
        assert crashy.total_restarts == 2 and crashy.next_start - time.monotonic() > 20
        assert len(Path(crash_m).read_text().split()) == 3
        # the clean exit is left alone; the steady worker never stopped
        short = sup.children["worker:short"]
        assert short.done and short.last_exitcode == 0 and Path(done_m).read_text() == "done"
        steady = sup.children["worker:steady"]
        assert steady.process.is_alive() and steady.process.pid == steady_pid and steady.total_restarts == 0
    finally:
        sup.stop()
    assert Path(serve_m + ".stopped").read_text() == "clean"  # SIGTERM became a clean stop
    assert sup.children["worker:steady"].last_exitcode == 0


@pytest.mark.slow
def test_stop_is_bounded_and_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    marker = str(tmp_path / "stubborn")
    sup = Supervisor([ProcessSpec("worker:stubborn", stubborn, (marker,))], stop_timeout_s=1.0)
    sup.start()
    assert wait_for(lambda: Path(marker).exists(), 20)
    t0 = time.monotonic()
    sup.stop()
    assert time.monotonic() - t0 < 6
    assert sup.children["worker:stubborn"].last_exitcode == -signal.SIGKILL


def test_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="repeat"):
        Supervisor([ProcessSpec("worker:a", finish, ("x",)), ProcessSpec("worker:a", finish, ("y",))])
