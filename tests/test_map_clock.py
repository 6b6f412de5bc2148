"""Replays of old recordings: with ``map.clock: event`` live windows are aged in event time, not wall time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mapping.config import MapConfig
from mapping.grid import Grid, GridConfig
from mapping.service import MapService
from streamer.bus import InMemoryBus
from streamer.schemas import CRIME_TYPES, CellImminence


def _msg(grid: Grid, cell: str, end: datetime, value: float) -> CellImminence:
    return CellImminence(message_id=f"{cell}|{end.isoformat()}|0", cell_id=cell, window_start=end - timedelta(minutes=1),
                         window_end=end, imminence={t: value for t in CRIME_TYPES},
                         flags={t: value >= 5 for t in CRIME_TYPES}, events=3,
                         produced_at=datetime.now(timezone.utc))


def test_event_clock_keeps_a_replayed_recording_live_and_wall_clock_ages_it() -> None:
    grid = Grid.from_config(GridConfig(bbox=(0, 0, 2000, 2000), crs="metric", cell_size_m=250))
    cell = grid.cell_ids()[len(grid.cell_ids()) // 2]
    recorded = datetime(2025, 5, 1, 21, 0, tzinfo=timezone.utc)  # months before "now"
    peaks = {}
    for clock in ("wall", "event"):
        svc = MapService(InMemoryBus(), grid, MapConfig(radius_m=500, clock=clock), out_dir=None)
        svc.apply(_msg(grid, cell, recorded, 8.0))
        snap = svc.snapshot()
        peaks[clock] = snap.layers["robbery"].merged.get(cell, 0.0)
        assert snap.created_at > recorded + timedelta(days=30)  # snapshots are stamped with the wall clock
    assert peaks["wall"] == 0.0          # half-life 15 min: a months-old window has no live weight left
    assert peaks["event"] > 0.5          # aged against the newest window: fully live
