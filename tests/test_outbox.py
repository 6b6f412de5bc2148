"""The durable outbox (issue 12): SQLite log, kill -9 of a real publishing process, bounds, idempotence fallback.

The kill tests run a real process that publishes through :class:`KafkaBus` with a
durable outbox while the broker is away, kill it with SIGKILL, then start a real
broker and a new bus on the same file, and count what reaches the topic.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streamer.outbox import DurableOutbox, OutboxFull, OutboxLocked, outbox_path
from test_observability import table

ROOT = Path(__file__).resolve().parents[1]


# -- the SQLite log on its own -------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["always", "interval", "off"])
def test_append_remove_and_reopen_keep_exactly_the_unremoved_records(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "o.sqlite"
    with DurableOutbox(path, fsync=policy, fsync_ms=5) as box:
        seqs = [box.append("t", f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 50
        box.remove(seqs[::2])
        assert box.count() == 25
    with DurableOutbox(path, fsync=policy) as box:
        left = box.pending()
    assert [p.value for p in left] == [f"v{i}".encode() for i in range(1, 50, 2)]
    assert [p.key for p in left] == [f"k{i}".encode() for i in range(1, 50, 2)]


def test_a_second_process_cannot_open_the_same_outbox(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with DurableOutbox(path):
        code = ("import sys; from streamer.outbox import DurableOutbox, OutboxLocked\n"
                f"try:\n    DurableOutbox({str(path)!r})\nexcept OutboxLocked as e:\n    print('LOCKED', e); sys.exit(3)")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert r.returncode == 3 and "in use by another process" in r.stdout, r.stdout + r.stderr
    with DurableOutbox(path):  # released on close
        pass
    with pytest.raises(OutboxLocked):
        with DurableOutbox(path):
            DurableOutbox(path)


def test_max_bytes_refuses_appends_with_outbox_full(tmp_path: Path) -> None:
    with DurableOutbox(tmp_path / "o.sqlite", max_bytes=64 * 1024) as box:
        n = 0
        with pytest.raises(OutboxFull):
            for n in range(10_000):
                box.append("t", None, b"x" * 1000)
        assert 20 < n < 100
        box.remove(box.oldest(10))  # room again once the oldest are gone
        box.append("t", None, b"y" * 1000)


def test_outbox_path_is_per_namespace_and_safe(tmp_path: Path) -> None:
    assert outbox_path(tmp_path, "ns.", "camera-a") == tmp_path / "ns" / "camera-a.sqlite"
    assert outbox_path(tmp_path, "", "../../etc/x").parent == tmp_path / "_"


# -- a real process killed with -9 ---------------------------------------------------------------
PUBLISHER = textwrap.dedent("""
    import sys, time
    from streamer.kafka_bus import KafkaBus
    from streamer.outbox import DurableOutbox
    from streamer.schemas import TOPIC_INDICATORS
    sys.path.insert(0, "tests")
    from test_observability import make_event, _grid
    from datetime import datetime, timezone
    bootstrap, ns, path, n, fsync = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    bus = KafkaBus(bootstrap, namespace=ns, durable=DurableOutbox(path, fsync=fsync), idempotence="off")
    cell = _grid().cell_id(3, 3)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(n):
        bus.publish(TOPIC_INDICATORS, make_event("cam-d", cell, i, start))
    print("PUBLISHED", n, flush=True)
    time.sleep(600)
