"""Deduplicator: repeats dropped by id within a bounded window."""
from __future__ import annotations

import pytest

from streamer.dedup import Deduplicator
from streamer.schemas import CameraStatus, utcnow
from tests.test_kafka_bus import indicator


def test_repeats_are_recognised_and_memory_stays_bounded():
    d = Deduplicator(max_size=3)
    assert [d.seen(x) for x in ["a", "b", "a", "c", "d"]] == [False, False, True, False, False]
    assert len(d) == 3 and "b" not in d  # least recently seen forgotten first ("a" was refreshed)
    assert d.seen("a") and not d.seen("b")
    assert d.repeats == 2 and d.evicted == 2


def test_events_are_deduplicated_by_their_event_id_and_unkeyed_messages_pass():
    d = Deduplicator()
    assert not d.is_repeat(indicator(1))
    assert d.is_repeat(indicator(1))
    assert not d.is_repeat(indicator(2))
    status = CameraStatus(camera_id="c", state="online", at=utcnow())
    assert not d.is_repeat(status) and not d.is_repeat(status)  # heartbeats carry no dedup id


def test_a_window_of_zero_is_refused():
    with pytest.raises(ValueError, match="max_size"):
        Deduplicator(0)
