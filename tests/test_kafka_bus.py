"""KafkaBus against a real tansu broker: delivery, groups, redelivery, dead letters, faults, TLS.

Every test uses its own namespace (topic prefix), so the session broker is shared
safely.  Group joins take about 5 s on tansu: tests wait for the records they
expect, by content, with a deadline; they never sleep and hope.
"""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from streamer import schemas
from streamer.broker import EmbeddedBroker, free_port
from streamer.bus import Received
from streamer.config import BusConfig
from streamer.kafka_bus import KafkaBus, describe, security_options, wire_topic

ROOT = Path(__file__).resolve().parents[1]
IND = schemas.TOPIC_INDICATORS
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def indicator(i: int, camera: str | None = None, tag: str = "e") -> schemas.IndicatorEvent:
    start = T0 + timedelta(seconds=2 * i)
    return schemas.IndicatorEvent(
        event_id=f"{tag}-{i}", camera_id=camera or f"cam{i % 6}", cell_id="r1c1", clip_index=i,
        clip_start=start, clip_end=start + timedelta(seconds=2), stream_start_s=2.0 * i,
        stream_end_s=2.0 * i + 2, frame_first=10 * i, frame_last=10 * i + 9, captured_at=start,
        detections=schemas.DetectionSummary(frames=10, counts={"person": 1.5}, max_counts={"person": 2}),
    )


def collect(subs, want: set[str], timeout: float = 40.0, per_sub: dict | None = None,
            dup: list | None = None) -> dict[str, Received]:
    """Poll ``subs`` in turn until every event id in ``want`` arrived or the deadline passed."""
    got: dict[str, Received] = {}
    deadline = time.monotonic() + timeout
    while not want <= set(got) and time.monotonic() < deadline:
        for i, sub in enumerate(subs):
            for rec in sub.poll(0.2, 200):
                eid = rec.event.event_id
                if eid in got and dup is not None:
                    dup.append(eid)
                got[eid] = rec
                if per_sub is not None:
                    per_sub.setdefault(i, []).append(eid)
    return got


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


#: tansu answers a group join after half the session timeout: 6 s joins in ~3 s instead of ~5 s.
FAST_JOIN = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


@pytest.fixture
def bus(kafka_bootstrap: str, unique_name: str):
    b = KafkaBus(kafka_bootstrap, namespace=unique_name, consumer_options=FAST_JOIN)
    yield b
    b.close(5)


# -- configuration (no broker) ------------------------------------------------------------
def test_security_options_pass_sasl_and_tls_and_never_show_the_password():
    cfg = BusConfig(bootstrap="kafka:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                    sasl_username="svc", sasl_password="s3cret-pw", ssl_cafile="/etc/ca.pem",
                    ssl_check_hostname=False)
    opts = security_options(cfg)
    assert opts == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": "svc", "sasl_plain_password": "s3cret-pw",
                    "ssl_cafile": "/etc/ca.pem", "ssl_check_hostname": False}
    text = describe(cfg) + repr(cfg) + str(cfg.model_dump())
    assert "s3cret-pw" not in text and "***" in describe(cfg)
    assert security_options(BusConfig(bootstrap="k:9092")) == {"security_protocol": "PLAINTEXT"}


def test_sasl_password_never_reaches_the_logs_even_at_debug(kafka_bootstrap, unique_name, caplog):
    secret = "Sup3r-S3cret-PW"
    caplog.set_level(logging.DEBUG)  # kafka-python's own loggers included
    cfg = BusConfig(bootstrap=kafka_bootstrap, namespace=unique_name, security_protocol="SASL_PLAINTEXT",
                    sasl_mechanism="SCRAM-SHA-256", sasl_username="svc", sasl_password=secret)
    bus = KafkaBus(cfg)  # tansu without --authentication: the SASL exchange fails, and is logged
    bus.ensure_topics([IND], timeout=2)
    bus.publish(IND, indicator(1))
    assert not bus.flush(2)
    bus.close(0.1)
    text = "\n".join(r.getMessage() for r in caplog.records) + str(bus.stats())
    assert "SaslHandshake" in text or "SASL" in text  # the path was exercised
    assert secret not in text


