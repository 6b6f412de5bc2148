"""Subscribing: the `events()` helper (in-memory and Kafka) and `imminence subscribe` JSON lines."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamer import schemas
from streamer.bus import InMemoryBus
from streamer.broker import free_port
from streamer.kafka_bus import KafkaBus
from streamer.subscribe import events, resolve_topic
from tests.test_kafka_bus import indicator

ROOT = Path(__file__).resolve().parents[1]
IMMINENCE = [sys.executable, "-m", "imminence.cli"]
IND = schemas.TOPIC_INDICATORS


def test_resolve_topic_accepts_short_names_and_names_the_known_ones():
    assert resolve_topic("indicators") == IND and resolve_topic(IND) == IND
    with pytest.raises(ValueError, match="imminence.cells"):
        resolve_topic("indicator")


def test_events_yields_validated_dedups_stops_at_max_and_commits_only_what_it_handed_out():
    bus = InMemoryBus(partitions=1)
    for i in [0, 1, 1, 2, 3, 4]:  # one repeat
        bus.publish(IND, indicator(i, camera="cam0"))
    bus.publish_raw(IND, b"not json", key="cam0")
    got = [r.event.event_id for r in events(IND, bus=bus, group="g", from_beginning=True, max_events=3,
                                            idle_timeout=1)]
    assert got == ["e-0", "e-1", "e-2"]
    # The group continues after the last record handed out; the invalid one went to the DLQ.
    rest = [r.event.event_id for r in events("indicators", bus=bus, group="g", idle_timeout=0.3)]
    assert rest == ["e-3", "e-4"]
    assert bus.stats().dead_lettered == 1
    assert [d.reason[:17] for d in bus.records(schemas.TOPIC_DLQ)] == ["value is not JSON"]


def test_events_retries_a_broker_error_with_the_consumer_loops_backoff():
    """events() polls through streamer.consume.ConsumerLoop: a failed poll is backed off and retried, not raised."""
    from tests.test_map_service import FlakyBus  # an in-memory bus whose polls fail while `down` is set

    bus = FlakyBus()
    bus.publish(IND, indicator(0, camera="cam0"))
    bus.down.set()
    threading.Timer(0.2, bus.down.clear).start()
    t = time.monotonic()
    assert [r.event.event_id for r in events(IND, bus=bus, from_beginning=True, max_events=1)] == ["e-0"]
    assert bus.failures >= 1 and 0.4 < time.monotonic() - t < 3  # the loop's backoff (0.5 s first), no error


def test_events_idle_timeout_ends_an_empty_stream():
    t = time.monotonic()
    assert list(events(IND, bus=InMemoryBus(), idle_timeout=0.3)) == []
    assert time.monotonic() - t < 3


def _publish(bootstrap: str, ns: str, n: int) -> None:
    bus = KafkaBus(bootstrap, namespace=ns)
    try:
        for i in range(n):
            bus.publish(IND, indicator(i))
        assert bus.flush(20)
    finally:
        bus.close()


def test_events_reads_from_kafka(kafka_bootstrap, unique_name):
    _publish(kafka_bootstrap, unique_name, 5)
    from streamer.config import BusConfig

    cfg = BusConfig(bootstrap=kafka_bootstrap, namespace=unique_name)
    got = [r.event.event_id for r in events(IND, config=cfg, from_beginning=True, max_events=5, idle_timeout=20)]
    assert sorted(got) == [f"e-{i}" for i in range(5)]


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `imminence ...` in this process (the console script's own logging set-up left out)."""
    import imminence.cli

    monkeypatch.setattr(imminence.cli, "setup_logging", lambda *a, **k: None)

    def run(*argv: str) -> tuple[int, str, str]:
        rc = imminence.cli.main(list(argv))
        cap = capsys.readouterr()
        return rc, cap.out, cap.err

    return run


def test_subscribe_command_prints_json_lines_and_exits_after_max(kafka_bootstrap, unique_name, cli):
    _publish(kafka_bootstrap, unique_name, 6)
    base = ["subscribe", "indicators", "--bootstrap", kafka_bootstrap, "--namespace", unique_name,
            "--from-beginning"]
    # The real console process: its stdout is what jq reads.
    res = subprocess.run([*IMMINENCE, *base, "--max", "4"], capture_output=True, text=True, cwd=ROOT, timeout=90)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 4
    objs = [json.loads(line) for line in lines]
    assert all(o["schema"] == "imminence.indicator/1" for o in objs)
    assert all(schemas.decode(IND, line).event_id == o["event_id"] for line, o in zip(lines, objs))

    rc, out, err = cli(*base, "--meta", "--idle-timeout", "3")
    assert rc == 0, err
    metas = [json.loads(line) for line in out.splitlines()]
    assert len(metas) == 6
    assert {m["topic"] for m in metas} == {IND}
    assert all(m["key"] == m["value"]["camera_id"] and m["offset"] >= 0 for m in metas)


@pytest.mark.slow
def test_subscribe_command_with_a_group_continues_where_it_stopped(kafka_bootstrap, unique_name, cli):
    _publish(kafka_bootstrap, unique_name, 5)
    base = ["subscribe", IND, "--bootstrap", kafka_bootstrap, "--namespace", unique_name,
            "--group", f"{unique_name}-g", "--from-beginning"]
    rc1, out1, err1 = cli(*base, "--max", "2")
    assert rc1 == 0, err1
    rc2, out2, err2 = cli(*base, "--max", "3")
    assert rc2 == 0, err2
    ids = [json.loads(x)["event_id"] for x in out1.splitlines() + out2.splitlines()]
    assert sorted(ids) == [f"e-{i}" for i in range(5)]


def test_subscribe_command_bad_input_gets_one_clear_message(cli, monkeypatch):
    rc, out, err = cli("subscribe", "nope", "--bootstrap", "127.0.0.1:1")
    assert rc == 2 and "unknown topic 'nope'" in err and out == ""
    monkeypatch.delenv("IMMINENCE_BOOTSTRAP", raising=False)
    rc, out, err = cli("subscribe", "cells")
    assert rc == 2 and "no broker address" in err
    rc, out, err = cli("subscribe", "cells", "--max", "0", "--bootstrap", "127.0.0.1:1")
    assert rc == 2 and "--max must be positive" in err
    rc, out, err = cli("subscribe", "cells", "--bootstrap", f"127.0.0.1:{free_port()}", "--max", "1")
    assert rc == 1 and "cannot read from the broker" in err and out == ""


def test_subscribe_command_takes_the_bus_section_of_a_config_file(kafka_bootstrap, unique_name, cli, tmp_path):
    _publish(kafka_bootstrap, unique_name, 2)
    good = tmp_path / "imminence.yaml"
    good.write_text(f"bus:\n  bootstrap: {kafka_bootstrap}\n  namespace: {unique_name}\n")
    rc, out, err = cli("subscribe", "indicators", "--config", str(good), "--from-beginning", "--max", "2")
    assert rc == 0, err
    assert sorted(json.loads(x)["event_id"] for x in out.splitlines()) == ["e-0", "e-1"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"bus:\n  bootstrap: {kafka_bootstrap}\n  outbox: 10\n")
    rc, out, err = cli("subscribe", "indicators", "--config", str(bad), "--max", "1")
    assert rc == 2 and out == ""
    assert f"{bad}:3" in err and "outbox" in err
