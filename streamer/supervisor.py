"""One process per camera under a watchdog (Frigate's process patterns).

:class:`Supervisor` starts a named process (``worker:<camera>``) per
:class:`ProcessSpec` and checks them every second:

* a process that exited cleanly (code 0: its file ended, or it was told to stop)
  is left alone and logged;
* a process that died (non-zero code, killed by a signal) is rebuilt from its
  spec and started again, logged with its exit code; after five restarts within
  a minute it is restarted only after a growing delay (5 s, 10 s, ... capped),
  so a camera that crashes at once does not spin;
* one camera's failure never touches the others;
* :meth:`Supervisor.stop` sets the one stop event, sends every process SIGTERM
  (each finishes its clip and flushes), joins each with a timeout, then kills
  what is left (bounded shutdown).

Stop travels to the children as SIGTERM rather than through a shared
``multiprocessing.Event``: setting such an event deadlocks once a process that
was waiting on it has died, which is exactly the case a watchdog must survive.

The target of a spec is any picklable top-level function ``target(stop_event,
*args)``; it runs in a fresh ``spawn``-ed interpreter, ignores SIGINT (the
supervisor handles Ctrl-C) and gets a ``threading.Event`` that SIGTERM sets.  The
``imminence workers`` command passes the camera worker entry point.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from prometheus_client import Counter, Gauge

from streamer.observability import child_process_exited

log = logging.getLogger(__name__)

RESTARTS = Counter("imminence_supervisor_restarts_total", "Supervised processes restarted after dying", ["process"])
UP = Gauge("imminence_supervisor_process_up", "1 while the supervised process runs", ["process"])


@dataclass
class ProcessSpec:
    """How to (re)build one supervised process."""

    name: str
    target: Callable[..., Any]
    args: tuple = ()


@dataclass
class _Child:
    spec: ProcessSpec
    process: Optional[mp.process.BaseProcess] = None
    restarts: deque = field(default_factory=deque)  # monotonic times of recent restarts
    total_restarts: int = 0
    next_start: float = 0.0
    done: bool = False  # exited cleanly: not restarted
    last_exitcode: Optional[int] = None


def _child_main(target: Callable[..., Any], args: tuple) -> None:
    """Entry of every child: a stop event that SIGTERM sets; Ctrl-C is the supervisor's to handle."""
    local = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: local.set())
    code = target(local, *args)
    raise SystemExit(int(code or 0))


class Supervisor:
    """Start, watch, restart and stop one process per spec."""

    def __init__(self, specs: list[ProcessSpec], *, restarts_per_minute: int = 5, backoff_s: float = 5.0,
                 backoff_max_s: float = 120.0, stop_timeout_s: float = 15.0, check_interval_s: float = 1.0) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"process names repeat: {names}")
        self.ctx = mp.get_context("spawn")
        self.stop_event = threading.Event()
        self.children = {s.name: _Child(s) for s in specs}
        self.restarts_per_minute = restarts_per_minute
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.stop_timeout_s = stop_timeout_s
        self.check_interval_s = check_interval_s
        self._stopping = False

    def _start(self, child: _Child) -> None:
        p = self.ctx.Process(target=_child_main, args=(child.spec.target, child.spec.args),
                             name=child.spec.name, daemon=False)
        p.start()
        child.process = p
        UP.labels(child.spec.name).set(1)
        log.info("started %s (pid %s)", child.spec.name, p.pid)

    def start(self) -> "Supervisor":
        for child in self.children.values():
            self._start(child)
        return self

    def check(self) -> None:
        """One watchdog pass: restart what died, leave what finished."""
        now = time.monotonic()
        for name, child in self.children.items():
            p = child.process
            if child.done or self._stopping:
                continue
            if p is not None and p.is_alive():
                continue
            if p is not None:
                code = p.exitcode
                child.last_exitcode = code
                UP.labels(name).set(0)
                child_process_exited(p.pid)
                p.close()
                child.process = None
                if code == 0:
                    child.done = True
                    log.info("%s exited cleanly; not restarting", name)
                    continue
                while child.restarts and now - child.restarts[0] > 60.0:
                    child.restarts.popleft()
                recent = len(child.restarts)
                delay = 0.0
                if recent >= self.restarts_per_minute:
                    delay = min(self.backoff_max_s, self.backoff_s * 2 ** (recent - self.restarts_per_minute))
                child.next_start = now + delay
                log.error("%s died (exit code %s); %d restart(s) in the last minute; restarting in %.0fs",
                          name, code, recent, delay)
            if now >= child.next_start:
                child.restarts.append(now)
                child.total_restarts += 1
                RESTARTS.labels(name).inc()
                self._start(child)

    def health(self) -> dict:
        """For :func:`streamer.observability.set_health`: ok while no child is dead and waiting for a restart."""
        procs = {}
        ok = True
        for name, c in self.children.items():
            running = c.process is not None and c.process.is_alive()
            procs[name] = {"running": running, "done": c.done, "restarts": c.total_restarts,
                           "last_exitcode": c.last_exitcode}
            ok = ok and (running or c.done)
        return {"ok": ok, "processes": procs}

    @property
    def alive(self) -> list[str]:
        return [n for n, c in self.children.items() if c.process is not None and c.process.is_alive()]

    @property
    def finished(self) -> bool:
        """True when every child exited cleanly."""
        return all(c.done for c in self.children.values())

    def run(self, until: Optional[threading.Event] = None) -> None:
        """Watch until ``until`` is set (or every child has exited cleanly), then stop."""
        try:
            while not (until is not None and until.is_set()) and not self.stop_event.is_set() \
                    and not self.finished:
                self.check()
                if until is not None:
                    until.wait(self.check_interval_s)
                else:
                    time.sleep(self.check_interval_s)
        finally:
            self.stop()

    def stop(self) -> None:
        """Set the stop event, SIGTERM every child, join with a timeout, then kill what is left."""
        if self._stopping:
            return
        self._stopping = True
        self.stop_event.set()
        running = [(n, c) for n, c in self.children.items() if c.process is not None]
        for _name, child in running:
            if child.process.is_alive():
                child.process.terminate()  # SIGTERM: the worker publishes its open clip and flushes
        deadline = time.monotonic() + self.stop_timeout_s
        for name, child in running:
            p = child.process
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                log.error("%s did not stop within %.0fs; killing", name, self.stop_timeout_s)
                p.kill()
                p.join(3)
            child.last_exitcode = p.exitcode
            child_process_exited(p.pid)
            log.info("%s stopped (exit code %s)", name, p.exitcode)