def test_a_missing_tls_file_is_refused_at_start_naming_the_setting(tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    cfg = BusConfig(bootstrap="127.0.0.1:9", security_protocol="SSL", ssl_cafile=str(missing))
    with pytest.raises(FileNotFoundError, match=f"bus.ssl_cafile: {missing}"):
        KafkaBus(cfg)


def test_a_producer_that_cannot_connect_keeps_trying_and_says_why(kafka_bootstrap, unique_name, tmp_path):
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    cfg = BusConfig(bootstrap=kafka_bootstrap, namespace=unique_name, security_protocol="SSL",
                    ssl_cafile=str(garbage))
    bus = KafkaBus(cfg, create_topics=False)
    try:
        bus.publish(IND, indicator(1))
        wait_for(lambda: bus.stats().last_error is not None, 10, "the connection error")
        s = bus.stats()
        assert "cannot connect the producer" in s.last_error
        assert (s.buffered, s.sent, s.dropped) == (1, 0, 0)
        assert bus._thread.is_alive()  # the sender keeps trying
        assert bus.health()["ok"] is False
    finally:
        bus.close(0.1)


def test_wire_topic_names_carry_the_namespace():
    assert wire_topic("", IND) == IND
    assert wire_topic("t1", IND) == "t1.imminence.indicators"
    assert wire_topic("t1.", IND) == "t1.imminence.indicators"
    with pytest.raises(ValueError, match="bootstrap"):
        KafkaBus(BusConfig())


# -- delivery --------------------------------------------------------------------------------
def test_round_trip_with_a_consumer_group_and_plain_json_for_any_client(bus, kafka_bootstrap, unique_name):
    events = [indicator(i) for i in range(30)]
    sub = bus.subscribe([IND], group=f"{unique_name}-g", from_beginning=True)
    try:
        for e in events:
            bus.publish(IND, e)
        assert bus.flush(20)
        got = collect([sub], {e.event_id for e in events})
        assert set(got) == {e.event_id for e in events}
        for e in events:
            rec = got[e.event_id]
            assert rec.topic == IND and rec.key == e.camera_id and rec.event == e
        assert {r.partition for r in got.values()} == {0, 1, 2}  # 6 cameras over 3 created partitions
        sub.commit()
        s = bus.stats()
        assert (s.sent, s.dropped, s.failed, s.buffered) == (30, 0, 0, 0)
        assert counter("imminence_bus_sent_total", topic=IND) >= 30
    finally:
        sub.close()
    # A plain kafka-python consumer reads the namespaced topic: UTF-8 JSON values, string keys.
    raw = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        wire = f"{unique_name}.{IND}"
        raw.assign([TopicPartition(wire, p) for p in range(3)])
        values = []
        deadline = time.monotonic() + 20
        while len(values) < 30 and time.monotonic() < deadline:
            for recs in raw.poll(500).values():
                values += [(r.key.decode("utf-8"), json.loads(r.value.decode("utf-8"))) for r in recs]
        assert len(values) == 30
        assert all(v["schema"] == "imminence.indicator/1" and k == v["camera_id"] for k, v in values)
    finally:
        raw.close()


def test_a_reader_without_group_may_start_before_the_topic_exists(kafka_bootstrap, unique_name):
    reader = KafkaBus(kafka_bootstrap, namespace=unique_name, create_topics=False)
    writer = KafkaBus(kafka_bootstrap, namespace=unique_name)
    sub = reader.subscribe([schemas.TOPIC_CAMERAS])  # "latest", on a topic nobody made yet
    try:
        assert sub.assignment() == {(schemas.TOPIC_CAMERAS, p) for p in range(3)}
        status = schemas.CameraStatus(camera_id="lobby", state="online", at=T0)
        writer.publish(schemas.TOPIC_CAMERAS, status)
        assert writer.flush(20)
        got: list = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got = sub.poll(0.5)
        assert [r.event for r in got] == [status] and got[0].key == "lobby"
    finally:
        sub.close()
        reader.close(1)
        writer.close(5)


def test_two_consumers_in_a_group_share_partitions_and_see_each_message_once(bus, unique_name):
    group = f"{unique_name}-g"
    a = bus.subscribe([IND], group=group, from_beginning=True, client_id="a")
    b = bus.subscribe([IND], group=group, from_beginning=True, client_id="b")
    try:
        def settled() -> bool:
            a.poll(0.1)
            b.poll(0.1)
            pa, pb = a.assignment(), b.assignment()
            return bool(pa) and bool(pb) and not (pa & pb) and len(pa | pb) == 3

        wait_for(settled, 40, "both consumers to hold disjoint partitions")
        events = [indicator(i, camera=f"cam{i % 12}") for i in range(60)]
        for e in events:
            bus.publish(IND, e)
        assert bus.flush(20)
        per_sub: dict = {}
        dup: list = []
        got = collect([a, b], {e.event_id for e in events}, per_sub=per_sub, dup=dup)
        assert set(got) == {e.event_id for e in events}
        assert dup == []
        assert per_sub.get(0) and per_sub.get(1)
        assert not set(per_sub[0]) & set(per_sub[1])
    finally:
        a.close()
        b.close()


def test_uncommitted_records_are_redelivered_to_the_next_group_member(bus, unique_name):
    group = f"{unique_name}-g"
    first = [indicator(i, tag="a") for i in range(10)]
    second = [indicator(i, tag="b") for i in range(10)]
    sub = bus.subscribe([IND], group=group, from_beginning=True)
    try:
        for e in first:
            bus.publish(IND, e)
        assert bus.flush(20)
        assert set(collect([sub], {e.event_id for e in first})) == {e.event_id for e in first}
        sub.commit()  # outputs of the first batch "published"
        for e in second:
            bus.publish(IND, e)
        assert bus.flush(20)
        assert set(collect([sub], {e.event_id for e in second})) == {e.event_id for e in second}
    finally:
        sub.close()  # crash before committing the second batch
    # A new member starting at "latest" resumes from the committed offsets: the second batch again,
    # not the first.
    sub2 = bus.subscribe([IND], group=group, from_beginning=False)
    try:
        got = collect([sub2], {e.event_id for e in second})
        assert set(got) == {e.event_id for e in second}
        assert not any(r.poll(1.0) for r in [sub2])
    finally:
        sub2.close()


@pytest.mark.slow
def test_a_rebalance_does_not_commit_records_returned_but_not_committed(bus, unique_name):
    """Revoked partitions are not committed on revocation: their uncommitted records are read again."""
    group = f"{unique_name}-g"
    events = [indicator(i, camera=f"cam{i % 12}") for i in range(30)]
    a = bus.subscribe([IND], group=group, from_beginning=True, client_id="a")
    b = None
    try:
        for e in events:
            bus.publish(IND, e)
        assert bus.flush(20)
        assert set(collect([a], {e.event_id for e in events})) == {e.event_id for e in events}
        b = bus.subscribe([IND], group=group, from_beginning=True, client_id="b")  # triggers a rebalance
        again = collect([a, b], {e.event_id for e in events}, 40)
        assert set(again) == {e.event_id for e in events}  # every uncommitted record delivered again
        assert a.assignment() and b.assignment() and not a.assignment() & b.assignment()
        a.commit()
        b.commit()
        committed = sum(a.consumer.committed(TopicPartition(bus.wire(IND), p)) or 0 for p in range(3))
        assert committed == 30
    finally:
        a.close()
        if b is not None:
            b.close()


@pytest.mark.slow
def test_a_consumer_that_publishes_on_revoke_gets_its_records_committed_not_replayed(bus, unique_name):
    group = f"{unique_name}-g"
    old = [indicator(i, camera=f"cam{i % 12}", tag="old") for i in range(30)]
    a = bus.subscribe([IND], group=group, from_beginning=True, client_id="a")
    hook_calls: list = []
    a.on_revoke = lambda: hook_calls.append(1) or True  # "outputs published"
    b = None
    try:
        for e in old:
            bus.publish(IND, e)
        assert bus.flush(20)
        assert set(collect([a], {e.event_id for e in old})) == {e.event_id for e in old}
        b = bus.subscribe([IND], group=group, from_beginning=True, client_id="b")
        after: list = []  # everything delivered once b joined

        def rebalanced() -> bool:
            after.extend(r.event.event_id for r in a.poll(0.1) + b.poll(0.1))
            return bool(a.assignment()) and bool(b.assignment())

        wait_for(rebalanced, 40, "the rebalance")
        new = [indicator(i, camera=f"cam{i % 12}", tag="new") for i in range(30)]
        for e in new:
            bus.publish(IND, e)
        assert bus.flush(20)
        got = collect([a, b], {e.event_id for e in new}, 40)
        after += list(got)
        assert set(got) == {e.event_id for e in new}
        assert not [eid for eid in after if eid.startswith("old-")]  # nothing replayed
        assert hook_calls
    finally:
        a.close()
        if b is not None:
            b.close()


@pytest.mark.slow
def test_a_handler_slower_than_max_poll_interval_loses_its_commit_not_its_records(kafka_bootstrap, unique_name,
                                                                                 caplog):
    caplog.set_level(logging.WARNING, logger="streamer.kafka_bus")
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name,
                   consumer_options={**FAST_JOIN, "max_poll_interval_ms": 1500})
    sub = bus.subscribe([IND], group=f"{unique_name}-g", from_beginning=True)
    try:
        events = {f"e-{i}" for i in range(10)}
        for i in range(10):
            bus.publish(IND, indicator(i))
        assert bus.flush(20)
        assert set(collect([sub], events)) == events
        time.sleep(4)  # the handler outlives max_poll_interval_ms: the group moves on without us
        sub.commit()  # kafka-python raises CommitFailedError; the subscription logs it and goes on
        assert any("commit failed" in r.getMessage() for r in caplog.records)
        assert set(collect([sub], events)) == events  # rejoined: the uncommitted records come again
        sub.commit()
        assert sum(sub.consumer.committed(TopicPartition(bus.wire(IND), p)) or 0 for p in range(3)) == 10
    finally:
        sub.close()
        bus.close(5)


