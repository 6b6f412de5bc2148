"""What live windows are aged against: per source by default (``map.clock: auto``), or one clock for all.

A recording from months ago replayed with default settings must map as live
(its cell messages say ``replay: true``), beside live cameras aged against the
wall clock; windows older than the live horizon are dropped, counted, logged
once with the reason, and reported in the snapshot so the console can say why
the map is empty.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from mapping.config import MapConfig
from geo.grid import Grid, GridConfig
from mapping.service import HORIZON_HALF_LIVES, MapService
from streamer import schemas
from streamer.bus import InMemoryBus
from streamer.schemas import CRIME_TYPES, TOPIC_CELLS, CellImminence

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)  # the wall clock of these tests
RECORDED = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)  # months before "now"


def _msg(cell: str, end: datetime, value: float, *, replay: bool = False, cameras: tuple[str, ...] = ("cam",),
         revision: int = 0) -> CellImminence:
    start = end - timedelta(minutes=1)
    return CellImminence(message_id=f"{cell}|{start.isoformat()}|{revision}", cell_id=cell, window_start=start,
                         window_end=end, revision=revision, imminence={t: value for t in CRIME_TYPES},
                         flags={t: value >= 5 for t in CRIME_TYPES}, events=3, cameras=list(cameras),
                         produced_at=NOW, replay=replay)


@pytest.fixture
def grid() -> Grid:
    return Grid.from_config(GridConfig(bbox=(0, 0, 3000, 3000), crs="metric", cell_size_m=250))


def _svc(grid: Grid, **kw) -> MapService:
    return MapService(InMemoryBus(), grid, MapConfig(radius_m=300, **kw), out_dir=None, clock=lambda: NOW)


def test_default_clock_maps_a_replayed_recording_beside_a_live_camera(grid: Grid) -> None:
    svc = _svc(grid)
    assert svc.cfg.clock == "auto"
    ids = grid.cell_ids()
    replayed, live = ids[14], ids[-14]
    assert svc.apply(_msg(replayed, RECORDED, 8.0, replay=True, cameras=("scene-0",)))
    assert svc.apply(_msg(live, NOW - timedelta(seconds=30), 6.0, cameras=("lobby",)))
    snap = svc.snapshot()
    merged = snap.layers["robbery"].merged
    assert merged[replayed] > 0.5            # aged in the recording's own time: fully live
    assert merged[live] > 0.35               # 30 s old on the wall clock
    assert snap.cells_live == 2 and snap.windows_too_old == 0 and snap.too_old_newest is None
    assert snap.live_horizon_s == pytest.approx(HORIZON_HALF_LIVES * 900.0)
    assert snap.created_at == NOW            # snapshots are stamped with the wall clock


def test_replayed_windows_age_against_their_own_cameras_newest_window(grid: Grid) -> None:
    svc = _svc(grid, live_half_life_s=600)
    ids = grid.cell_ids()
    # camera a: two windows 10 min apart in May; camera b: one window from a recording a year older
    svc.apply(_msg(ids[0], RECORDED, 10.0, replay=True, cameras=("a",)))
    svc.apply(_msg(ids[40], RECORDED + timedelta(minutes=10), 10.0, replay=True, cameras=("a",)))
    svc.apply(_msg(ids[80], RECORDED - timedelta(days=365), 10.0, replay=True, cameras=("b",)))
    s = svc.surfaces()
    w = s["robbery"]["weight"]
    rc = {c: grid.parse_cell_id(c) for c in (ids[0], ids[40], ids[80])}
    assert w[rc[ids[40]]] == pytest.approx(0.7)          # a's newest: age 0
    assert w[rc[ids[0]]] == pytest.approx(0.7 / 2)       # one half-life behind a's newest
    assert w[rc[ids[80]]] == pytest.approx(0.7)          # b has a clock of its own
    # a window 11 half-lives behind its camera's newest is dropped as too old, on arrival
    assert not svc.apply(_msg(ids[120], RECORDED - timedelta(minutes=110), 9.0, replay=True, cameras=("a",)))
    assert svc.stats.too_old == 1 and ids[120] not in svc.cells


def test_old_live_windows_are_dropped_logged_once_and_reported(grid: Grid, caplog) -> None:
    """A recording played as live (events not marked replay) is older than the horizon: said, not silently empty."""
    svc = _svc(grid)
    ids = grid.cell_ids()
    with caplog.at_level(logging.WARNING, logger="mapping.service"):
        for i in range(5):
            assert not svc.apply(_msg(ids[10 + i], RECORDED + timedelta(minutes=i), 8.0))
        snap = svc.snapshot()
    assert svc.stats.too_old == 5 and not svc.cells
    assert snap.cells_live == 0 and snap.windows_too_old == 5
    assert snap.too_old_newest == RECORDED + timedelta(minutes=4)
    assert not snap.layers["all"].merged
    logs = [r.getMessage() for r in caplog.records if "too old" in r.getMessage()]
    assert len(logs) == 1, logs                                    # once, not per window
    assert "5 cell window(s)" in logs[0] and "wall clock" in logs[0] and "replay" in logs[0]
    assert "2026-05-01T21:04:00+00:00" in logs[0]                  # the newest window left out
    with caplog.at_level(logging.WARNING, logger="mapping.service"):
        svc.apply(_msg(ids[20], RECORDED, 8.0))
        svc.snapshot()                                             # more within a minute: not logged again
    assert len([r for r in caplog.records if "too old" in r.getMessage()]) == 1
    # the snapshot survives the wire with the reason's figures
    again = schemas.decode(schemas.TOPIC_MAPS, schemas.encode(snap))
    assert again.windows_too_old == 5 and again.too_old_newest == snap.too_old_newest


def test_a_live_window_ageing_past_the_horizon_is_dropped_later(grid: Grid) -> None:
    now = [NOW]
    svc = MapService(InMemoryBus(), grid, MapConfig(radius_m=300, live_half_life_s=60), out_dir=None,
                     clock=lambda: now[0])
    cell = grid.cell_ids()[20]
    assert svc.apply(_msg(cell, NOW, 7.0))
    assert svc.snapshot().layers["all"].merged.get(cell, 0) > 0.4
    now[0] = NOW + timedelta(seconds=60 * HORIZON_HALF_LIVES + 1)
    snap = svc.snapshot()
    assert not svc.cells and snap.windows_too_old == 1 and snap.too_old_newest == NOW
    assert not snap.layers["all"].merged


@pytest.mark.parametrize("clock", ["wall", "event"])
def test_clock_overrides(grid: Grid, clock: str) -> None:
    svc = _svc(grid, clock=clock)
    ids = grid.cell_ids()
    svc.apply(_msg(ids[14], RECORDED, 8.0, replay=True))
    svc.apply(_msg(ids[-14], RECORDED - timedelta(hours=1), 8.0))   # a live camera with an old clock
    merged = svc.snapshot().layers["robbery"].merged
    if clock == "wall":   # everything against the wall clock: a months-old window has no weight left
        assert not merged and svc.stats.too_old == 2
    else:                 # everything against the newest window: an hour behind it still maps
        assert merged[ids[14]] > 0.5 and 0 < merged[ids[-14]] < merged[ids[14]]


def test_cell_messages_without_the_replay_field_are_live() -> None:
    """Messages written before ``replay`` existed still decode, as live windows."""
    msg = _msg("r0c0", NOW, 5.0, replay=True)
    raw = schemas.encode(msg).decode()
    assert '"replay":true' in raw
    old = schemas.decode(TOPIC_CELLS, raw.replace(',"replay":true', ""))
    assert isinstance(old, CellImminence) and old.replay is False
