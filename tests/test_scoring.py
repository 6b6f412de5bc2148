"""Scoring service on the in-memory bus: aggregation, lateness, duplicates, skips, restarts, dead letters."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from inference.config import ScoringConfig
from inference.crime_models import default_models_dir, load_models
from inference.service import ScoringService
from inference.windows import Outcome, WindowAggregator
from streamer.bus import InMemoryBus, Received
from streamer.revisions import latest_per_window
from streamer.schemas import (CRIME_TYPES, TOPIC_CELLS, TOPIC_DLQ, TOPIC_INDICATORS, CellImminence,
                              ConceptResult, DetectionSummary, IndicatorEvent)

T0 = datetime(2026, 5, 1, 22, 0, tzinfo=timezone.utc)  # window-aligned (60 s)
CELLS = {"r0c0", "r0c1", "r1c0"}


@pytest.fixture(scope="module")
def models():
    return load_models(default_models_dir())


def ev(i: int, cell: str | None = "r0c0", seconds: float = 0.0, concept: str = "normal",
       camera: str = "cam1", event_id: str | None = None) -> IndicatorEvent:
    start = T0 + timedelta(seconds=seconds)
    return IndicatorEvent(
        event_id=event_id or f"{camera}:{i}", camera_id=camera, cell_id=cell, clip_index=i, clip_start=start,
        clip_end=start + timedelta(seconds=2), stream_start_s=seconds, stream_end_s=seconds + 2,
        frame_first=0, frame_last=9, captured_at=start + timedelta(seconds=2),
        detections=DetectionSummary(frames=10), concept=ConceptResult(label=concept, score=0.9))


def cfg(**kw) -> ScoringConfig:
    base = dict(window_s=60, slide_s=60, allowed_lateness_s=30, emit_interval_s=0.05, restore_idle_s=0.3,
                max_future_s=300)
    return ScoringConfig(**{**base, **kw})


def latest(bus: InMemoryBus) -> dict[tuple[str, datetime], CellImminence]:
    return latest_per_window(bus.records(TOPIC_CELLS))


def run_service(bus, models, c: ScoringConfig, **kw) -> ScoringService:
    svc = ScoringService(bus, models, c, cells=CELLS, clock=lambda: T0.timestamp() + 3600, **kw)
    svc.run(idle_exit_s=0.3, poll_timeout_s=0.05)
    return svc


def test_aggregates_scores_and_explains_per_cell_window(models) -> None:
    bus = InMemoryBus()
    concepts = ["violent_movement", "forceful_seizure", "sneaking", "normal", "lethal_object"]
    for i in range(30):
        bus.publish(TOPIC_INDICATORS, ev(i, "r0c0", 2 * i, concepts[i % 5], camera="camA"))
    for i in range(10):
        bus.publish(TOPIC_INDICATORS, ev(i, "r0c1", 60 + 2 * i, "normal", camera="camB"))
    svc = run_service(bus, models, cfg())
    res = latest(bus)
    assert set(res) == {("r0c0", T0), ("r0c1", T0 + timedelta(seconds=60))}
    a = res[("r0c0", T0)]
    assert a.events == 30 and len(set(a.event_ids)) == 30
    assert a.concept_counts == {c: 6 for c in concepts}
    assert a.cameras == ["camA"] and a.window_end == T0 + timedelta(seconds=60)
    assert a.message_id == f"r0c0|{T0.isoformat()}|{a.revision}"
    assert set(a.imminence) == set(CRIME_TYPES)
    for crime in CRIME_TYPES:
        assert 0 <= a.imminence[crime] <= 10
        assert a.flags[crime] == (a.imminence[crime] > 5)
        assert a.inputs[crime]["hour"] == pytest.approx(22.0)
        assert 1 <= len(a.top_rules[crime]) <= 3
        assert a.top_rules[crime][0].rule.startswith("IF rate is")
    # the robbery inputs count violent movements and both seizure concepts
    assert a.inputs["robbery"]["violent_movement"] == 6 and a.inputs["robbery"]["item_seizure"] == 6
    # a busy violent window scores higher robbery imminence than a quiet one
    assert a.imminence["robbery"] > res[("r0c1", T0 + timedelta(seconds=60))].imminence["robbery"]
    st = svc.stats()
    assert st["events"]["in"] == 40 and st["events"]["added"] == 40 and st["commits"] >= 1


def test_scores_equal_sum_of_rule_contributions(models) -> None:
    from inference.crime_models import score_rows

    row = ("r0c0", T0.timestamp(), {"violent_movement": 4, "sneaking": 2})
    res = score_rows(models, [row], top_rules=100)[0]
    for crime, m in models.items():
        total = sum(s * o for _, s, o in res["top_rules"][crime])
        assert res["imminence"][crime] == pytest.approx(min(10.0, max(0.0, total)), abs=1e-9)
        ex = m.anfis.explain(m.inputs(*row))
        assert sum(e.contribution for e in ex) == pytest.approx(total, abs=1e-9)


def test_windows_sliding_and_lateness() -> None:
    agg = WindowAggregator(60, 30, 20)
    assert agg.starts_of(75.0) == [30.0, 60.0]
    assert agg.starts_of(60.0) == [30.0, 60.0]
    assert agg.add("a", "c", 10, "normal", "k", 0) is Outcome.ADDED  # [-30,30) and [0,60)
    assert agg.add("b", "c", 95, "normal", "k", 0) is Outcome.ADDED  # watermark 95
    # [0,60) closed (60 + 20 <= 95); [30,90) ended but open until 110: a late update
    assert agg.add("c", "c", 50, "sneaking", "k", 0) is Outcome.LATE
    assert agg.add("c", "c", 50, "sneaking", "k", 0) is Outcome.DUPLICATE
    assert agg.add("d", "c", 5, "normal", "k", 0) is Outcome.TOO_LATE
    assert agg.windows[("c", 30.0)].concept_counts == {"sneaking": 1}
    closed = agg.expire()
    assert {(w.cell_id, w.start) for w in closed} == {("c", -30.0), ("c", 0.0)}
    with pytest.raises(ValueError, match="slide_s <= window_s"):
        WindowAggregator(30, 60, 0)


def test_live_and_replayed_events_close_windows_on_their_own_clocks() -> None:
    agg = WindowAggregator(60, 60, 30)
    now = T0.timestamp()
    old = now - 90 * 86400  # a recording of three months before
    assert agg.add("l1", "c", now, None, "lobby", now) is Outcome.ADDED
    # one watermark would close every window of the recording; the replay clock has its own
    assert agg.add("r1", "c", old, None, "rec", now, replay=True) is Outcome.ADDED
    assert agg.add("l0", "c", old, None, "lobby", now) is Outcome.TOO_LATE        # a live event that old is late
    assert agg.add("r2", "c", old + 200, None, "rec", now, replay=True) is Outcome.ADDED
    assert agg.add("r0", "c", old - 100, None, "rec", now, replay=True) is Outcome.TOO_LATE  # its own lateness
    assert agg.watermarks == {"live": now, "replay": old + 200} and agg.watermark == now
    assert agg.windows[("c", now)].replay is False
    assert agg.windows[("c", old)].replay is True
    # a live event in a replayed window (a recording stamped near now): the window is no longer replay-only
    assert agg.add("l2", "c", old + 210, None, "lobby", now) is Outcome.TOO_LATE
    assert agg.add("r3", "c", now + 5, None, "rec", now, replay=True) is Outcome.ADDED
    assert agg.windows[("c", now)].clocks == {"live", "replay"} and not agg.windows[("c", now)].replay
    # closed once the watermark of every clock that counted in it has passed
    assert agg.add("r4", "c", now + 95, None, "rec", now, replay=True) is Outcome.ADDED
    assert ("c", now) in agg.windows                                        # live watermark still at now
    assert agg.add("l3", "c", now + 95, None, "lobby", now) is Outcome.ADDED
    assert ("c", now) in {(w.cell_id, w.start) for w in agg.expire()}
    # a published replay window read back (restore) keeps its clock
    fresh = WindowAggregator(60, 60, 30)
    fresh.merge("c", old, old + 60, 0, ["r1"], [""], ["rec"], {}, 1, replay=True)
    assert fresh.windows[("c", old)].replay is True


def test_a_replay_started_beside_a_live_camera_is_counted_and_marked(models) -> None:
    """Live events (stamped now) come first; a recording of months before, replayed after, still counts."""
    bus = InMemoryBus()
    now_s = 3600 - 120  # the service's clock is T0 + 1 h
    for i in range(10):
        bus.publish(TOPIC_INDICATORS, ev(i, "r0c1", now_s + 2 * i, camera="lobby"))
    for i in range(10):
        e = ev(i, "r0c0", 2 * i, "sneaking", camera="scene-0")
        shift = timedelta(days=-90)
        bus.publish(TOPIC_INDICATORS, e.model_copy(update={
            "replay": True, "clip_start": e.clip_start + shift, "clip_end": e.clip_end + shift}))
    svc = run_service(bus, models, cfg())
    st = svc.stats()
    assert st["events"]["too_late"] == 0 and st["events"]["added"] == 20, st
    res = latest(bus)
    replayed = [m for m in res.values() if m.cell_id == "r0c0"]
    live = [m for m in res.values() if m.cell_id == "r0c1"]
    assert sum(m.events for m in replayed) == 10 and all(m.replay for m in replayed)
    assert sum(m.events for m in live) == 10 and not any(m.replay for m in live)
    assert set(st["watermarks"]) == {"live", "replay"}


def test_late_events_update_their_window_and_too_late_are_counted(models) -> None:
    bus = InMemoryBus(partitions=1)
    c = cfg(allowed_lateness_s=30)
    svc = ScoringService(bus, models, c, cells=CELLS, clock=lambda: T0.timestamp() + 3600)
    rec = lambda e, o: Received(TOPIC_INDICATORS, 0, o, e.camera_id, e, None)  # noqa: E731
    svc.process([rec(ev(0, seconds=10), 0), rec(ev(1, seconds=70), 1)])  # watermark 70
    svc.emit()
    first = latest(bus)[("r0c0", T0)]
    assert first.events == 1 and first.revision == 0
    svc.process([rec(ev(2, seconds=20, concept="sneaking"), 2)])  # window [0,60) ended, open until 90
    svc.emit()
    second = latest(bus)[("r0c0", T0)]
    assert second.revision == 1 and second.events == 2 and second.concept_counts["sneaking"] == 1
    svc.process([rec(ev(3, seconds=200), 3), rec(ev(4, seconds=30), 4)])  # watermark 200: [0,60) closed
    svc.emit()
    assert latest(bus)[("r0c0", T0)].revision == 1
    st = svc.stats()["events"]
    assert st["late"] == 1 and st["too_late"] == 1 and st["added"] == 3


def test_unknown_camera_skipped_when_cameras_are_known(models) -> None:
    bus = InMemoryBus()
    bus.publish(TOPIC_INDICATORS, ev(0, camera="cam1"))
    bus.publish(TOPIC_INDICATORS, ev(1, camera="intruder"))
    svc = ScoringService(bus, models, cfg(), cells=CELLS, cameras={"cam1"}, clock=lambda: T0.timestamp() + 3600)
    svc.run(idle_exit_s=0.3, poll_timeout_s=0.05)
    assert svc.stats()["events"]["unknown_camera"] == 1
    assert latest(bus)[("r0c0", T0)].cameras == ["cam1"]


def test_unacknowledged_publish_is_not_committed_and_retried(models) -> None:
    class Flaky(InMemoryBus):
        ok = False

        def flush(self, timeout=None):
            return self.ok

    bus = Flaky()
    for i in range(3):
        bus.publish(TOPIC_INDICATORS, ev(i, seconds=i))
    svc = ScoringService(bus, models, cfg(), cells=CELLS, clock=lambda: T0.timestamp() + 3600)
    sub = svc.open()
    svc.process(sub.poll(timeout=0.1))
    assert svc.emit() == 0 and svc.stats()["commits"] == 0
    bus.ok = True
    assert svc.emit() == 1 and svc.stats()["commits"] == 1
    assert latest(bus)[("r0c0", T0)].events == 3


def test_duplicates_counted_once(models) -> None:
    bus = InMemoryBus()
    for i in range(5):
        bus.publish(TOPIC_INDICATORS, ev(i, seconds=2 * i, concept="sneaking"))
    bus.publish(TOPIC_INDICATORS, ev(2, seconds=4, concept="sneaking"))  # producer retry: same id
    svc = run_service(bus, models, cfg())
    w = latest(bus)[("r0c0", T0)]
    assert w.events == 5 and w.concept_counts == {"sneaking": 5}
    assert svc.stats()["events"]["duplicate"] == 1


def test_unknown_cell_future_clock_and_malformed_are_skipped_not_fatal(models, caplog) -> None:
    bus = InMemoryBus()
    bus.publish(TOPIC_INDICATORS, ev(0, "r0c0"))
    bus.publish(TOPIC_INDICATORS, ev(1, "r9c9"))
    bus.publish(TOPIC_INDICATORS, ev(2, None))
    bus.publish(TOPIC_INDICATORS, ev(3, "r0c0", seconds=3600 + 301 + 60))  # beyond max_future_s of the clock
    bus.publish_raw(TOPIC_INDICATORS, b'{"schema": "imminence.indicator/1", "event_id": 5}', "cam1")
    bus.publish_raw(TOPIC_INDICATORS, b"\xff\xfe not json", "cam1")
    bus.publish(TOPIC_INDICATORS, ev(4, "r0c0", seconds=2))
    with caplog.at_level("WARNING"):
        svc = run_service(bus, models, cfg())
    st = svc.stats()["events"]
    assert st["unknown_cell"] == 2 and st["future"] == 1 and st["added"] == 2
    assert latest(bus)[("r0c0", T0)].events == 2
    assert len(bus.records(TOPIC_DLQ)) == 2
    assert "not in the grid" in caplog.text and "ahead of the clock" in caplog.text


def test_restart_mid_stream_counts_every_event_once(models) -> None:
    """Instance 1 publishes and commits part of the stream, then dies with uncommitted events;
    instance 2 rebuilds the open windows from imminence.cells and recounts nothing."""
    bus = InMemoryBus(partitions=2)
    events = [ev(i, f"r0c{i % 2}", seconds=i, camera=f"cam{i % 4}", event_id=f"e{i}") for i in range(100)]
    for e in events[:50]:
        bus.publish(TOPIC_INDICATORS, e)
    c = cfg(allowed_lateness_s=1e6)
    one = ScoringService(bus, models, c, cells=CELLS, clock=lambda: T0.timestamp() + 3600)
    sub = one.open()
    recs = sub.poll(timeout=0.1, max_records=30)
    one.process(recs)
    one.emit()  # published + committed
    one.process(sub.poll(timeout=0.1, max_records=1000))  # counted, never published nor committed
    sub.close()  # crash
    for e in events[50:]:
        bus.publish(TOPIC_INDICATORS, e)
    two = run_service(bus, models, c)
    assert two.stats()["restored_windows"] >= 1
    res = latest(bus)
    ids = [i for m in res.values() for i in m.event_ids]
    assert sorted(ids) == sorted(e.event_id for e in events)  # none lost, none twice (tumbling windows)
    assert all(m.events == len(set(m.event_ids)) for m in res.values())
    assert sum(m.events for m in res.values()) == 100


def test_stop_finishes_batch_publishes_and_commits(models) -> None:
    bus = InMemoryBus()
    for i in range(20):
        bus.publish(TOPIC_INDICATORS, ev(i, seconds=i))
    svc = ScoringService(bus, models, cfg(emit_interval_s=3600), cells=CELLS, clock=lambda: T0.timestamp() + 3600)
    t = threading.Thread(target=svc.run, kwargs={"poll_timeout_s": 0.05})
    t.start()
    deadline = time.monotonic() + 5
    while svc.stats()["events"]["in"] < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert bus.records(TOPIC_CELLS) == []  # emit interval not reached yet
    svc.stop()
    t.join(5)
    assert not t.is_alive()
    assert latest(bus)[("r0c0", T0)].events == 20
    # committed: a new member of the group gets nothing again
    again = bus.subscribe([TOPIC_INDICATORS], "imminence-score")
    assert again.poll(timeout=0.1) == []


def test_service_refuses_incomplete_model_set(models) -> None:
    with pytest.raises(ValueError, match="models missing for crime type"):
        ScoringService(InMemoryBus(), {k: v for k, v in models.items() if k != "larceny"}, cfg())


def test_cli_score_refuses_missing_broker_and_models(tmp_path, capsys) -> None:
    from imminence.cli import main

    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text("grid: {bbox: [0, 0, 400, 400], crs: metric, cell_size_m: 100}\n")
    assert main(["score", "--config", str(cfgfile)]) == 2
    assert "no broker" in capsys.readouterr().err
    assert main(["score", "--config", str(cfgfile), "--bootstrap", "127.0.0.1:1",
                 "--models", str(tmp_path / "none")]) == 1
    assert "model folder does not exist" in capsys.readouterr().err
    cfgfile.write_text("scoring: {window_s: 30, slide_s: 60}\n")
    assert main(["score", "--config", str(cfgfile), "--bootstrap", "127.0.0.1:1"]) == 2
    assert "slide_s (60.0) may not exceed window_s" in capsys.readouterr().err


def _final(bus: InMemoryBus) -> dict:
    """Highest revision per window; messages tied at that revision must agree."""
    best: dict = {}
    for m in bus.records(TOPIC_CELLS):
        k = (m.cell_id, m.window_start)
        if k not in best or best[k][0].revision < m.revision:
            best[k] = [m]
        elif best[k][0].revision == m.revision:
            best[k].append(m)
    for k, ms in best.items():
        assert len({frozenset(m.event_ids) for m in ms}) == 1, f"revision tie with different counts in {k}"
    return {k: ms[0] for k, ms in best.items()}


def test_two_instances_with_rebalance_converge_on_exact_counts(models) -> None:
    """Cells whose cameras sit on partitions of different instances, an instance joining mid-stream
    (rebalance with uncommitted records), and one leaving: every window ends counting each event once."""
    bus = InMemoryBus(partitions=3)
    concepts = ["normal", "sneaking", "violent_movement"]
    events = [ev(i, f"r0c{(i % 6) // 3}", seconds=i // 6 * 2, concept=concepts[i % 3], camera=f"cam{i % 6}",
                 event_id=f"e{i}") for i in range(360)]  # 6 cameras, 2 cells, 2 minutes
    c = cfg(allowed_lateness_s=1e6, emit_interval_s=3600, restore_idle_s=0.05)
    mk = lambda: ScoringService(bus, models, c, cells=CELLS, clock=lambda: T0.timestamp() + 3600)  # noqa: E731
    a = mk()
    a.open()
    for e in events[:120]:
        bus.publish(TOPIC_INDICATORS, e)
    a.step(0.05, force_emit=True)
    for e in events[120:240]:
        bus.publish(TOPIC_INDICATORS, e)
    a.step(0.05)  # counted, not yet published nor committed
    b = mk()
    b.open()  # rebalance: A's uncommitted records go to whoever owns their partitions now
    for e in events[240:]:
        bus.publish(TOPIC_INDICATORS, e)
    for _ in range(6):
        for s in (a, b):
            s.step(0.02, force_emit=True)
    a.emit()
    a.close()  # A leaves: B takes every partition
    for _ in range(6):
        b.step(0.02, force_emit=True)
    final = _final(bus)
    assert len(final) == 4
    ids = [i for m in final.values() for i in m.event_ids]
    assert sorted(ids) == sorted(e.event_id for e in events)
    for m in final.values():
        assert m.events == 90 and sum(m.concept_counts.values()) == 90
        assert m.concept_counts == {k: 30 for k in concepts}
        assert len(m.cameras) == 3
    assert b.stats()["merges"].get("merged", 0) + a.stats()["merges"].get("merged", 0) > 0


def test_watermark_is_the_min_of_active_cameras_and_never_moves_back() -> None:
    """Per-camera watermarks: one camera's partition read ahead of another's does not make the other's events
    too late; a camera whose clock steps back neither moves the watermark back nor holds it once idle."""
    agg = WindowAggregator(60, 60, 60, source_idle_s=30)
    assert agg.add("a0", "c1", 0.0, "x", "cam-a", now=0) is Outcome.ADDED
    for i in range(150):  # cam-j's backlog read first: 5 minutes ahead
        assert agg.add(f"j{i}", "c2", 2.0 * i, "x", "cam-j", now=1) is Outcome.ADDED
    assert agg.watermark == 0.0  # held by cam-a
    for i in range(1, 150):  # cam-a's, read later: none too late (a global max would drop most of them)
        assert agg.add(f"a{i}", "c1", 2.0 * i, "x", "cam-a", now=2) is not Outcome.TOO_LATE
    assert agg.watermark == 298.0
    # cam-j's clock steps back 10 minutes: too late, and neither its nor the clock's watermark moves back
    assert agg.add("j-back", "c2", 298.0 - 600, "x", "cam-j", now=3) is Outcome.TOO_LATE
    assert agg.source_watermark("cam-j") == 298.0 and agg.watermark == 298.0
    # cam-a carries on; cam-j, not advancing, stops holding the watermark after source_idle_s
    agg.add("a-next", "c1", 400.0, "x", "cam-a", now=10)
    assert agg.watermark == 298.0
    agg.add("a-later", "c1", 402.0, "x", "cam-a", now=40)
    assert agg.watermark == 402.0


def test_too_late_events_are_counted_and_logged_per_camera(models, caplog) -> None:
    """Two cameras too late within the log's rate limit: both are named, each has its own count."""
    svc = ScoringService(InMemoryBus(), models, cfg(allowed_lateness_s=0), cells=CELLS,
                         clock=lambda: T0.timestamp() + 3600)
    evs = [ev(0, camera="cam-a", seconds=600), ev(1, camera="cam-a", seconds=0), ev(0, camera="cam-j", seconds=0)]
    with caplog.at_level("WARNING", logger="inference.service"):
        svc.process([Received(TOPIC_INDICATORS, 0, i, e.camera_id, e, None) for i, e in enumerate(evs)])
    assert svc.stats()["too_late_by_camera"] == {"cam-a": 1, "cam-j": 1}
    named = {getattr(r, "camera", None) for r in caplog.records if "windows closed" in r.getMessage()}
    assert named == {"cam-a", "cam-j"}
