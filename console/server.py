"""Assemble and serve the console: state + feed (Kafka or a run folder) + app, on uvicorn.

:func:`build_console` is what ``imminence web`` and the tests share, so the
browser tests run the same wiring as the command.  :class:`ServerThread` runs
uvicorn in a background thread (tests, benchmarks) and stops it cleanly.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import uvicorn
from fastapi import FastAPI

from console.app import create_app
from console.auth import Authenticator
from console.config import WebConfig
from console.state import BusFeed, ConsoleState, load_run_dir, tcp_probe
from geo.grid import Grid

log = logging.getLogger(__name__)


@dataclass
class Console:
    """A built console: its app, state, feed and what to close."""

    app: FastAPI
    state: ConsoleState
    feed: Optional[BusFeed] = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        for fn in self.closers:
            try:
                fn()
            except Exception:
                log.exception("console close step failed")
        self.closers.clear()


def default_analyzer_factory(detectors_cfg: Any = None) -> Optional[Callable[[], Any]]:
    """A factory of the camera workers' clip analyser, or None when the detectors stage lacks one."""
    try:
        import streamer.offline  # noqa: F401 - the workers' analysis path must be importable
    except ImportError:
        return None
    from console.uploads import UploadAnalyzer
    from detectors.config import DetectorsConfig

    cfg = detectors_cfg or DetectorsConfig()
    return lambda: UploadAnalyzer(cfg)


def build_console(web: WebConfig, *, grid: Optional[Grid] = None, bus: Any = None, bootstrap: Optional[str] = None,
                  run_dir: Optional[str | Path] = None, analyzer_factory: Optional[Callable[[], Any]] = None,
                  auth: Optional[Authenticator] = None, close_bus: bool = False) -> Console:
    """Wire a console to a bus (live) or a run folder (replayed results); checks the bind address first."""
    auth = auth or Authenticator(web)
    auth.check_bind(web.host)
    state = ConsoleState(web, grid)
    feed = None
    closers: list[Callable[[], None]] = []
    if run_dir is not None:
        counts = load_run_dir(state, run_dir)
        log.info("console serving run folder %s: %s", run_dir, counts)
    elif bus is not None:
        probe = tcp_probe(bootstrap) if bootstrap else None
        feed = BusFeed(state, bus, web.group, probe=probe).start()
        if close_bus:
            closers.append(lambda: bus.close(2.0))
    console = Console(app=None, state=state, feed=feed, closers=closers)  # type: ignore[arg-type]
    console.app = create_app(web, state, analyzer_factory=analyzer_factory, auth=auth)
    return console


class ConsoleServer(uvicorn.Server):
    """uvicorn that ends the open event streams first, so shutdown does not wait on them."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.config.app.state.stopping = True
        super().handle_exit(sig, frame)


def serve(app: FastAPI, host: str, port: int, *, tls_cert: Optional[str] = None, tls_key: Optional[str] = None) -> None:
    """Serve the console in the foreground until SIGINT/SIGTERM."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ssl_certfile=tls_cert,
                            ssl_keyfile=tls_key, timeout_graceful_shutdown=3)
    ConsoleServer(config).run()


class ServerThread:
    """uvicorn serving an app in a daemon thread (for tests and benchmarks)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        from streamer.broker import free_port

        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=2, **kwargs)
        self.app = app
        self.server = ConsoleServer(config)
        self.thread = threading.Thread(target=self.server.run, name="console-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.app.state.stopping = True  # end the event streams, then the server
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
