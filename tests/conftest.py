"""Shared fixtures: a real Kafka-protocol broker (tansu) on loopback, and offline model settings."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `from tests.x import helper` works under plain `pytest` too
    sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"

# Never reach a hub for weights, fonts or settings.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo"))
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bootstrap", default=None, metavar="HOST:PORT",
                     help="run the broker tests that use `kafka_bootstrap` against this Kafka (e.g. the compose "
                          "file's Apache Kafka) instead of the embedded tansu broker")


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator["EmbeddedBroker"]:
    """One real tansu broker (memory storage) shared by the whole session."""
    from streamer.broker import EmbeddedBroker

    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    broker = EmbeddedBroker(log_file=log).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """``host:port`` of the session's real broker; use unique topic/group names per test.

    The embedded tansu broker, or the Kafka given with ``pytest --bootstrap HOST:PORT``.
    """
    given = request.config.getoption("--bootstrap")
    if given:
        return given
    return request.getfixturevalue("embedded_broker").bootstrap


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/group-safe name unique to the test (topics are shared across the session)."""
    import uuid

    return f"{request.node.name[:40].replace('[', '_').replace(']', '_')}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_broker(tmp_path: Path) -> Iterator["EmbeddedBroker"]:
    """A tansu broker of its own on S3 storage (a moto_server process that outlives broker crashes).

    ``s3_broker.kill()`` then ``s3_broker.start()`` keeps every message and committed offset.
    """
    from streamer.broker import EmbeddedBroker, S3Store

    store = S3Store().start()
    broker = EmbeddedBroker(storage=store.storage, env=store.env, log_file=tmp_path / "tansu-s3.log")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        store.stop()


@pytest.fixture
def tls_proxy(tmp_path: Path) -> Iterator[dict]:
    """A broker reached only through a stunnel4 TLS proxy: {"bootstrap", "cafile", "broker", "proxy"}.

    Skips, loudly, where stunnel4 is not installed (``make system-deps`` installs it).
    """
    from streamer.broker import EmbeddedBroker, TlsProxy, free_port

    if not TlsProxy.binary():
        import warnings

        warnings.warn("stunnel4 is missing: the Kafka TLS test is SKIPPED (apt-get install stunnel4)")
        pytest.skip("stunnel4 not installed: TLS to Kafka NOT tested (apt-get install stunnel4)")
    broker_port = free_port()
    proxy = TlsProxy(tmp_path / "tls", target_port=broker_port).start()
    broker = EmbeddedBroker(port=broker_port, advertised_port=proxy.port, log_file=tmp_path / "tansu-tls.log")
    try:
        broker.start()
        yield {"bootstrap": f"127.0.0.1:{proxy.port}", "cafile": str(proxy.cafile), "broker": broker,
               "proxy": proxy}
    finally:
        broker.stop()
        proxy.stop()


#: Debian's Chromium, started as the workplace's closed network needs (no background connections)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's page tests (Playwright, no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