""")


def _publish_then_kill(tmp_path: Path, bootstrap: str, ns: str, path: Path, n: int, fsync: str) -> None:
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    proc = subprocess.Popen([sys.executable, str(script), bootstrap, ns, str(path), str(n), fsync], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        assert line.startswith("PUBLISHED"), line + proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def _events_on_topic(bootstrap: str, ns: str, want: int) -> dict[str, int]:
    from streamer.schemas import IndicatorEvent
    from test_observability import read_topic

    msgs = read_topic(bootstrap, ns, "imminence.indicators",
                      lambda ms: len({m.event_id for m in ms if isinstance(m, IndicatorEvent)}) >= want,
                      timeout=60, what=f"{want} events")
    copies: dict[str, int] = {}
    for m in msgs:
        copies[m.clip_index] = copies.get(m.clip_index, 0) + 1
    return copies


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("fsync", ["always", "off"])
def test_records_of_a_process_killed_9_before_any_ack_are_all_delivered_after_restart(
        tmp_path: Path, unique_name: str, fsync: str) -> None:
    from streamer.broker import EmbeddedBroker, free_port
    from streamer.kafka_bus import KafkaBus

    port = free_port()
    bootstrap, ns, path, n = f"127.0.0.1:{port}", unique_name, tmp_path / "box" / "o.sqlite", 300
    _publish_then_kill(tmp_path, bootstrap, ns, path, n, fsync)  # broker away: nothing acknowledged
    with DurableOutbox(path) as box:
        stored = box.count()
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu.log").start()
    try:
        bus = KafkaBus(bootstrap, namespace=ns, durable=DurableOutbox(path), idempotence="off")
        recovered = bus.stats().recovered
        assert bus.flush(60)
        bus.close()
        copies = _events_on_topic(bootstrap, ns, n)
    finally:
        broker.stop()
    with DurableOutbox(path) as box:
        left = box.count()
    table(f"publishing process kill -9 with the broker away (fsync {fsync})", {
        "published / stored / recovered at restart": f"{n} / {stored} / {recovered}",
        "delivered (distinct) / left in the file": f"{len(copies)} / {left}",
        "lost": len(set(range(n)) - set(copies)), "duplicates": sum(copies.values()) - len(copies)})
    assert stored == recovered == n
    assert sorted(copies) == list(range(n)) and all(c == 1 for c in copies.values())
    assert left == 0


@pytest.mark.slow
def test_full_outbox_drops_oldest_counted_and_the_rest_arrive(tmp_path: Path, unique_name: str) -> None:
    """A tiny file cap with the broker away: appends never raise, drops are counted, oldest first."""
    from streamer.broker import EmbeddedBroker, free_port
    from streamer.kafka_bus import KafkaBus
    from streamer.schemas import TOPIC_INDICATORS
    from test_observability import _grid, make_event
    from datetime import datetime, timezone

    port = free_port()
    bootstrap, ns, path, n = f"127.0.0.1:{port}", unique_name, tmp_path / "o.sqlite", 400
    cell = _grid().cell_id(3, 3)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    bus = KafkaBus(bootstrap, namespace=ns, durable=DurableOutbox(path, max_bytes=96 * 1024), idempotence="off")
    for i in range(n):
        bus.publish(TOPIC_INDICATORS, make_event("cam-f", cell, i, start))
    dropped = bus.stats().dropped
    assert 0 < dropped < n and bus.stats().memory_only == 0
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu.log").start()
    try:
        assert bus.flush(60)
        bus.close()
        copies = _events_on_topic(bootstrap, ns, n - dropped)
    finally:
        broker.stop()
    print(f"\nfile cap 96 KiB, {n} published with the broker away: dropped {dropped} (oldest), "
          f"delivered {len(copies)}")
    assert sorted(copies) == list(range(dropped, n))  # exactly the oldest were dropped


# -- idempotence -----------------------------------------------------------------------------------
def test_idempotence_auto_falls_back_on_the_embedded_broker_and_says_so(
        kafka_bootstrap: str, unique_name: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from streamer.kafka_bus import KafkaBus
    from streamer.schemas import TOPIC_INDICATORS
    from test_observability import _grid, make_event
    from datetime import datetime, timezone

    caplog.set_level(logging.INFO, logger="streamer.kafka_bus")
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name)  # bus.idempotence defaults to auto
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(20):
        bus.publish(TOPIC_INDICATORS, make_event("cam-i", _grid().cell_id(2, 2), i, start))
    assert bus.flush(30)
    health = bus.health()
    bus.close()
    lines = [r.getMessage() for r in caplog.records if "idempotent producer" in r.getMessage()]
    assert health["idempotent"] is False and bus.stats().sent == 20
    assert lines and "off" in lines[0] and "UnknownError" in lines[0], lines


# -- a real full disk and SIGTERM during a burst ---------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs (needs mount rights: root in CI containers); skips loudly without them."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"!!! cannot mount a small tmpfs ({r.stderr.strip()}): disk-full NOT tested on a real disk")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
@pytest.mark.faults
def test_disk_full_under_the_outbox_drops_oldest_counted_without_crash(
        small_disk: Path, tmp_path: Path, unique_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """A real full disk (2 MiB tmpfs, half of it taken by another file) with the broker away: one ERROR,
    oldest dropped and counted, every waiting record in the file (none in memory only), then the other
    file goes, space returns, the file grows again without drops; exact counts on the topic."""
    import logging
    from datetime import datetime, timezone

    from streamer.broker import EmbeddedBroker, free_port
    from streamer.kafka_bus import KafkaBus
    from streamer.outbox import THAW_CHECK_S
    from streamer.schemas import TOPIC_INDICATORS
    from test_observability import _grid, make_event

    caplog.set_level(logging.WARNING)
    filler = small_disk / "other-data"
    filler.write_bytes(b"\0" * 1024 * 1024)
    port = free_port()
    bootstrap, ns, n1, n2 = f"127.0.0.1:{port}", unique_name, 1500, 100
    cell = _grid().cell_id(3, 3)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    box = DurableOutbox(small_disk / "o.sqlite", max_bytes=None)
    bus = KafkaBus(bootstrap, namespace=ns, durable=box, idempotence="off")
    for i in range(n1):  # about 1 kB each: the disk fills on the way
        bus.publish(TOPIC_INDICATORS, make_event("cam-x", cell, i, start))
    full = bus.stats()
    in_file = box.count()
    assert box.disk_full and full.dropped > 0 and full.memory_only == 0
    assert full.buffered == in_file  # bounded: what waits is what the file holds, nothing in memory only
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and r.name.startswith("streamer")]
    assert len(errors) == 1 and "the disk is full" in errors[0], errors  # once, not per record

    filler.unlink()  # space returns: the sender thaws the outbox on its next tick
    t_back = time.monotonic()
    deadline = t_back + 5 * THAW_CHECK_S + 2
    while box.disk_full and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not box.disk_full, "the outbox did not notice the space coming back"
    thaw_s = time.monotonic() - t_back
    for i in range(n1, n1 + n2):
        bus.publish(TOPIC_INDICATORS, make_event("cam-x", cell, i, start))
    st = bus.stats()
    assert st.dropped == full.dropped and st.memory_only == 0  # room again: no more drops
    assert box.count() == in_file + n2

    broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu.log").start()
    try:
        assert bus.flush(60)
        bus.close()
        copies = _events_on_topic(bootstrap, ns, n1 + n2 - st.dropped)
    finally:
        broker.stop()
    with DurableOutbox(small_disk / "o.sqlite") as again:
        left = again.count()
    full_lines = [r for r in caplog.records if "durable outbox full" in r.getMessage()]
    table("disk full under the outbox (2 MiB tmpfs, 1 MiB taken), broker away; then space back", {
        "published before / after the space came back": f"{n1} / {n2}",
        "dropped oldest-first (counted) / kept in the file / in memory only":
            f"{st.dropped} / {in_file} / {st.memory_only}",
        "ERROR lines / drop lines (WARNING, one a second at most)": f"{len(errors)} / {len(full_lines)}",
        "space back noticed in": f"{thaw_s:.1f} s",
        "delivered (distinct) / left in the file": f"{len(copies)} / {left}",
        "lost (not counted as dropped)": n1 + n2 - st.dropped - len(copies),
        "duplicates": sum(copies.values()) - len(copies)})
    assert len(copies) + st.dropped == n1 + n2 and all(c == 1 for c in copies.values())
    assert sorted(copies) == list(range(st.dropped, n1 + n2))  # exactly the oldest were dropped
    assert full_lines and all(r.levelname == "WARNING" for r in full_lines)  # the bounds' own drop line
    assert left == 0


def test_a_nearly_full_disk_at_open_caps_the_file_and_drops_make_room(
        small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for the reserve at open: the outbox starts capped (not in memory), deleting the oldest
    rows makes room for new ones in a file that no longer grows, and it thaws when space returns."""
    from streamer import outbox

    filler = small_disk / "other-data"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 200 * 1024))  # 200 KiB left: under the 256 KiB reserve
    box = DurableOutbox(small_disk / "o.sqlite", max_bytes=None)
    assert box.disk_full and not (small_disk / "o.sqlite.reserve").exists()
    fit = 0
    with pytest.raises(OutboxFull):
        for fit in range(10_000):
            box.append("t", None, b"x" * 1000)
    assert 20 < fit == box.count()  # the file got the room left but the WAL's
    size = (small_disk / "o.sqlite").stat().st_size
    for _ in range(5):  # oldest out, new in (only whole freed pages make room): the bus's cycle
        box.remove(box.oldest(20))
        for _ in range(12):
            box.append("t", None, b"y" * 1000)
    assert box.count() == fit - 5 * 8 and (small_disk / "o.sqlite").stat().st_size == size
    monkeypatch.setattr(outbox, "THAW_CHECK_S", 0.0)
    assert not box.maybe_thaw()  # still full
    filler.unlink()
    assert box.maybe_thaw() and not box.disk_full and (small_disk / "o.sqlite.reserve").exists()
    for _ in range(100):  # it grows again
        box.append("t", None, b"z" * 1000)
    assert box.count() == fit - 40 + 100
    box.close()


