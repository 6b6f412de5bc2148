"""The publish/subscribe interface every stage talks through, and its in-memory twin.

``Bus`` is the one publisher abstraction (Frigate's communicator pattern): stages
publish schema models and subscribe to topics without knowing whether Kafka or
memory sits behind.  :class:`streamer.kafka_bus.KafkaBus` is the broker-backed
implementation; :class:`InMemoryBus` has the same semantics (partitions by key,
consumer groups with committed offsets, at-least-once redelivery of uncommitted
records, dead letters for invalid values) for unit tests and library use.

Delivery contract, shared by both implementations:

* ``publish`` never blocks the caller on the broker; records wait in a bounded
  outbox and ``flush`` waits for them.  ``stats()`` counts sent, failed,
  buffered and dropped records.
* ``Subscription.poll`` returns validated :class:`Received` records.  A record
  that fails validation is published to ``imminence.dlq`` with the reason,
  counted, and skipped; it never reaches the handler and never stops the loop.
* Offsets advance only on ``Subscription.commit()``, which the consumer calls
  after its own outputs are published.  Records polled but not committed are
  delivered again after a restart or rebalance (at-least-once); consumers drop
  repeats by :func:`streamer.schemas.event_dedup_id`.
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from pydantic import BaseModel

from streamer import schemas


@dataclass(frozen=True)
class Received:
    """One validated record read from a topic."""

    topic: str
    partition: int
    offset: int
    key: Optional[str]
    event: BaseModel
    timestamp_ms: Optional[int] = None


@dataclass
class BusStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    buffered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    last_error: Optional[str] = None
    recovered: int = 0  # durable outbox: records of a previous run sent again at start-up
    memory_only: int = 0  # durable outbox full: records it could not store (lost on kill -9)
    kept: int = 0  # durable outbox: records left unacknowledged at close, sent at the next start


class Subscription(ABC):
    """A consumer on one or more topics (one per thread: Kafka consumers are not thread-safe)."""

    @abstractmethod
    def poll(self, timeout: float = 1.0, max_records: int = 100) -> list[Received]:
        """Return up to ``max_records`` validated records, waiting at most ``timeout`` seconds."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the offsets of every record returned by ``poll`` so far."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group (without committing) and release the connection."""

    def rewind(self) -> None:
        """Read each partition from its beginning when it is first assigned to this subscription (now or
        in a later rebalance), whatever its group committed; offsets are still committed (lag).

        For a consumer whose state is a fold of the whole topic (the map service's latest window per
        cell): after a restart it rebuilds that state from the topic instead of resuming with none.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot rewind")

    def __iter__(self) -> Iterator[Received]:
        while True:
            yield from self.poll()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus(ABC):
    """Publish schema models to topics; open subscriptions on them."""

    @abstractmethod
    def publish(self, topic: str, event: BaseModel, key: Optional[str] = None) -> None:
        """Queue ``event`` for ``topic`` under ``key`` (default: :func:`schemas.event_key`)."""

    @abstractmethod
    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every queued record is acknowledged; False if the timeout passed first."""

    @abstractmethod
    def subscribe(self, topics: Iterable[str], group: Optional[str] = None, *,
                  from_beginning: bool = False, client_id: Optional[str] = None) -> Subscription:
        """Open a subscription; with a ``group`` the partitions are shared and offsets committed."""

    @abstractmethod
    def stats(self) -> BusStats:
        """Delivery counters of this bus's producer."""

    def close(self, timeout: Optional[float] = 10.0) -> None:
        """Flush and release resources."""
        self.flush(timeout)

    def __enter__(self) -> "Bus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LagProbe:
    """Refresh a subscription's consumer-lag gauge at most every ``every_s`` seconds.

    Lag asks the broker for end offsets, so services must not ask on every poll; on
    the embedded tansu broker the figure is approximate (its ListOffsets can trail).
    """

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._last = 0.0

    def maybe_refresh(self, sub: Optional["Subscription"]) -> None:
        lag = getattr(sub, "lag", None)
        if lag is None or time.monotonic() - self._last < self.every_s:
            return
        self._last = time.monotonic()
        try:
            lag()
        except Exception as exc:  # broker away: the gauge keeps its last value
            logging.getLogger(__name__).debug("consumer lag unavailable: %s", exc)


def partition_for(key: Optional[str], partitions: int) -> int:
    """Stable partition of a key (crc32; the in-memory bus's stand-in for Kafka's murmur2)."""
    if not key:
        return 0
    return zlib.crc32(key.encode("utf-8")) % partitions


# -- in-memory implementation -------------------------------------------------------
@dataclass
class _Record:
    key: Optional[str]
    value: bytes
    timestamp_ms: int


@dataclass
class _Group:
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    members: list["_MemorySubscription"] = field(default_factory=list)