def test_invalid_records_go_to_the_dlq_and_the_consumer_keeps_going(bus, kafka_bootstrap, unique_name, caplog):
    bus.ensure_topics([IND])
    wire = bus.wire(IND)
    cell = schemas.CellImminence(message_id="m", cell_id="r0c0", window_start=T0, window_end=T0,
                                 imminence={}, flags={}, events=0, produced_at=T0)
    bad = {
        "json": b'{"schema": "imminence.indicator/1", not json',
        "schema": schemas.encode(cell),  # a valid message of another topic
        "field": json.dumps({"schema": "imminence.indicator/1", "event_id": "x"}).encode(),
        "utf8": b"\xff\xfe\xfa garbage-bytes",
        "huge": b'{"pad": "' + b"x" * 2_000_000 + b'"}',
        "null": None,
    }
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=3_000_000)
    try:
        for i, (name, value) in enumerate(bad.items()):
            raw.send(wire, key=name.encode(), value=value).get(10)
            raw.send(wire, key=b"cam0", value=schemas.encode(indicator(i))).get(10)
    finally:
        raw.close()
    caplog.set_level(logging.WARNING, logger="streamer.kafka_bus")
    sub = bus.subscribe([IND], from_beginning=True)
    try:
        got = collect([sub], {f"e-{i}" for i in range(len(bad))})
        assert set(got) == {f"e-{i}" for i in range(len(bad))}
        # each invalid record precedes a valid one in the same partition, so all were seen by now
        assert bus.stats().dead_lettered == len(bad)
        assert bus.flush(20)
    finally:
        sub.close()
    dlq = bus.subscribe([schemas.TOPIC_DLQ], from_beginning=True)
    try:
        letters: list = []
        deadline = time.monotonic() + 20
        while len(letters) < len(bad) and time.monotonic() < deadline:
            letters += [r.event for r in dlq.poll(0.5)]
    finally:
        dlq.close()
    by_key = {d.key: d for d in letters}
    assert set(by_key) == set(bad)
    assert all(d.source_topic == IND and d.offset is not None for d in letters)
    assert "not JSON" in by_key["json"].reason
    assert "does not belong" in by_key["schema"].reason
    assert "camera_id" in by_key["field"].reason
    assert "not UTF-8" in by_key["utf8"].reason
    assert len(by_key["huge"].payload) == schemas.MAX_DLQ_PAYLOAD
    assert "null" in by_key["null"].reason
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "garbage-bytes" not in logged and "xxxxxxxx" not in logged  # payloads never logged
    assert f"{IND}[" in logged and "@" in logged


