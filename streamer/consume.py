"""One consumer loop for every stage that reads topics: poll, dedupe, handle, commit after output.

The scoring service, the map service and the console's live feed each consume
through :class:`ConsumerLoop` instead of a loop of their own.  One turn
(:meth:`ConsumerLoop.step`):

1. **poll** the subscription (opened on first use) with a timeout.  Records
   arrive decoded and validated by the schema of their topic: an undecodable
   record never reaches the loop, the subscription dead-letters it to
   ``imminence.dlq`` naming topic/partition/offset and counts it in
   ``bus.stats().dead_lettered`` (the bus contract, :mod:`streamer.bus`).  The
   loop's dead-letter policy is what the *consumer* is told: with
   ``on_dead_letter`` it is called with the number of records dead-lettered
   since the last turn (the console shows them as malformed); without, they are
   only dead-lettered and counted by the bus.
2. **dedupe** by :func:`streamer.schemas.event_dedup_id` with a
   :class:`streamer.dedup.Deduplicator` when one is given: ``repeats="drop"``
   leaves repeats out (``on_repeat`` is told), ``repeats="mark"`` hands them
   over in :attr:`ConsumerLoop.repeats` of the batch for the handler to count.
3. **handle** the batch: ``handle(records)`` returns whether it made progress
   (a truthy value, or None meaning "any record is progress"); ``run`` exits
   after ``idle_exit_s`` without progress.
4. **commit point**: ``after_batch()`` publishes whatever output is due and
   returns True only once the outputs of everything handled so far are
   published *and flushed*; only then are the offsets committed (at-least-once:
   records handled but not committed are delivered again after a crash or a
   rebalance).  After a commit the consumer-lag gauge is refreshed at most every
   ``lag_every_s`` (:class:`streamer.bus.LagProbe`).

Broker errors (raised by subscribe, poll or commit) follow one backoff policy
(:class:`Backoff`): wait a capped exponential delay (interruptible by ``stop``),
logged once when the loop enters the failing state and once when it recovers,
never per retry; ``on_error`` is told every failure.  With
``reopen_on_error`` the subscription is closed and a fresh one opened on the
next turn.  A failed commit leaves :attr:`ConsumerLoop.pending` set, so the
next commit point commits again.  Exceptions from the consumer's own hooks
are bugs, not broker errors, and propagate.

Rebalance hooks: ``on_revoke`` (returns True once outputs for everything
returned so far are published: the revoked partitions are then committed, not
replayed) and ``on_assign`` (told the logical (topic, partition) pairs) are
installed on subscriptions that support them
(:class:`streamer.kafka_bus.KafkaSubscription`); the in-memory bus rebalances
without callbacks.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

from streamer import schemas
from streamer.bus import Bus, LagProbe, Received, Subscription
from streamer.dedup import Deduplicator

log = logging.getLogger(__name__)

Handler = Callable[[list[Received]], Union[bool, int, None]]


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delay after consecutive broker errors: ``initial_s * factor ** (n - 1)``, at most ``cap_s``."""

    initial_s: float = 0.5
    cap_s: float = 10.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.cap_s, self.initial_s * self.factor ** (failures - 1))


def dedup_key(event: object) -> Optional[str]:
    """The loop's dedupe key: the message type and its :func:`schemas.event_dedup_id` (None: never a repeat)."""
    dedup = schemas.event_dedup_id(event)  # type: ignore[arg-type]
    return None if dedup is None else f"{type(event).__name__}:{dedup}"


