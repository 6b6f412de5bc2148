"""Event-time windows per grid cell, with allowed lateness and duplicate-free counts.

Windows are ``window_s`` long and start every ``slide_s`` seconds, aligned to the
Unix epoch (tumbling when the two are equal); an event at time t belongs to
every window with ``start <= t < start + window_s``.  Watermarks are kept per
clock: one for live events and one for replayed recordings
(``IndicatorEvent.replay``), whose times are months behind the live ones when
both run at once.  Within a clock each source (camera) has its own watermark,
the largest event time it sent, and the clock's watermark is the smallest
of those of the sources that advanced theirs in the last ``source_idle_s``
(processing time), never moving backwards (as Flink combines per-partition watermarks).  So
a consumer reading one camera's partition ahead of another's (catching up a
backlog) does not make the other camera's events too late, a camera whose
clock steps back cannot pull the watermark back, and a camera gone quiet stops
holding windows open after ``source_idle_s``.  A window is *open* until the
watermark of every clock that counted an event in it passes ``end +
allowed_lateness_s``: a late event (its window already ended) still updates an
open window, which is then published again as a new revision.  An event whose
windows are all closed on its own clock is *too late*: counted and logged, not
aggregated.  So a replay started beside live cameras is counted (and the other
way round), where one watermark would have closed every window of the replay.

Each window keeps the ids of its events (with their concepts), so an event
delivered twice (producer retry, consumer redelivery after a restart) is counted
once.  Published aggregates are folded back in with :meth:`WindowAggregator.merge`
as a union of id sets: that is how a restarted service avoids counting again the
redelivered events of a half-published window, and how instances of a consumer
group converge on one count for a window they both saw.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Optional


def window_starts(t: float, window_s: float, slide_s: float) -> list[float]:
    """Starts of every epoch-aligned window of length window_s, one every slide_s, holding time t."""
    first = math.floor((t - window_s) / slide_s) + 1
    last = math.floor(t / slide_s)
    return [k * slide_s for k in range(first, last + 1) if k * slide_s <= t < k * slide_s + window_s]


LIVE = "live"  # clock of live events (stamped from the wall clock)
REPLAY = "replay"  # clock of replayed recordings (stamped from the recording's start)


def clock_of(replay: bool) -> str:
    return REPLAY if replay else LIVE


class Merge(str, Enum):
    CREATED = "created"  # the window was not held here: rebuilt from the message
    COVERED = "covered"  # the message holds everything known here (e.g. our own, read back)
    MERGED = "merged"  # the union differs from the message: publish it again
    STALE = "stale"  # an older message, already superseded by what was published here
    CONFLICT = "conflict"  # partial overlap with a message that has no per-event concepts
    CLOSED = "closed"  # the window is closed here


class Outcome(str, Enum):
    ADDED = "added"  # counted in at least one window, none of them ended yet
    LATE = "late"  # counted in a window that had ended but is within the allowed lateness
    TOO_LATE = "too_late"  # every window of the event is closed: not counted
    DUPLICATE = "duplicate"  # already counted in every open window it belongs to


@dataclass
class WindowState:
    cell_id: str
    start: float  # Unix seconds
    end: float
    event_ids: dict[str, str] = field(default_factory=dict)  # id -> concept ('' when none), insertion-ordered
    concept_counts: Counter = field(default_factory=Counter)
    cameras: set[str] = field(default_factory=set)
    revision: int = -1  # last published revision; -1 = never published
    dirty: bool = False
    first_dirty_at: Optional[float] = None  # wall clock of the oldest unpublished change
    publish_times: list[float] = field(default_factory=list)  # event publication times of unpublished changes
    restored: bool = False
    clocks: set[str] = field(default_factory=set)  # LIVE and/or REPLAY: the clocks of its events

    @property
    def events(self) -> int:
        return len(self.event_ids)

    @property
    def replay(self) -> bool:
        """Every event of the window is a replayed recording's (none is live)."""
        return REPLAY in self.clocks and LIVE not in self.clocks