def test_a_record_too_large_for_the_producer_fails_once_loudly(bus, caplog):
    caplog.set_level(logging.ERROR, logger="streamer.kafka_bus")
    bus.publish_raw(IND, b"x" * 2_000_000, key="cam0")
    bus.publish(IND, indicator(1))
    assert bus.flush(20)
    s = bus.stats()
    assert (s.failed, s.sent) == (1, 1)
    assert any("refused a record for good" in r.getMessage() for r in caplog.records)


# -- faults ------------------------------------------------------------------------------------
def test_broker_down_at_start_publish_does_not_block_and_delivers_later(unique_name, tmp_path):
    port = free_port()
    bus = KafkaBus(f"127.0.0.1:{port}", namespace=unique_name)
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu.log")
    try:
        t = time.monotonic()
        for i in range(50):
            bus.publish(IND, indicator(i))
        assert time.monotonic() - t < 1.0  # never waits on the broker
        time.sleep(0.5)
        s = bus.stats()
        assert (s.sent, s.buffered, s.dropped) == (0, 50, 0)
        assert not bus.flush(0.2)
        assert bus.health()["ok"] is False and bus.health()["buffered"] == 50
        broker.start()
        assert bus.flush(30)
        assert bus.health()["ok"] is True
        assert bus.stats().sent == 50
        sub = bus.subscribe([IND], from_beginning=True)
        try:
            assert sum(sub.lag().values()) > 0  # approximate (batch-grained on tansu), but not zero
            assert set(collect([sub], {f"e-{i}" for i in range(50)}, 20)) == {f"e-{i}" for i in range(50)}
            assert sum(sub.lag().values()) == 0
            assert counter("imminence_consumer_lag", group="-", topic=IND) == 0
        finally:
            sub.close()
    finally:
        bus.close(5)
        broker.stop()


