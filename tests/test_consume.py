"""The shared consumer loop on the in-memory bus: dedupe, dead letters, commit after output, backoff, hooks."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest

from streamer.bus import InMemoryBus
from streamer.consume import Backoff, ConsumerLoop
from streamer.dedup import Deduplicator
from streamer.schemas import TOPIC_DLQ, TOPIC_INDICATORS, ConceptResult, DetectionSummary, IndicatorEvent

T0 = datetime(2026, 5, 1, 22, 0, tzinfo=timezone.utc)


def ev(i: int, event_id: str | None = None) -> IndicatorEvent:
    start = T0 + timedelta(seconds=i)
    return IndicatorEvent(
        event_id=event_id or f"cam1:{i}", camera_id="cam1", cell_id="r0c0", clip_index=i, clip_start=start,
        clip_end=start + timedelta(seconds=2), stream_start_s=i, stream_end_s=i + 2, frame_first=0, frame_last=9,
        captured_at=start + timedelta(seconds=2), detections=DetectionSummary(frames=10),
        concept=ConceptResult(label="normal", score=0.9))


def ids(recs) -> list[str]:
    return [r.event.event_id for r in recs]


def test_repeats_dropped_or_marked_by_event_id() -> None:
    bus = InMemoryBus(partitions=1)
    for i in (0, 1, 0, 2, 1):
        bus.publish(TOPIC_INDICATORS, ev(i))
    got, told = [], []
    loop = ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=got.extend, dedupe=Deduplicator(10),
                        on_repeat=lambda r: told.append(r.event.event_id))
    loop.step(0.05)
    assert ids(got) == ["cam1:0", "cam1:1", "cam1:2"] and told == ["cam1:0", "cam1:1"]

    marked: list[tuple[str, bool]] = []
    mark = ConsumerLoop(bus, [TOPIC_INDICATORS], group="m", repeats="mark", dedupe=Deduplicator(10),
                        handle=lambda recs: marked.extend(zip(ids(recs), mark.repeats)))
    mark.step(0.05)
    assert marked == [("cam1:0", False), ("cam1:1", False), ("cam1:0", True), ("cam1:2", False), ("cam1:1", True)]
    plain: list = []
    ConsumerLoop(bus, [TOPIC_INDICATORS], group="p", handle=plain.extend).step(0.05)
    assert len(plain) == 5  # no deduplicator: every record


def test_dead_letters_skip_the_handler_and_are_reported_when_asked() -> None:
    bus = InMemoryBus(partitions=1)
    bus.publish(TOPIC_INDICATORS, ev(0))
    bus.publish_raw(TOPIC_INDICATORS, b"\xff\xfe not json", "cam1")
    bus.publish_raw(TOPIC_INDICATORS, b'{"schema": "imminence.indicator/1"}', "cam1")
    bus.publish(TOPIC_INDICATORS, ev(1))
    got, reported = [], []
    loop = ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=got.extend, on_dead_letter=reported.append)
    loop.step(0.05)
    assert ids(got) == ["cam1:0", "cam1:1"] and reported == [2]
    dl = bus.records(TOPIC_DLQ)
    assert [(d.source_topic, d.partition, d.offset) for d in dl] == [
        (TOPIC_INDICATORS, 0, 1), (TOPIC_INDICATORS, 0, 2)]
    loop.step(0.01)
    assert reported == [2]  # told once per dead letter
    silent = ConsumerLoop(bus, [TOPIC_INDICATORS], group="s", handle=lambda r: None)
    silent.step(0.05)  # policy "dead-letter only": the bus counts them, the consumer is not told
    assert bus.stats().dead_lettered == 4


def test_commit_only_after_outputs_are_flushed_and_uncommitted_records_come_again() -> None:
    bus = InMemoryBus(partitions=1)
    for i in range(3):
        bus.publish(TOPIC_INDICATORS, ev(i))
    order: list[str] = []
    flushed = {"ok": False}

    def after_batch() -> bool:
        order.append("publish")
        return flushed["ok"]

    loop = ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=lambda recs: order.append("handle"),
                        after_batch=after_batch, lag_every_s=None)
    loop.step(0.05)
    assert order == ["handle", "publish"] and loop.commits == 0 and loop.pending
    loop.close()  # crash before the outputs were acknowledged: everything comes again
    again: list = []
    second = ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=again.extend,
                          after_batch=lambda: flushed["ok"])
    flushed["ok"] = True
    second.step(0.05)
    assert ids(again) == ["cam1:0", "cam1:1", "cam1:2"] and second.commits == 1 and not second.pending
    second.close()
    third: list = []
    ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=third.extend).step(0.05)
    assert third == []  # committed after output: nothing replayed


def test_run_exits_when_idle_and_commits_after_finish() -> None:
    bus = InMemoryBus(partitions=1)
    bus.publish(TOPIC_INDICATORS, ev(0))
    loop = ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=lambda recs: None, after_batch=lambda: False)
    loop.run(idle_exit_s=0.1, poll_timeout=0.02, finish=lambda: True)
    assert loop.commits == 1 and loop.subscription is None
    left: list = []
    ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=left.extend).step(0.05)
    assert left == []


class _Flaky(InMemoryBus):
    def __init__(self, fail: int) -> None:
        super().__init__(partitions=1)
        self.fail = fail
        self.calls = 0

    def subscribe(self, topics, group=None, **kw):
        sub = super().subscribe(topics, group, **kw)
        poll = sub.poll

        def flaky(timeout=1.0, max_records=100):
            self.calls += 1
            if self.calls <= self.fail:
                raise ConnectionError("broker unreachable")
            return poll(timeout, max_records)

        sub.poll = flaky
        return sub


def test_backoff_is_capped_exponential() -> None:
    b = Backoff(initial_s=0.5, cap_s=3.0)
    assert [b.delay(n) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_broker_errors_back_off_log_once_per_state_change_and_recover(monkeypatch, caplog) -> None:
    bus = _Flaky(fail=4)
    bus.publish(TOPIC_INDICATORS, ev(0))
    waits: list[float] = []
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda t=None: waits.append(t) or False)
    errors, got = [], []
    loop = ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=got.extend, stop=stop,
                        backoff=Backoff(0.1, 0.4), on_error=lambda msg, exc: errors.append(msg), name="t")
    with caplog.at_level(logging.DEBUG, logger="streamer.consume"):
        for _ in range(5):
            loop.step(0.01)
    assert waits == [0.1, 0.2, 0.4, 0.4] and len(errors) == 4 and "broker unreachable" in errors[0]
    assert ids(got) == ["cam1:0"] and loop.failures == 0 and loop.errors == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "broker error" in warnings[0].getMessage()
    assert len(infos) == 1 and "reachable again after 4" in infos[0].getMessage()


def test_reopen_on_error_opens_a_fresh_subscription() -> None:
    bus = _Flaky(fail=1)
    opened: list = []
    stop = threading.Event()
    stop.wait = lambda t=None: False  # type: ignore[method-assign]
    loop = ConsumerLoop(bus, [TOPIC_INDICATORS], group="g", handle=lambda r: None, reopen_on_error=True,
                        on_open=opened.append, stop=stop)
    loop.step(0.01)
    assert loop.subscription is None and len(opened) == 1
    loop.step(0.01)
    assert len(opened) == 2 and loop.subscription is opened[1]


def test_rebalance_hooks_installed_where_the_subscription_has_them() -> None:
    class HookedBus(InMemoryBus):
        def subscribe(self, topics, group=None, **kw):
            sub = super().subscribe(topics, group, **kw)
            sub.on_revoke = None
            sub.on_assign = None
            return sub

    revoke, assign = (lambda: True), (lambda pairs: None)
    loop = ConsumerLoop(HookedBus(), [TOPIC_INDICATORS], group="g", handle=lambda r: None,
                        on_revoke=revoke, on_assign=assign)
    sub = loop.open()
    assert sub.on_revoke is revoke and sub.on_assign is assign
    plain = ConsumerLoop(InMemoryBus(), [TOPIC_INDICATORS], group="g", handle=lambda r: None, on_revoke=revoke)
    assert not hasattr(plain.open(), "on_revoke")


def test_bad_repeat_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        ConsumerLoop(InMemoryBus(), [TOPIC_INDICATORS], handle=lambda r: None, repeats="keep")  # type: ignore[arg-type]