class WindowAggregator:
    """Per-(cell, window) aggregates of indicator events."""

    def __init__(self, window_s: float, slide_s: float, allowed_lateness_s: float,
                 source_idle_s: float = 60.0) -> None:
        if window_s <= 0 or slide_s <= 0 or slide_s > window_s:
            raise ValueError(f"need 0 < slide_s <= window_s, got window_s={window_s}, slide_s={slide_s}")
        self.window_s = float(window_s)
        self.slide_s = float(slide_s)
        self.lateness = float(allowed_lateness_s)
        self.source_idle_s = float(source_idle_s)
        self.watermarks: dict[str, float] = {}  # per clock (LIVE, REPLAY): min over active sources, monotone
        # per clock, per source: [largest event time it sent, processing time it was last heard from]
        self.source_marks: dict[str, dict[str, list[float]]] = {}
        self.windows: dict[tuple[str, float], WindowState] = {}

    def _advance(self, clock: str, source: str, t: float, now: float) -> None:
        """Note event time ``t`` of ``source``; move the clock's watermark to the min over active sources."""
        marks = self.source_marks.setdefault(clock, {})
        m = marks.get(source)
        if m is None:
            marks[source] = [t, now]
        elif t >= m[0]:
            m[0], m[1] = t, max(m[1], now)
        # else: a source's clock stepped back: its watermark stays, and it stops holding the others back once
        # it has not advanced for source_idle_s
        horizon = now - self.source_idle_s
        low = min((m[0] for m in marks.values() if m[1] >= horizon), default=t)
        self.watermarks[clock] = max(self.watermarks.get(clock, -math.inf), low)

    def source_watermark(self, source: str, clock: str = LIVE) -> float:
        """The largest event time ``source`` sent on ``clock`` (-inf before its first event)."""
        m = self.source_marks.get(clock, {}).get(source)
        return m[0] if m is not None else -math.inf

    @property
    def watermark(self) -> float:
        """The largest event time seen on any clock (-inf before the first event)."""
        return max(self.watermarks.values(), default=-math.inf)

    def starts_of(self, t: float) -> list[float]:
        """Starts of every window holding time t."""
        return window_starts(t, self.window_s, self.slide_s)

    def is_closed(self, start: float, clock: str = LIVE) -> bool:
        """The window starting at ``start`` takes no more events of ``clock`` (its watermark passed it)."""
        return start + self.window_s + self.lateness <= self.watermarks.get(clock, -math.inf)

    def _expired(self, w: WindowState) -> bool:
        return all(self.is_closed(w.start, c) for c in (w.clocks or {LIVE}))

    def add(self, event_id: str, cell_id: str, t: float, concept: Optional[str], camera_id: str,
            now: float, published_at: Optional[float] = None, replay: bool = False) -> Outcome:
        """Count one event in its open windows of its cell; returns what happened to it.

        ``replay``: the event is a replayed recording's; it is measured against the replay watermark.
        """
        clock = clock_of(replay)
        mark = self.watermarks.get(clock, -math.inf)
        counted = late = False
        open_any = False
        for start in self.starts_of(t):
            if self.is_closed(start, clock):
                continue
            open_any = True
            key = (cell_id, start)
            w = self.windows.get(key)
            if w is None:
                w = self.windows[key] = WindowState(cell_id, start, start + self.window_s)
            if event_id in w.event_ids:
                continue
            w.event_ids[event_id] = concept or ""
            if concept:
                w.concept_counts[concept] += 1
            w.cameras.add(camera_id)
            w.clocks.add(clock)
            if not w.dirty:
                w.dirty = True
                w.first_dirty_at = now
            if published_at is not None:
                w.publish_times.append(published_at)
            counted = True
            late = late or w.end <= mark
        self._advance(clock, camera_id, t, now)
        if not open_any:
            return Outcome.TOO_LATE
        if not counted:
            return Outcome.DUPLICATE
        return Outcome.LATE if late else Outcome.ADDED

    def dirty(self) -> list[WindowState]:
        return [w for w in self.windows.values() if w.dirty]

    def expire(self) -> list[WindowState]:
        """Drop closed windows; returns those among them with unpublished changes (publish them last)."""
        closed = [k for k, w in self.windows.items() if self._expired(w)]
        out = []
        for k in closed:
            w = self.windows.pop(k)
            if w.dirty:
                out.append(w)
        return out

    def merge(self, cell_id: str, start: float, end: float, revision: int, event_ids: list[str],
              event_concepts: list[str], cameras: Iterable[str], concept_counts: dict[str, int],
              events: int, replay: bool = False) -> Merge:
        """Fold a published aggregate of this window into the local state.

        The message may be this instance's own (read back), another instance's
        (a cell whose cameras are split across the group, or a window that moved
        in a rebalance) or the last one published before a restart.  The window
        becomes the union of both id sets; it is marked for publication unless
        the message already holds everything known here under a revision that
        wins downstream (downstream keeps the highest revision per window: :mod:`streamer.revisions`).
        """
        clock = clock_of(replay)
        if self.is_closed(start, clock):
            return Merge.CLOSED
        exact = len(event_concepts) == len(event_ids) and events == len(event_ids)
        key = (cell_id, start)
        w = self.windows.get(key)
        if w is None:
            w = WindowState(cell_id, start, end, revision=revision, restored=True)
            if exact:
                w.event_ids = dict(zip(event_ids, event_concepts))
                w.concept_counts = Counter(c for c in event_concepts if c)
            else:  # an older or truncated message: counts as published, concepts per id unknown
                w.event_ids = dict.fromkeys(event_ids, "")
                w.concept_counts = Counter(concept_counts)
            w.cameras = set(cameras)
            w.clocks = {clock}
            self.windows[key] = w
            return Merge.CREATED
        before = w.revision
        new = [i for i in event_ids if i not in w.event_ids]
        own_extra = len(w.event_ids) - (len(event_ids) - len(new))
        if new:
            if exact:
                concept_of = dict(zip(event_ids, event_concepts))
                for i in new:
                    c = concept_of[i]
                    w.event_ids[i] = c
                    if c:
                        w.concept_counts[c] += 1
            elif own_extra == 0:  # the message holds everything known here: adopt it as it is
                w.event_ids = dict.fromkeys(event_ids, "")
                w.concept_counts = Counter(concept_counts)
            else:
                return Merge.CONFLICT  # cannot count the other side's events exactly; keep ours
            w.cameras |= set(cameras)
        w.clocks.add(clock)
        w.revision = max(before, revision)
        if not new and revision < before:
            return Merge.STALE  # what was published here already wins downstream
        if own_extra == 0 and (revision > before or (revision == before and not new)):
            w.dirty = False  # the message already says all we know
            w.first_dirty_at = None
            w.publish_times = []
            return Merge.COVERED
        if not w.dirty:
            w.dirty = True
        return Merge.MERGED