def test_outbox_full_drops_oldest_counts_and_says_so(unique_name, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="streamer.kafka_bus")
    port = free_port()
    before = counter("imminence_bus_dropped_total", topic=IND)
    bus = KafkaBus(f"127.0.0.1:{port}", namespace=unique_name, outbox_size=10)
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu.log")
    try:
        for i in range(25):
            bus.publish(IND, indicator(i))
        s = bus.stats()
        assert (s.dropped, s.buffered, s.sent) == (15, 10, 0)
        assert counter("imminence_bus_dropped_total", topic=IND) - before == 15
        assert any("outbox full" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
        broker.start()
        assert bus.flush(30)
        sub = bus.subscribe([IND], from_beginning=True)
        try:
            newest = {f"e-{i}" for i in range(15, 25)}
            got = collect([sub], newest, 20)
            assert set(got) == newest  # the 10 newest survived, the 15 oldest were dropped
            assert not sub.poll(1.0)
        finally:
            sub.close()
    finally:
        bus.close(5)
        broker.stop()


PRODUCER_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.test_kafka_bus import indicator
    import logging
    from streamer.kafka_bus import KafkaBus, install_sigterm_flush
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)d %(name)s %(levelname)s %(message)s")
    bus = KafkaBus({bootstrap!r}, namespace={ns!r})
    install_sigterm_flush(bus, timeout=30)
    for i in range({n}):
        bus.publish("imminence.indicators", indicator(i))
    print("published", bus.stats().buffered, flush=True)
    time.sleep(60)
    print("not terminated", flush=True)
