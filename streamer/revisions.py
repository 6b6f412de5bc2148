"""The latest revision per (cell, window): the one rule every reader of ``imminence.cells`` keeps.

The scoring service publishes a cell's window again, as a higher ``revision``,
whenever late events change it (``message_id = cell|window_start|revision``).
A reader keeps, per (cell, window), the highest revision; a reader of the
current state (the map service) keeps per cell the latest window and, within
it, the highest revision.  Both are :func:`supersedes`: a repeat (the same
revision delivered again) or a stale revision changes nothing, so at-least-once
delivery is harmless.  On a tie the message already held stays (messages tied
at one revision carry the same counts).
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Optional, Protocol, TypeVar


class Revisioned(Protocol):
    """A window's start and revision (a :class:`streamer.schemas.CellImminence`, or a reader's held state of one)."""

    window_start: datetime
    revision: int


class CellWindow(Revisioned, Protocol):
    cell_id: str


M = TypeVar("M", bound=CellWindow)


def supersedes(new: Revisioned, held: Optional[Revisioned]) -> bool:
    """Whether ``new`` replaces ``held``: nothing held, a later window, or the same window at a higher revision."""
    return held is None or (new.window_start, new.revision) > (held.window_start, held.revision)


def keep_latest(latest: dict[tuple[str, datetime], M], msg: M) -> bool:
    """Fold ``msg`` into ``latest`` ({(cell, window start): message}); True when it was kept."""
    key = (msg.cell_id, msg.window_start)
    if supersedes(msg, latest.get(key)):
        latest[key] = msg
        return True
    return False


def latest_per_window(msgs: Iterable[M]) -> dict[tuple[str, datetime], M]:
    """The highest revision of each (cell, window) among ``msgs``: what a downstream reader ends with."""
    latest: dict[tuple[str, datetime], M] = {}
    for m in msgs:
        keep_latest(latest, m)
    return latest
