"""librdkafka clients on the real broker: Debian's kcat and confluent-kafka (PyPI) read and write our topics.

Third-party clients, run for real against the same broker as ``make demo``
(the embedded tansu behind :mod:`streamer.kafka_shim`), or against any Kafka
given with ``pytest --bootstrap HOST:PORT``:

* kcat lists the topics, consumes ``imminence.indicators`` from the beginning
  with keys, and produces a record that ``imminence score`` consumes;
* confluent-kafka reads in a consumer group with commits, and writes records
  our own consumer validates;
* every topic of the project round-trips through kcat and confluent-kafka;
* a confluent-kafka group consumer stays attached while the broker (S3
  storage) is killed -9 and restarted, and loses nothing;
* without the shim, kcat (librdkafka 2.0.2 on Debian 12) fails the ApiVersions
  exchange: the shim is what makes it work.

kcat skips loudly where it is not installed (``make system-deps``).
"""
from __future__ import annotations

import json
import logging
import shutil
import socket
import struct
import subprocess
import time
import warnings
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

import pytest

from streamer import schemas
from streamer.kafka_bus import KafkaBus, wire_topic
from streamer.kafka_shim import parse_tags, rewrite_api_versions

T0 = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)
SESSION_MS = "6000"  # tansu answers a group join after half the session timeout


def kcat_binary() -> str:
    exe = shutil.which("kcat") or shutil.which("kafkacat")
    if not exe:
        warnings.warn("kcat is missing: the kcat tests are SKIPPED (apt-get install kcat)")
        pytest.skip("kcat not installed: librdkafka CLI NOT tested (apt-get install kcat)")
    return exe


@pytest.fixture(scope="module")
def kcat() -> str:
    return kcat_binary()


ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka not installed (pip install -e '.[dev]')")