class ConsumerLoop:
    """A consumer-group member on ``topics`` that hands validated, deduplicated batches to ``handle``.

    One per thread (subscriptions are not thread-safe).  See the module notes for
    the turn, the commit point, the backoff and the hooks.
    """

    def __init__(self, bus: Bus, topics: Sequence[str], *, handle: Handler, group: Optional[str] = None,
                 after_batch: Optional[Callable[[], bool]] = None, client_id: Optional[str] = None,
                 from_beginning: bool = True, max_records: int = 100,
                 dedupe: Optional[Deduplicator] = None, repeats: Literal["drop", "mark"] = "drop",
                 on_repeat: Optional[Callable[[Received], None]] = None,
                 on_dead_letter: Optional[Callable[[int], None]] = None,
                 on_error: Optional[Callable[[str, BaseException], None]] = None,
                 backoff: Backoff = Backoff(), reopen_on_error: bool = False,
                 on_open: Optional[Callable[[Subscription], None]] = None,
                 on_revoke: Optional[Callable[[], bool]] = None,
                 on_assign: Optional[Callable[[set[tuple[str, int]]], None]] = None,
                 lag_every_s: Optional[float] = 5.0, stop: Optional[threading.Event] = None,
                 name: Optional[str] = None) -> None:
        if repeats not in ("drop", "mark"):
            raise ValueError(f"repeats must be 'drop' or 'mark', got {repeats!r}")
        self.bus = bus
        self.topics = list(topics)
        self.group = group
        self.handle = handle
        self.after_batch = after_batch
        self.client_id = client_id
        self.from_beginning = from_beginning
        self.max_records = max_records
        self.dedupe = dedupe
        self.repeats_policy = repeats
        self.on_repeat = on_repeat
        self.on_dead_letter = on_dead_letter
        self.on_error = on_error
        self.backoff = backoff
        self.reopen_on_error = reopen_on_error
        self.on_open = on_open
        self.on_revoke = on_revoke
        self.on_assign = on_assign
        self.stop_event = stop if stop is not None else threading.Event()
        self.name = name or group or client_id or "consumer"
        self._lag = LagProbe(lag_every_s) if lag_every_s is not None else None
        self._sub: Optional[Subscription] = None
        self._dl_base = 0
        if on_dead_letter is not None:
            self._dl_base = self._dead_lettered()
        #: True while records were returned since the last successful commit.
        self.pending = False
        #: Per record of the batch being handled: True for a repeat (``repeats="mark"`` only).
        self.repeats: list[bool] = []
        self.commits = 0
        self.failures = 0  # consecutive broker errors (0: healthy)
        self.errors = 0  # broker errors in total

    # -- subscription --------------------------------------------------------------------
    @property
    def subscription(self) -> Optional[Subscription]:
        return self._sub

    def open(self) -> Subscription:
        """Subscribe now (idempotent); installs the rebalance hooks where the subscription has them."""
        if self._sub is None:
            sub = self.bus.subscribe(self.topics, self.group, from_beginning=self.from_beginning,
                                     client_id=self.client_id)
            if self.on_revoke is not None and hasattr(sub, "on_revoke"):
                sub.on_revoke = self.on_revoke  # type: ignore[attr-defined]
            if self.on_assign is not None and hasattr(sub, "on_assign"):
                sub.on_assign = self.on_assign  # type: ignore[attr-defined]
            self._sub = sub
            if self.on_open is not None:
                self.on_open(sub)
        return self._sub

    def close(self) -> None:
        """Leave the group without committing (what was not committed is delivered again)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                sub.close()
            except Exception as exc:  # leaving must not raise past shutdown
                log.warning("%s: closing the subscription: %s", self.name, exc)

    # -- one turn ------------------------------------------------------------------------
    def poll(self, timeout: float = 0.2) -> list[Received]:
        """Poll once (opening the subscription if needed) and dedupe; [] after a broker error (backed off)."""
        try:
            recs = self.open().poll(timeout=timeout, max_records=self.max_records)
        except Exception as exc:
            self._failed("poll", exc)
            return []
        self._recovered()
        self._report_dead_letters()
        if recs:
            self.pending = True
        return self._dedupe(recs)

    def step(self, timeout: float = 0.2) -> int:
        """Poll, handle, then commit if ``after_batch`` says the outputs are out; returns the progress made."""
        recs = self.poll(timeout)
        progress = 0
        if recs:
            res = self.handle(recs)
            progress = len(recs) if res is None else int(res)
        if self.after_batch is not None and self.after_batch():
            self.commit()
        return progress

    def commit(self) -> bool:
        """Commit what was polled so far (call only after its outputs are flushed); False on failure."""
        if self._sub is None:
            return False
        try:
            self._sub.commit()
        except Exception as exc:  # e.g. a rebalance: the records come again, handlers drop repeats
            self._failed("commit", exc, wait=False)
            return False
        self.pending = False
        self.commits += 1
        if self._lag is not None:
            self._lag.maybe_refresh(self._sub)
        return True

    def run(self, *, idle_exit_s: Optional[float] = None, duration_s: Optional[float] = None,
            poll_timeout: float = 0.2, finish: Optional[Callable[[], bool]] = None) -> None:
        """Turn until ``stop`` is set, ``duration_s`` passed or ``idle_exit_s`` without progress.

        At the end ``finish()`` publishes the last outputs; when it returns True
        (flushed) the offsets are committed.  The subscription is always closed.
        """
        start = idle_since = time.monotonic()
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if duration_s is not None and now - start >= duration_s:
                    break
                if idle_exit_s is not None and now - idle_since >= idle_exit_s:
                    break
                if self.step(poll_timeout):
                    idle_since = time.monotonic()
            if finish is not None and finish():
                self.commit()
        finally:
            self.close()

    # -- internals -----------------------------------------------------------------------
    def _dedupe(self, recs: list[Received]) -> list[Received]:
        if self.dedupe is None:
            self.repeats = [False] * len(recs)
            return recs
        out: list[Received] = []
        flags: list[bool] = []
        for r in recs:
            repeat = self.dedupe.seen(dedup_key(r.event))
            if repeat and self.on_repeat is not None:
                self.on_repeat(r)
            if repeat and self.repeats_policy == "drop":
                continue
            out.append(r)
            flags.append(repeat)
        self.repeats = flags
        return out

    def _dead_lettered(self) -> int:
        try:
            return int(self.bus.stats().dead_lettered)
        except Exception:  # a bus without counters: nothing new to report
            return self._dl_base

    def _report_dead_letters(self) -> None:
        if self.on_dead_letter is None:
            return
        dl = self._dead_lettered()
        if dl > self._dl_base:
            n, self._dl_base = dl - self._dl_base, dl
            self.on_dead_letter(n)

    def _failed(self, what: str, exc: BaseException, *, wait: bool = True) -> None:
        self.failures += 1
        self.errors += 1
        msg = f"{what}: {exc}"
        if self.failures == 1:
            log.warning("%s: broker error (%s); retrying with backoff up to %g s", self.name, msg,
                        self.backoff.cap_s)
        else:
            log.debug("%s: broker error again (%d in a row): %s", self.name, self.failures, msg)
        if self.on_error is not None:
            self.on_error(msg, exc)
        if self.reopen_on_error:
            self.close()
        if wait:
            self.stop_event.wait(self.backoff.delay(self.failures))

    def _recovered(self) -> None:
        if self.failures:
            log.info("%s: broker reachable again after %d failed attempt(s)", self.name, self.failures)
            self.failures = 0