class InMemoryBus(Bus):
    """A thread-safe in-process bus with partitions, groups and commits, for tests and library use.

    Values are stored encoded, exactly as Kafka would carry them, so raw invalid
    bytes can be injected with :meth:`publish_raw` to exercise dead-lettering.
    """

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self._logs: dict[str, list[list[_Record]]] = {}
        self._groups: dict[str, _Group] = defaultdict(_Group)
        self._lock = threading.Condition()
        self._stats = BusStats()

    def _log(self, topic: str) -> list[list[_Record]]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self.partitions)]
        return self._logs[topic]

    def publish(self, topic: str, event: BaseModel, key: Optional[str] = None) -> None:
        self.publish_raw(topic, schemas.encode(event), key if key is not None else schemas.event_key(event))

    def publish_raw(self, topic: str, value: bytes, key: Optional[str] = None) -> None:
        """Append bytes as they are, valid or not (used to test consumers against bad input)."""
        with self._lock:
            log = self._log(topic)
            log[partition_for(key, self.partitions)].append(_Record(key, value, int(time.time() * 1000)))
            self._stats.sent += 1
            self._lock.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        return True

    def stats(self) -> BusStats:
        return self._stats

    def records(self, topic: str) -> list[BaseModel]:
        """Every valid record of a topic in partition order (a test and notebook helper)."""
        with self._lock:
            out = []
            for part in self._log(topic):
                for rec in part:
                    try:
                        out.append(schemas.decode(topic, rec.value))
                    except schemas.SchemaError:
                        pass
            return out

    def subscribe(self, topics: Iterable[str], group: Optional[str] = None, *,
                  from_beginning: bool = False, client_id: Optional[str] = None) -> Subscription:
        sub = _MemorySubscription(self, list(topics), group, from_beginning, client_id)
        with self._lock:
            if group is not None:
                self._groups[group].members.append(sub)
                self._rebalance(group)
            else:
                sub.assigned = [(t, p) for t in sub.topics for p in range(self.partitions)]
                for t in sub.topics:
                    for p, part in enumerate(self._log(t)):
                        sub.positions[(t, p)] = 0 if from_beginning else len(part)
        return sub

    def _rebalance(self, group: str) -> None:
        """Round-robin partitions over the group's members; each resumes from the committed offset."""
        g = self._groups[group]
        members = g.members
        if not members:
            return
        topics = sorted({t for m in members for t in m.topics})
        pairs = [(t, p) for t in topics for p in range(self.partitions)]
        for m in members:
            m.assigned = []
            m.positions = {}
        for i, (t, p) in enumerate(pairs):
            m = members[i % len(members)]
            if t not in m.topics:
                continue
            self._log(t)
            m.assigned.append((t, p))
            default = 0 if m.from_beginning else len(self._log(t)[p])
            m.positions[(t, p)] = g.committed.get((t, p), default)
            if m.rewinding and (t, p) not in m.rewound:
                m.positions[(t, p)] = 0
                m.rewound.add((t, p))


class _MemorySubscription(Subscription):
    def __init__(self, bus: InMemoryBus, topics: list[str], group: Optional[str], from_beginning: bool,
                 client_id: Optional[str]) -> None:
        self.bus = bus
        self.topics = topics
        self.group = group
        self.from_beginning = from_beginning
        self.client_id = client_id
        self.assigned: list[tuple[str, int]] = []
        self.positions: dict[tuple[str, int], int] = {}
        self.closed = False
        self.rewinding = False
        self.rewound: set[tuple[str, int]] = set()

    def rewind(self) -> None:
        with self.bus._lock:
            self.rewinding = True
            for tp in self.assigned:
                if tp not in self.rewound:
                    self.positions[tp] = 0
                    self.rewound.add(tp)

    def poll(self, timeout: float = 1.0, max_records: int = 100) -> list[Received]:
        deadline = time.monotonic() + timeout
        bus = self.bus
        with bus._lock:
            while True:
                out: list[Received] = []
                for (t, p) in self.assigned:
                    part = bus._log(t)[p]
                    pos = self.positions[(t, p)]
                    while pos < len(part) and len(out) < max_records:
                        rec = part[pos]
                        try:
                            event = schemas.decode(t, rec.value)
                        except schemas.SchemaError as exc:
                            dl = schemas.dead_letter(t, rec.value, str(exc), key=rec.key, partition=p,
                                                     offset=pos, consumer=self.group or self.client_id)
                            if t != schemas.TOPIC_DLQ:
                                bus._log(schemas.TOPIC_DLQ)[partition_for(t, bus.partitions)].append(
                                    _Record(t, schemas.encode(dl), int(time.time() * 1000)))
                            bus._stats.dead_lettered += 1
                        else:
                            out.append(Received(t, p, pos, rec.key, event, rec.timestamp_ms))
                        pos += 1
                    self.positions[(t, p)] = pos
                if out or self.closed:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return out
                bus._lock.wait(remaining)

    def commit(self) -> None:
        if self.group is None:
            return
        with self.bus._lock:
            g = self.bus._groups[self.group]
            for tp in self.assigned:
                g.committed[tp] = self.positions[tp]

    def close(self) -> None:
        with self.bus._lock:
            self.closed = True
            if self.group is not None:
                g = self.bus._groups[self.group]
                if self in g.members:
                    g.members.remove(self)
                    self.bus._rebalance(self.group)
            self.bus._lock.notify_all()