def run_kcat(kcat: str, args: list[str], stdin: Optional[str] = None, timeout: float = 60) -> str:
    res = subprocess.run([kcat, *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"kcat {' '.join(args)} exited {res.returncode}: {res.stderr[-2000:]}"
    return res.stdout


def indicator(i: int, tag: str) -> schemas.IndicatorEvent:
    cam = f"cam{i % 3}"
    start = T0 + timedelta(seconds=2 * i)
    return schemas.IndicatorEvent(
        event_id=f"{tag}-{i}", camera_id=cam, cell_id=f"r0c{i % 3}", clip_index=i, clip_start=start,
        clip_end=start + timedelta(seconds=2), stream_start_s=2.0 * i, stream_end_s=2.0 * i + 2,
        frame_first=10 * i, frame_last=10 * i + 9, captured_at=start,
        detections=schemas.DetectionSummary(frames=10, counts={"person": 1.0}, max_counts={"person": 1}),
        concept=schemas.ConceptResult(label="loitering", score=0.8), replay=True)


def one_of_each(tag: str) -> dict[str, tuple[str, schemas.BaseModel]]:
    """A valid (key, message) for every topic of the project, ids carrying ``tag``."""
    now = T0 + timedelta(minutes=5)
    cell = schemas.CellImminence(
        message_id=f"r0c0|{T0.isoformat()}|{tag}", cell_id="r0c0", window_start=T0, window_end=now,
        imminence={"assault": 3.5}, flags={"assault": False}, events=1, event_ids=[f"{tag}-ev"], produced_at=now)
    snap = schemas.MapSnapshot(
        snapshot_id=f"snap-{tag}", created_at=now,
        grid=schemas.GridInfo(grid_id="g", cell_size_m=100, rows=2, cols=2, cells=4),
        layers={"all": schemas.MapLayer(merged={"r0c0": 0.5})}, live_weight=0.6)
    cam = schemas.CameraStatus(camera_id=f"cam-{tag}", state="online", at=now, clips=3)
    dead = schemas.DeadLetter(source_topic=schemas.TOPIC_INDICATORS, reason=f"test {tag}", payload="{}",
                              received_at=now)
    ev = indicator(0, tag)
    sit = schemas.SituationEvent(message_id=f"sit-{tag}:0", situation_id=f"sit-{tag}", type="new", seq=0,
                                 camera_id=ev.camera_id, reason="concept", start=now, last_seen=now, duration_s=0.0,
                                 clips=1, event_ids=[ev.event_id])
    return {schemas.TOPIC_INDICATORS: (ev.camera_id, ev), schemas.TOPIC_CELLS: (cell.cell_id, cell),
            schemas.TOPIC_MAPS: ("all", snap), schemas.TOPIC_CAMERAS: (cam.camera_id, cam),
            schemas.TOPIC_DLQ: (dead.source_topic, dead), schemas.TOPIC_SITUATIONS: (schemas.event_key(sit), sit)}


def message_id(m: schemas.BaseModel) -> str:
    for attr in ("event_id", "message_id", "snapshot_id", "camera_id", "reason"):
        if hasattr(m, attr):
            return str(getattr(m, attr))
    raise AssertionError(m)


def ck_consume(consumer, until: Callable[[list], bool], timeout: float) -> list:
    """Poll a confluent-kafka consumer until ``until(messages)`` or the deadline; raise on client errors."""
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == ck.KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"confluent-kafka consumer error: {msg.error()}")
        got.append(msg)
    return got


def ck_produce(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    """Produce (topic, key, value) records with confluent-kafka, acks=all; fail on any delivery error."""
    errors: list = []
    p = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for topic, key, value in records:
        p.produce(topic, key=key.encode(), value=value,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(30) == 0, "confluent-kafka producer could not deliver everything in 30 s"
    assert not errors, errors


def ck_consumer(bootstrap: str, group: str, **extra: object):
    return ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                        "enable.auto.commit": False, "session.timeout.ms": int(SESSION_MS), **extra},
                       logger=logging.getLogger("rdkafka.consumer"))


def bus_read(bus: KafkaBus, topics: list[str], want: set[str], timeout: float = 60) -> dict[str, schemas.BaseModel]:
    """Our own consumer (validating) reads ``topics`` from the beginning until every id in ``want`` arrived."""
    sub = bus.subscribe(topics, from_beginning=True)
    got: dict[str, schemas.BaseModel] = {}
    deadline = time.monotonic() + timeout
    try:
        while not want <= set(got) and time.monotonic() < deadline:
            for rec in sub.poll(0.3, 500):
                got[message_id(rec.event)] = rec.event
    finally:
        sub.close()
    return got


# -- kcat -----------------------------------------------------------------------------------------
def test_kcat_lists_the_topics(kcat, kafka_bootstrap, unique_name):
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
    try:
        assert bus.ensure_topics(list(schemas.TOPICS))
    finally:
        bus.close(5)
    meta = json.loads(run_kcat(kcat, ["-L", "-J", "-b", kafka_bootstrap, "-m", "10"]))
    listed = {t["topic"]: len(t["partitions"]) for t in meta["topics"]}
    for topic in schemas.TOPICS:
        assert listed.get(wire_topic(unique_name, topic)) == bus.config.partitions, (topic, listed)
    assert meta["brokers"], meta


def test_kcat_consumes_indicators_from_the_beginning_with_keys(kcat, kafka_bootstrap, unique_name):
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
    events = [indicator(i, "kc") for i in range(30)]
    try:
        for e in events:
            bus.publish(schemas.TOPIC_INDICATORS, e)
        assert bus.flush(30)
    finally:
        bus.close(5)
    topic = wire_topic(unique_name, schemas.TOPIC_INDICATORS)
    out = run_kcat(kcat, ["-C", "-b", kafka_bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"])
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    got = {}
    for row in rows:
        ev = schemas.decode(schemas.TOPIC_INDICATORS, row["payload"])
        got[ev.event_id] = (row["key"], ev.camera_id)
    assert set(got) == {e.event_id for e in events}
    assert all(key == cam for key, cam in got.values())  # keyed by camera id, as the README says


def test_kcat_produces_a_record_the_scoring_service_consumes(kcat, kafka_bootstrap, unique_name, tmp_path):
    from test_scoring_kafka import start_service, write_config

    cfg = write_config(tmp_path / "score.yaml", kafka_bootstrap, unique_name)
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
    bus.ensure_topics(list(schemas.TOPICS))
    proc = start_service(cfg, tmp_path / "score.log")
    sub = bus.subscribe([schemas.TOPIC_CELLS], from_beginning=True)
    try:
        ev = indicator(7, f"kcat-{unique_name}")
        line = f"{ev.camera_id}\t{schemas.encode(ev).decode()}\n"
        run_kcat(kcat, ["-P", "-b", kafka_bootstrap, "-t", wire_topic(unique_name, schemas.TOPIC_INDICATORS),
                        "-K", "\\t"], stdin=line)
        found = None
        deadline = time.monotonic() + 90
        while found is None and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "score.log").read_text()[-3000:]
            for rec in sub.poll(0.5, 100):
                if ev.event_id in rec.event.event_ids:
                    found = rec.event
        assert found is not None, "the scorer never counted the record kcat produced: " + \
            (tmp_path / "score.log").read_text()[-3000:]
        assert found.cell_id == ev.cell_id and found.events >= 1
    finally:
        sub.close()
        bus.close(5)
        proc.terminate()
        proc.wait(30)


# -- confluent-kafka ---------------------------------------------------------------------------------
def test_confluent_kafka_group_consumer_commits_and_resumes(kafka_bootstrap, unique_name):
    topic = wire_topic(unique_name, schemas.TOPIC_INDICATORS)
    group = f"{unique_name}-ck"
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
    try:
        first = [indicator(i, "first") for i in range(20)]
        for e in first:
            bus.publish(schemas.TOPIC_INDICATORS, e)
        assert bus.flush(30)

        c = ck_consumer(kafka_bootstrap, group)
        c.subscribe([topic])
        ids = lambda ms: {schemas.decode(schemas.TOPIC_INDICATORS, m.value()).event_id for m in ms}  # noqa: E731
        msgs = ck_consume(c, lambda ms: ids(ms) >= {e.event_id for e in first}, 60)
        assert ids(msgs) == {e.event_id for e in first}
        assert {m.key().decode() for m in msgs} <= {e.camera_id for e in first}
        c.commit(asynchronous=False)
        assignment = c.assignment()
        committed = c.committed(assignment, timeout=10)
        ends = {}
        for m in msgs:
            ends[m.partition()] = max(ends.get(m.partition(), -1), m.offset() + 1)
        assert {tp.partition: tp.offset for tp in committed if tp.partition in ends} == ends
        c.close()

        second = [indicator(i, "second") for i in range(20, 30)]
        for e in second:
            bus.publish(schemas.TOPIC_INDICATORS, e)
        assert bus.flush(30)
        c2 = ck_consumer(kafka_bootstrap, group)
        c2.subscribe([topic])
        want = {e.event_id for e in second}
        msgs2 = ck_consume(c2, lambda ms: ids(ms) >= want, 60)
        msgs2 += ck_consume(c2, lambda ms: False, 2)  # anything else that would come (nothing should)
        c2.commit(asynchronous=False)
        c2.close()
        assert ids(msgs2) == want  # resumed at the commits: none of the first 20 again
    finally:
        bus.close(5)


def test_every_topic_round_trips_through_kcat_and_confluent_kafka(kcat, kafka_bootstrap, unique_name):
    """Each topic: kcat writes one message and confluent-kafka another; kcat, confluent-kafka and our own
    validating consumer each read both."""
    by_kcat, by_ck = one_of_each("kcat"), one_of_each("ck")
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
    try:
        bus.ensure_topics(list(schemas.TOPICS))
        for topic, (key, msg) in by_kcat.items():
            run_kcat(kcat, ["-P", "-b", kafka_bootstrap, "-t", wire_topic(unique_name, topic), "-K", "\\t"],
                     stdin=f"{key}\t{schemas.encode(msg).decode()}\n")
        ck_produce(kafka_bootstrap, [(wire_topic(unique_name, t), k, schemas.encode(m))
                                     for t, (k, m) in by_ck.items()])
        want = {message_id(m) for d in (by_kcat, by_ck) for _, m in d.values()}
        ours = bus_read(bus, list(schemas.TOPICS), want)
        assert set(ours) == want
    finally:
        bus.close(5)
    for topic in schemas.TOPICS:
        wire = wire_topic(unique_name, topic)
        expect = {(by_kcat[topic][0], message_id(by_kcat[topic][1])), (by_ck[topic][0], message_id(by_ck[topic][1]))}
        out = run_kcat(kcat, ["-C", "-b", kafka_bootstrap, "-t", wire, "-o", "beginning", "-e", "-J", "-q"])
        seen = {(r["key"], message_id(schemas.decode(topic, r["payload"])))
                for r in map(json.loads, filter(str.strip, out.splitlines()))}
        assert seen == expect, (topic, seen)
        c = ck_consumer(kafka_bootstrap, f"{unique_name}-{topic}")
        c.subscribe([wire])
        msgs = ck_consume(c, lambda ms: len(ms) >= 2, 60)
        c.close()
        assert {(m.key().decode(), message_id(schemas.decode(topic, m.value()))) for m in msgs} == expect, topic


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.faults
def test_confluent_kafka_consumer_attached_through_a_broker_kill_and_restart(s3_broker, unique_name):
    """A librdkafka group consumer stays up while the broker is killed -9 and restarted (S3 storage):
    it reads everything written before, during-reconnect and after, and its commits survive the crash."""
    topic = wire_topic(unique_name, schemas.TOPIC_INDICATORS)
    bootstrap = s3_broker.bootstrap
    group = f"{unique_name}-ck"
    ids = lambda ms: {schemas.decode(schemas.TOPIC_INDICATORS, m.value()).event_id for m in ms}  # noqa: E731
    bus = KafkaBus(bootstrap, namespace=unique_name)
    c = ck_consumer(bootstrap, group, **{"reconnect.backoff.max.ms": 1000})
    try:
        before = [indicator(i, "before") for i in range(15)]
        for e in before:
            bus.publish(schemas.TOPIC_INDICATORS, e)
        assert bus.flush(30)
        c.subscribe([topic])
        got = ck_consume(c, lambda ms: ids(ms) >= {e.event_id for e in before}, 60)
        assert ids(got) == {e.event_id for e in before}
        c.commit(asynchronous=False)

        s3_broker.kill()
        c.poll(1.0)  # the consumer notices the broker is gone
        s3_broker.start()
        after = [indicator(i, "after") for i in range(15, 30)]
        for e in after:
            bus.publish(schemas.TOPIC_INDICATORS, e)
        assert bus.flush(60)
        got2 = ck_consume(c, lambda ms: ids(ms) >= {e.event_id for e in after}, 90)
        assert ids(got2) >= {e.event_id for e in after}, "the attached librdkafka consumer lost records"
        assert not ids(got2) & {e.event_id for e in before}, "committed records came back after the restart"
        c.commit(asynchronous=False)
    finally:
        c.close()
        bus.close(5)
    c2 = ck_consumer(bootstrap, group)  # the committed offsets outlived the crash: nothing left to read
    c2.subscribe([topic])
    assert ck_consume(c2, lambda ms: False, 12) == []
    c2.close()


# -- the shim itself ----------------------------------------------------------------------------------
def api_versions_v3(port: int) -> bytes:
    """Send an ApiVersions v3 request (as librdkafka does) and return the response frame."""
    def cstr(s: str) -> bytes:
        return bytes([len(s) + 1]) + s.encode()

    msg = struct.pack(">hhih", 18, 3, 42, 7) + b"rdkafka" + b"\x00" + cstr("librdkafka") + cstr("2.0.2") + b"\x00"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(msg)) + msg)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "connection closed mid-response"
            buf += chunk
    return buf[4:]