SIGTERM_PUBLISHER = textwrap.dedent("""
    import sys, time
    from streamer.kafka_bus import KafkaBus, install_sigterm_flush
    from streamer.outbox import DurableOutbox
    from streamer.schemas import TOPIC_INDICATORS
    sys.path.insert(0, "tests")
    from test_observability import make_event, _grid
    from datetime import datetime, timezone
    bootstrap, ns, path = sys.argv[1], sys.argv[2], sys.argv[3]
    bus = KafkaBus(bootstrap, namespace=ns, durable=DurableOutbox(path), idempotence="off")
    install_sigterm_flush(bus, timeout=1.0)
    cell = _grid().cell_id(3, 3)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    i = 0
    while True:  # a burst until the signal
        bus.publish(TOPIC_INDICATORS, make_event("cam-t", cell, i, start))
        i += 1
        if i == 200:
            print("BURST", flush=True)
        if i % 50 == 0:
            print("AT", i, flush=True)
""")


@pytest.mark.slow
@pytest.mark.faults
def test_sigterm_during_a_burst_with_the_broker_away_keeps_every_record(tmp_path: Path, unique_name: str) -> None:
    from streamer.broker import EmbeddedBroker, free_port
    from streamer.kafka_bus import KafkaBus

    port = free_port()
    bootstrap, ns, path = f"127.0.0.1:{port}", unique_name, tmp_path / "o.sqlite"
    script = tmp_path / "burst.py"
    script.write_text(SIGTERM_PUBLISHER)
    proc = subprocess.Popen([sys.executable, str(script), bootstrap, ns, str(path)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seen = []
    while not (seen and seen[-1].startswith("BURST")):  # other lines (warnings) may come first
        line = proc.stdout.readline()
        assert line, f"publisher ended early: {seen} {proc.stderr.read()[-2000:]}"
        seen.append(line)
    assert any(x.startswith("AT") for x in seen)
    proc.send_signal(signal.SIGTERM)
    # read both pipes while it exits: a publisher blocked writing to a full pipe never exits
    _, err = proc.communicate(timeout=60)
    code = proc.returncode
    with DurableOutbox(path) as box:
        kept = box.count()
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu.log").start()
    try:
        bus = KafkaBus(bootstrap, namespace=ns, durable=DurableOutbox(path), idempotence="off")
        assert bus.flush(60)
        bus.close()
        copies = _events_on_topic(bootstrap, ns, kept)
    finally:
        broker.stop()
    table("SIGTERM during a burst with the broker away, then restarted", {
        "exit code / kept in the file": f"{code} / {kept}",
        "delivered after the restart (distinct)": len(copies),
        "lost": len(set(range(kept)) - set(copies)), "duplicates": sum(copies.values()) - len(copies)})
    assert code == 143, err[-2000:]
    assert "kept in the durable outbox" in err and "counted as dropped" not in err
    assert kept >= 200 and sorted(copies) == list(range(kept)) and all(c == 1 for c in copies.values())
