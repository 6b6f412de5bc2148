"""The one "latest revision per (cell, window)" rule (streamer.revisions) that every cells reader keeps."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from console import samples
from streamer.revisions import keep_latest, latest_per_window, supersedes

T0 = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)


def _msg(cell: str, minute: int, revision: int, level: float = 6.0):
    return samples.cell_message(cell, at=T0 + timedelta(minutes=minute + 1), level=level, revision=revision)


def test_highest_revision_per_window_wins_and_repeats_change_nothing():
    a0, a1, b0 = _msg("r0c0", 0, 0), _msg("r0c0", 0, 1, level=8.0), _msg("r0c0", 1, 0)
    assert supersedes(a0, None) and supersedes(a1, a0) and supersedes(b0, a1)  # higher revision, later window
    assert not supersedes(a0, a1) and not supersedes(a1, a1) and not supersedes(a1, b0)  # stale, repeat, older
    latest = latest_per_window([a0, a1, a0, b0, _msg("r0c1", 0, 0)])
    assert latest[("r0c0", a0.window_start)] is a1 and len(latest) == 3
    assert not keep_latest(latest, _msg("r0c0", 0, 1, level=1.0))  # a tie keeps the message held
    assert latest[("r0c0", a0.window_start)].imminence == a1.imminence