def tag_section(frame: bytes) -> tuple[int, dict[int, bytes]]:
    """Where the top-level tags of an ApiVersions v3 response start, and the tags by number."""
    i = 6
    n = frame[i] - 1  # fewer than 127 apis: a one-byte varint
    i += 1
    for _ in range(n):
        i += 6
        _, i = parse_tags(frame, i)
    tags, end = parse_tags(frame, i + 4)
    assert end == len(frame)
    return i + 4, dict(tags)


def test_shim_strips_only_default_valued_tags_from_api_versions(embedded_broker):
    direct = api_versions_v3(embedded_broker.tansu_port)
    shimmed = api_versions_v3(embedded_broker.port)
    (d_at, d_tags), (s_at, s_tags) = tag_section(direct), tag_section(shimmed)
    assert struct.unpack(">i", shimmed[:4])[0] == 42
    # Correlation id, error, api list and throttle time are passed on byte for byte.
    assert s_at == d_at and shimmed[:s_at] == direct[:d_at]
    defaults = {0: b"\x01", 1: b"\xff" * 8, 2: b"\x01", 3: b"\x00"}
    assert s_tags == {t: v for t, v in d_tags.items() if defaults.get(t) != v}
    # A non-default value is kept: SupportedFeatures with one feature, next to a default epoch (dropped).
    feature = b"\x02" + b"\x11metadata.version" + struct.pack(">hh", 1, 20) + b"\x00"
    crafted = direct[:d_at] + bytes([2, 0, len(feature)]) + feature + bytes([1, 8]) + b"\xff" * 8
    assert tag_section(rewrite_api_versions(crafted))[1] == {0: feature}
    with pytest.raises(ValueError):
        rewrite_api_versions(crafted[:-3])


