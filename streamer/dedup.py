"""Drop repeated messages by id: a bounded, insertion-ordered "seen" set.

Delivery is at-least-once (a consumer that restarts before committing sees its
last records again; the producer may resend after a broker failure), so every
consumer drops repeats by :func:`streamer.schemas.event_dedup_id`.  Memory stays
bounded: beyond ``max_size`` ids the least recently seen is forgotten, so a
repeat older than that window is let through (count it, don't trust it).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

from pydantic import BaseModel

from streamer import schemas


class Deduplicator:
    """An LRU set of ids: ``seen(id)`` is True for a repeat, False the first time (and remembers it).

    Not thread-safe: use one per consumer thread, like the consumer itself.
    """

    def __init__(self, max_size: int = 100_000) -> None:
        if max_size <= 0:
            raise ValueError(f"Deduplicator max_size must be positive, got {max_size}")
        self.max_size = max_size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.repeats = 0
        self.evicted = 0

    def seen(self, event_id: Optional[str]) -> bool:
        """True when ``event_id`` was seen within the window; None ids are never repeats."""
        if event_id is None:
            return False
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            self.repeats += 1
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.max_size:
            self._ids.popitem(last=False)
            self.evicted += 1
        return False

    def is_repeat(self, event: BaseModel) -> bool:
        """``seen`` applied to the message's dedup id (:func:`schemas.event_dedup_id`)."""
        return self.seen(schemas.event_dedup_id(event))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids
