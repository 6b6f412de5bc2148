"""Shared fixtures: a real Kafka-protocol broker (tansu) on loopback, and offline model settings."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"

# Never reach a hub for weights, fonts or settings.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo"))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator["EmbeddedBroker"]:
    """One real tansu broker (memory storage) shared by the whole session."""
    from streamer.broker import EmbeddedBroker

    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    broker = EmbeddedBroker(log_file=log).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(embedded_broker) -> str:
    """``host:port`` of the session's real broker; use unique topic/group names per test."""
    return embedded_broker.bootstrap


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/group-safe name unique to the test (topics are shared across the session)."""
    import uuid

    return f"{request.node.name[:40].replace('[', '_').replace(']', '_')}-{uuid.uuid4().hex[:8]}"