def test_without_the_shim_kcat_fails_the_api_versions_exchange_and_with_it_works(kcat, tmp_path):
    """Why the shim exists: Debian 12's kcat (librdkafka 2.0.2) cannot read tansu's own ApiVersions answer."""
    from streamer.broker import EmbeddedBroker

    version = subprocess.run([kcat, "-V"], capture_output=True, text=True).stdout
    for shim in (False, True):
        with EmbeddedBroker(shim=shim, log_file=tmp_path / f"tansu-{shim}.log") as broker:
            res = subprocess.run([kcat, "-L", "-J", "-b", broker.bootstrap, "-m", "4"], capture_output=True,
                                 text=True, timeout=60)
            if shim:
                assert res.returncode == 0, res.stderr[-2000:]
                assert json.loads(res.stdout)["brokers"]
            elif "librdkafka 2.0." in version or "librdkafka 1." in version:
                assert res.returncode != 0 and "Read underflow" in res.stderr, (version, res.stderr[-2000:])


def test_shim_stream_walker_survives_any_split_of_frames_and_rewrites_only_the_chosen_ones():
    """forward() on a stream cut at random places (heads split too): every frame passes on byte for byte, except
    the ones whose correlation id was chosen, which come out rewritten with a new size prefix."""
    import asyncio
    import random

    from streamer.kafka_shim import forward

    rng = random.Random(7)
    frames = [struct.pack(">i", corr) + bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 5, 300, 3000])))
              for corr in range(60)]
    chosen = {3, 4, 17, 59}
    rewrite = lambda f: f + b"+tail"  # noqa: E731 - changes the size, so the prefix must be recomputed
    stream = b"".join(struct.pack(">i", len(f)) + f for f in frames)
    expect = b"".join(struct.pack(">i", len(g)) + g for g in
                      (rewrite(f) if struct.unpack(">i", f[:4])[0] in chosen else f for f in frames))

    class Sink:  # the writing end of a stream: collects what forward() sends
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, b: bytes) -> None:
            self.data += b

        async def drain(self) -> None:
            await asyncio.sleep(0)

    async def run(max_cut: int) -> bytes:
        reader, sink = asyncio.StreamReader(), Sink()
        seen: list[int] = []

        def on_head(head: bytes):
            corr = struct.unpack(">i", head[4:8])[0]
            seen.append(corr)
            return rewrite if corr in chosen else None

        task = asyncio.ensure_future(forward(reader, sink, 8, on_head))
        i = 0
        while i < len(stream):
            cut = rng.randint(1, max_cut)
            reader.feed_data(stream[i:i + cut])
            i += cut
            await asyncio.sleep(0)
        reader.feed_eof()
        await task
        assert seen == list(range(60))
        return bytes(sink.data)

    for max_cut in (1, 3, 11, 700, 1 << 20):
        assert asyncio.run(run(max_cut)) == expect, max_cut
