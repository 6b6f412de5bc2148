"""Read a topic as a stream of parsed, validated events: the library side of ``imminence subscribe``.

    from streamer.subscribe import events
    for rec in events("imminence.indicators", bootstrap="127.0.0.1:9092", group="analysts", max_events=10):
        print(rec.event.camera_id, rec.event.concept)

Records come through the services' own consumer loop
(:class:`streamer.consume.ConsumerLoop`: its poll, decode and validation,
dead-letter, dedupe and broker-error backoff policy), handed out one by one
instead of to a batch handler.  Every record is validated on arrival (an
invalid one goes to ``imminence.dlq`` and is skipped).  With a group, offsets
are committed batch by batch once the caller has come back for the next
record, i.e. after it processed the previous ones; the generator never fetches
more than ``max_events`` in total, so it commits nothing it did not hand out.
Repeats (at-least-once redelivery) are dropped by event id unless
``dedup=False``.  A broker that cannot be reached when subscribing raises;
later poll and commit errors are retried with the loop's backoff.
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Optional, Union

from streamer import schemas
from streamer.bus import Bus, Received
from streamer.config import BusConfig
from streamer.consume import ConsumerLoop
from streamer.dedup import Deduplicator


def resolve_topic(name: str) -> str:
    """Accept a full topic name (``imminence.cells``) or its short form (``cells``, ``indicators``)."""
    if name in schemas.TOPICS:
        return name
    full = f"imminence.{name}"
    if full in schemas.TOPICS:
        return full
    raise ValueError(f"unknown topic {name!r}; known: {', '.join(schemas.TOPICS)} "
                     f"(or their short forms: {', '.join(t.split('.', 1)[1] for t in schemas.TOPICS)})")


def events(topics: Union[str, Iterable[str]], *, bus: Optional[Bus] = None,
           bootstrap: Optional[str] = None, config: Optional[BusConfig] = None,
           group: Optional[str] = None, from_beginning: bool = False,
           max_events: Optional[int] = None, idle_timeout: Optional[float] = None,
           dedup: bool = True, poll_timeout: float = 0.5) -> Iterator[Received]:
    """Yield validated records of ``topics`` until ``max_events`` or ``idle_timeout`` s without records.

    Pass a ready ``bus`` (Kafka or in-memory), or ``bootstrap``/``config`` to
    open a :class:`streamer.kafka_bus.KafkaBus` that is closed at the end.
    ``idle_timeout`` counts from the last record (or the start); None waits
    for ever.  ``max_events`` counts yielded records (repeats excluded).
    """
    names = [resolve_topic(topics)] if isinstance(topics, str) else [resolve_topic(t) for t in topics]
    if max_events is not None and max_events <= 0:
        return
    own_bus = bus is None
    if bus is None:
        from streamer.kafka_bus import KafkaBus  # noqa: PLC0415 - only when no bus is given

        if config is None:
            if not bootstrap:
                raise ValueError("events() needs a bus, a bootstrap address or a BusConfig")
            config = BusConfig(bootstrap=bootstrap)
        elif bootstrap:
            config = config.model_copy(update={"bootstrap": bootstrap})
        bus = KafkaBus(config)
    # the generator hands records out itself (poll, yield, commit), so the loop's batch handler never runs
    loop = ConsumerLoop(bus, names, handle=lambda recs: None, group=group, from_beginning=from_beginning,
                        dedupe=Deduplicator() if dedup else None, lag_every_s=None, name="subscribe")
    yielded = 0
    try:
        loop.open()  # an unreachable broker raises here, to the caller
        last = time.monotonic()
        while max_events is None or yielded < max_events:
            loop.max_records = 500 if max_events is None else max_events - yielded
            batch = loop.poll(poll_timeout)
            if not loop.pending:  # nothing arrived (dropped repeats did arrive: they are committed below)
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    break
                continue
            last = time.monotonic()
            for rec in batch:
                yield rec
                yielded += 1
            # The caller came back for more: the whole batch is processed.
            loop.commit()
    finally:
        loop.close()
        if own_bus:
            bus.close()
