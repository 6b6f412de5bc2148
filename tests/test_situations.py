"""Situations: the new/update/end lifecycle on synthetic clips, zone dwell, repeat ids, zone config errors,
and end to end: a worker over real footage onto the real broker, twice (a restart), read back with
`imminence subscribe situations`.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Optional

import pytest
from pydantic import ValidationError

from streamer import schemas
from streamer.config import CameraConfig, Position, ZoneConfig
from streamer.dedup import Deduplicator
from streamer.situations import SituationTracker
from tests.test_subscribe import cli  # noqa: F401 - the in-process `imminence` fixture

START = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)
L = 2.0
BENCH = ZoneConfig(name="bench", polygon=[(0, 0), (100, 0), (100, 100), (0, 100)], loitering_s=3.0)


def clip(k: int, label: Optional[str] = "normal", score: float = 0.5, tracks: tuple[str, ...] = (),
         uncertain: bool = False) -> schemas.IndicatorEvent:
    start = START + timedelta(seconds=k * L)
    concept = None if label is None else schemas.ConceptResult(label=label, score=score, uncertain=uncertain)
    return schemas.IndicatorEvent(
        event_id=f"ev{k}", camera_id="plaza", cell_id="r1c2", clip_index=k, clip_start=start,
        clip_end=start + timedelta(seconds=L), stream_start_s=k * L, stream_end_s=(k + 1) * L, frame_first=0,
        frame_last=0, captured_at=start, detections=schemas.DetectionSummary(frames=10, tracks=list(tracks)),
        concept=concept)


def foot(k: int, xy: tuple[float, float]) -> list[tuple[float, float, float]]:
    """A track standing at ``xy`` on every analysed frame (5 fps) of clip ``k``."""
    return [(k * L + i / 5, *xy) for i in range(10)]


def feed(tracker: SituationTracker, clips) -> list[tuple[int, schemas.SituationEvent]]:
    out = []
    for item in clips:
        ev, pts = item if isinstance(item, tuple) else (item, None)
        out += [(ev.clip_index, m) for m in tracker.observe(ev, pts)]
    return out


def test_indicator_clip_opens_related_clips_update_quiet_time_ends():
    t = SituationTracker("plaza", cell_id="r1c2", quiet_s=10.0)
    msgs = feed(t, [
        clip(0, tracks=("plaza:1",)),
        clip(1, "violent_movement", 0.7, ("plaza:1", "plaza:2")),
        clip(2, "violent_movement", 0.9, ("plaza:2",)),
        clip(3, "normal", 0.6, ("plaza:2", "plaza:5")),  # a track of the situation still in view
        clip(4, "normal", 0.8, ("plaza:5",)),  # only a passer-by: quiet, 2 s since last seen
        *[clip(k) for k in range(5, 10)],
    ])
    assert [(k, m.type, m.seq) for k, m in msgs] == [(1, "new", 0), (2, "update", 1), (3, "update", 2),
                                                     (8, "end", 3)]
    sid = msgs[0][1].situation_id
    assert [m.message_id for _, m in msgs] == [f"{sid}:{i}" for i in range(4)]
    end = msgs[-1][1]
    assert end.start == START + timedelta(seconds=2) and end.last_seen == end.end == START + timedelta(seconds=8)
    assert end.duration_s == 6.0 and end.ended_by == "quiet" and end.reason == "concept"
    assert (end.peak_concept, end.peak_score, end.peak_event_id) == ("violent_movement", 0.9, "ev2")
    assert end.concepts == {"normal": 1, "violent_movement": 2}
    assert end.track_ids == ["plaza:1", "plaza:2"]  # the passer-by of the update is not the incident's
    assert end.event_ids == ["ev1", "ev2", "ev3"] and end.clips == 3
    assert end.cell_id == "r1c2" and not end.uncertain and end.zones == []
    assert schemas.event_key(end) == f"plaza|{sid}"
    assert schemas.decode(schemas.TOPIC_SITUATIONS, schemas.encode(end)) == end
    assert t.open is None


def test_quiet_labels_uncertain_clips_and_no_concept_open_nothing():
    t = SituationTracker("plaza")
    assert feed(t, [clip(0, "loitering", 0.99), clip(1, "normal", 0.9), clip(2, "lethal_object", 0.9, uncertain=True),
                    clip(3, None)]) == []


def test_uncertain_clip_of_an_open_situation_is_carried():
    t = SituationTracker("plaza", quiet_s=4.0)
    msgs = feed(t, [clip(0, "sneaking", 0.6, ("plaza:1",)), clip(1, "normal", 0.3, ("plaza:1",), uncertain=True)])
    assert [m.type for _, m in msgs] == ["new", "update"] and msgs[-1][1].uncertain
    (end,) = t.close()
    assert end.type == "end" and end.ended_by == "stopped" and end.seq == 2 and end.uncertain
    assert t.close() == []


def test_zone_dwell_past_loitering_time_opens_a_situation():
    t = SituationTracker("plaza", zones=[BENCH], quiet_s=4.0)
    inside, outside = (50, 90), (400, 300)
    msgs = feed(t, [
        (clip(0, tracks=("plaza:7", "plaza:8")), {"plaza:7": foot(0, inside), "plaza:8": foot(0, outside)}),
        (clip(1, tracks=("plaza:7", "plaza:8")), {"plaza:7": foot(1, inside), "plaza:8": foot(1, outside)}),
        (clip(2, tracks=("plaza:7",)), {"plaza:7": foot(2, inside)}),
        (clip(3), {}), (clip(4), {}),
    ])
    assert [(k, m.type) for k, m in msgs] == [(1, "new"), (2, "update"), (4, "end")]
    new = msgs[0][1]
    assert new.reason == "zone_loitering" and new.peak_concept is None and new.track_ids == ["plaza:7"]
    assert [z.model_dump() for z in new.zones] == [
        {"name": "bench", "dwell_s": 3.8, "loitering_s": 3.0, "loitering": True, "tracks": ["plaza:7"]}]
    assert msgs[1][1].zones[0].dwell_s == 5.8


def test_zone_stay_survives_a_jittery_edge_but_ends_after_leaving():
    t = SituationTracker("plaza", zones=[BENCH])
    pts = foot(0, (50, 50))
    pts[4] = (pts[4][0], 150.0, 50.0)  # one or two boxes just over the edge: the stay goes on (inertia 3)
    pts[5] = (pts[5][0], 150.0, 50.0)
    assert t.dwell.update({"plaza:1": pts}) == {"bench": {"plaza:1": 1.8}}
    away = [(2.0 + i / 5, 300.0, 300.0) for i in range(3)]
    assert t.dwell.update({"plaza:1": away}) == {}
    assert t.dwell.update({"plaza:1": foot(1, (50, 50))}) == {"bench": {"plaza:1": 1.8}}  # a new stay


def test_same_clips_give_the_same_message_ids_and_repeats_dedupe():
    clips = [clip(0, "item_seizure", 0.8, ("plaza:1",)), clip(1, tracks=("plaza:1",)), clip(2), clip(3),
             clip(4, "forceful_seizure", 0.7, ("plaza:3",))]
    a = [m for _, m in feed(SituationTracker("plaza", quiet_s=2.0), clips)]
    b = [m for _, m in feed(SituationTracker("plaza", quiet_s=2.0), clips)]
    assert [m.type for m in a] == ["new", "update", "end", "new"]
    assert [m.message_id for m in a] == [m.message_id for m in b]
    assert a[0].situation_id != a[-1].situation_id  # a later incident is another situation
    seen = Deduplicator()
    assert [seen.is_repeat(m) for m in a + b] == [False] * 4 + [True] * 4


@pytest.mark.parametrize("zone, message", [
    ({"name": "z", "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]], "loitering_s": 5},
     "not a simple polygon: Self-intersection"),
    ({"name": "z", "polygon": [[0, 0], [10, 10]], "loitering_s": 5}, "at least 3 corners"),
    ({"name": "z", "polygon": [[0, 0], [10, 10], [20, 20]], "loitering_s": 5}, "no area"),
    ({"name": "z", "polygon": [[0, 0], [10, 0], [10, 10]], "loitering_s": 0}, "greater than 0"),
])
def test_bad_zone_is_a_clear_config_error(zone: dict, message: str):
    with pytest.raises(ValidationError) as err:
        CameraConfig(id="c", source="x.mp4", position=Position(x=0, y=0), zones=[zone])
    assert message in str(err.value)


def test_zone_names_are_unique_per_camera():
    z = {"name": "door", "polygon": [[0, 0], [10, 0], [10, 10]], "loitering_s": 5}
    with pytest.raises(ValidationError, match="repeated: door"):
        CameraConfig(id="c", source="x.mp4", position=Position(x=0, y=0), zones=[z, z])


def test_worker_publishes_situations_a_subscriber_follows_on_the_real_broker(kafka_bootstrap, unique_name, cli):
    """vtest_6s.mp4 with a zone over the whole plaza (loitering after 2 s): walkers tracked from the first
    frame have stayed 3.8 s by the end of clip 1 -> new at clip 1, update at clip 2, end when the worker stops.
    The worker runs twice over the same footage, as a restarted worker would: same ids, so the subscriber
    sees the sequence once."""
    from detectors.config import DetectorsConfig
    from streamer.kafka_bus import KafkaBus
    from streamer.sources import FileSource
    from streamer.worker import CameraWorker
    from tests.test_worker import CLIP, GRID

    cam = CameraConfig(id="plaza", source=str(CLIP), position=Position(lon=-79.3871, lat=43.6426), fps=5,
                       clip_seconds=2, zones=[{"name": "plaza", "polygon": [[0, 0], [768, 0], [768, 576], [0, 576]],
                                               "loitering_s": 2.0}])
    published = []
    for _ in range(2):
        bus = KafkaBus(kafka_bootstrap, namespace=unique_name)
        try:
            w = CameraWorker(cam, DetectorsConfig(), bus, GRID, source=FileSource(cam.source, speed=None),
                             origin=START, replay=True)
            w.run()
            bus.flush(30)
        finally:
            bus.close()
        published.append(w.summary.situation_messages)
    assert published == [3, 3]

    base = ["subscribe", "situations", "--bootstrap", kafka_bootstrap, "--namespace", unique_name,
            "--from-beginning"]
    rc, out, err = cli(*base, "--no-dedup", "--max", "6")
    assert rc == 0, err
    assert len(out.splitlines()) == 6  # both runs' messages are on the topic...
    rc, out, err = cli(*base, "--meta", "--idle-timeout", "2")
    assert rc == 0, err
    recs = [json.loads(line) for line in out.splitlines()]  # ...and the subscriber follows one incident
    msgs = [r["value"] for r in recs]
    assert [(m["type"], m["seq"]) for m in msgs] == [("new", 0), ("update", 1), ("end", 2)]
    sid = msgs[0]["situation_id"]
    assert {r["key"] for r in recs} == {f"plaza|{sid}"} and len({r["partition"] for r in recs}) == 1
    assert all(m["schema"] == "imminence.situation/1" and m["situation_id"] == sid for m in msgs)
    new, update, end = msgs
    assert new["reason"] == "zone_loitering" and new["start"] == "2026-05-01T21:00:02Z"
    assert [m["last_seen"] for m in msgs] == ["2026-05-01T21:00:04Z", "2026-05-01T21:00:06Z",
                                              "2026-05-01T21:00:06Z"]
    assert end["end"] == end["last_seen"] and end["ended_by"] == "stopped" and end["duration_s"] == 4.0
    assert end["clips"] == 2 and len(end["event_ids"]) == 2
    assert end["cell_id"] == GRID.cell_of(lon=-79.3871, lat=43.6426) and end["replay"] is True
    (zone,) = end["zones"]
    assert zone["name"] == "plaza" and zone["loitering"] and zone["dwell_s"] >= 2.0
    assert set(zone["tracks"]) <= set(end["track_ids"])