""")


def test_sigterm_after_sending_many_delivers_all(kafka_bootstrap, unique_name, bus, tmp_path):
    n = 3000
    script = PRODUCER_SCRIPT.format(root=str(ROOT), bootstrap=kafka_bootstrap, ns=unique_name, n=n)
    # The child's log goes to a file, never to a pipe nobody reads: kafka-python may log a warning per
    # retried batch on a loaded machine, and a child blocked writing to a full pipe never exits.
    log_path = tmp_path / "producer.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=log_file,
                                text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("published"), log_path.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)  # its own close waits at most 30 s for acknowledgements
        except subprocess.TimeoutExpired:
            raise AssertionError("producer did not exit after SIGTERM:\n" + log_path.read_text()[-3000:])
        assert code == 143, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    sub = bus.subscribe([IND], from_beginning=True)
    try:
        want = {f"e-{i}" for i in range(n)}
        assert set(collect([sub], want, 30)) == want
    finally:
        sub.close()


@pytest.mark.slow
def test_broker_killed_and_restarted_on_s3_loses_nothing(s3_broker, unique_name):
    group = f"{unique_name}-g"
    # A short delivery timeout makes kafka-python give records back during the outage, so the
    # outbox's own re-send path is exercised too (not only kafka-python's internal retries).
    bus = KafkaBus(s3_broker.bootstrap, namespace=unique_name, delivery_timeout_ms=2000,
                   consumer_options=FAST_JOIN)
    sub = bus.subscribe([IND], group=group, from_beginning=True)
    tps = [TopicPartition(bus.wire(IND), p) for p in range(3)]
    try:
        first = [indicator(i, tag="a") for i in range(50)]
        for e in first:
            bus.publish(IND, e)
        assert bus.flush(20)
        assert set(collect([sub], {e.event_id for e in first})) == {e.event_id for e in first}
        sub.commit()
        committed = {tp: sub.consumer.committed(tp) for tp in tps}
        assert sum(v or 0 for v in committed.values()) == 50

        second = [indicator(i, tag="b") for i in range(300)]
        slowest = 0.0
        for i, e in enumerate(second):
            if i == 100:
                s3_broker.kill()  # kill -9 while records are in flight
            if i == 250:
                time.sleep(3)  # a longer outage: buffered records expire in kafka-python
                s3_broker.start()
            t = time.monotonic()
            bus.publish(IND, e)
            slowest = max(slowest, time.monotonic() - t)
            time.sleep(0.005)
        assert slowest < 0.05  # the publisher never waited on the dead broker
        assert bus.flush(60), bus.stats()
        s = bus.stats()
        assert s.dropped == 0 and s.failed == 0
        assert s.retries > 0  # records did fail during the outage and were sent again

        # The group's committed offsets survived the crash (read without joining the group)...
        probe = KafkaConsumer(bootstrap_servers=s3_broker.bootstrap, group_id=group, enable_auto_commit=False)
        try:
            assert {tp: probe.committed(tp) for tp in tps} == committed
        finally:
            probe.close()
        # ...and the consumer that lived through it receives every record published meanwhile.
        got = collect([sub], {e.event_id for e in second}, 60)
        assert set(got) == {e.event_id for e in second}
        assert not any(eid.startswith("a-") for eid in got)
        sub.commit()
        assert sum(sub.consumer.committed(tp) or 0 for tp in tps) >= 350
    finally:
        sub.close()
        bus.close(5)


def test_tls_through_a_terminating_proxy(tls_proxy, unique_name):
    cfg = BusConfig(bootstrap=tls_proxy["bootstrap"], namespace=unique_name, security_protocol="SSL",
                    ssl_cafile=tls_proxy["cafile"])
    bus = KafkaBus(cfg)
    try:
        events = [indicator(i) for i in range(10)]
        for e in events:
            bus.publish(IND, e)
        assert bus.flush(30), bus.stats()
        sub = bus.subscribe([IND], from_beginning=True)
        try:
            assert set(collect([sub], {e.event_id for e in events}, 20)) == {e.event_id for e in events}
        finally:
            sub.close()
    finally:
        bus.close(5)
    # The proxy really speaks TLS: a plaintext client gets nothing through it.
    plain = KafkaBus(BusConfig(bootstrap=tls_proxy["bootstrap"], namespace=unique_name), create_topics=False)
    try:
        plain.publish(IND, indicator(99))
        assert not plain.flush(3)
        assert plain.stats().sent == 0
    finally:
        plain.close(0.1)
