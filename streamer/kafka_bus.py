"""The Kafka-backed :class:`~streamer.bus.Bus` (kafka-python 2.3.x), same contract as ``InMemoryBus``.

Producing.  ``publish`` only appends to a bounded local outbox; a background
sender thread moves records into kafka-python and counts the delivery
callbacks.  The frame loop therefore never waits on the broker, even while
kafka-python's ``send()`` blocks for metadata with every broker down
(kafka-python #1325).  A record leaves the outbox for good only when the broker
acknowledged it (``acks="all"``); a failed or expired delivery goes back to the
front of the outbox and is sent again, so a broker that is down or restarts
delays records but loses none.  The one loss is deliberate and loud: when
``outbox_size`` records wait (outbox plus in flight), the oldest waiting record
is dropped, counted in ``stats().dropped`` and ``imminence_bus_dropped_total``,
and logged at WARNING.  Retries can duplicate a record; consumers drop repeats
by event id (:class:`streamer.dedup.Deduplicator`).  Order per key holds in
normal running (one produce request in flight per broker); records handed back
by kafka-python after its delivery timeout and re-sent can arrive out of order.

Idempotence (``bus.idempotence``, default ``auto``): before the producer is
made, :func:`streamer.idempotence.probe` asks the broker for a producer id.
Apache Kafka grants one and the producer is idempotent (the broker drops the
repeats of its retries); tansu 0.6.0 answers InitProducerId with an
UnknownError, so there the bus falls back to a plain ``acks=all`` producer.
Which one is in force is logged at start-up ("idempotent producer: on/off")
and reported by ``health()``.  ``on``/``off`` (or ``enable_idempotence=``)
force it.

Durable outbox.  With ``durable=`` (a :class:`streamer.outbox.DurableOutbox`),
every record is also appended to a local SQLite log before ``publish``
returns, and deleted from it once acknowledged; records a killed process left
there are queued again first when the next bus opens the same file.  Drops
(count bound, age bound ``outbox_max_age_s``, a full file or disk) remove the
rows too and are counted and logged the same way; ``close`` leaves what is
still unacknowledged in the file instead of dropping it.

Processes must call :meth:`KafkaBus.close` (flush, then close) before they exit,
including on SIGTERM; :func:`install_sigterm_flush` installs such a handler.

Consuming.  One ``KafkaConsumer`` per subscription (and per thread:
kafka-python's consumer is not thread-safe, #1105), auto-commit off, small
``max_poll_records`` so a slow handler does not miss its poll deadline (#1418).
``poll`` validates every record with :func:`schemas.decode`; an invalid one is
published to ``imminence.dlq`` with the reason, counted, logged by
topic/partition/offset (never its payload) and skipped.  ``commit`` commits the
offsets of the records ``poll`` returned (not ``consumer.position``), after the
dead letters it queued are flushed.  On a rebalance, revoked partitions are
*not* committed: the records returned but not yet committed may not have had
their outputs published, so the new owner receives them again (at-least-once,
not at-most-once).  Consumers call ``commit`` after publishing their outputs and
before long pauses to keep that replay short.  A consumer that can publish its
pending outputs on demand sets ``subscription.on_revoke`` to a callable that
does so and returns True; then the revoked partitions' returned records are
committed during the rebalance and not replayed; ``subscription.on_assign`` is
told the logical (topic, partition) pairs assigned after each rebalance
(:class:`streamer.consume.ConsumerLoop` installs both).

Topics.  Every topic on the wire is ``<namespace>.<topic>`` (plain ``<topic>``
with an empty namespace); ``Received.topic`` is the logical name, so
``schemas.decode`` by topic works unchanged.  The project topics are created
with ``config.partitions`` partitions when missing (tansu would otherwise
auto-create them with its own default).

Consumer lag from :meth:`KafkaSubscription.lag` is approximate: the broker's
ListOffsets "latest" can trail the true log end (on tansu it is batch-grained).

Throughput needs the ``crc32c`` package (a pinned dependency): without it
kafka-python computes record CRCs in pure Python and one producer tops out near
2,500 one-kilobyte records a second.  ``bench/bench_producer.py`` measures it.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from types import FrameType
from typing import Any, Callable, Iterable, Optional, Union

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter
from pydantic import BaseModel

from streamer import schemas
from streamer.bus import Bus, BusStats, Received, Subscription
from streamer.config import BusConfig
from streamer.observability import BUS_BUFFERED, BUS_DLQ, BUS_DROPPED, BUS_SENT, CONSUMER_LAG
from streamer.outbox import FULL_LOG_EVERY_S, DurableOutbox, OutboxError, OutboxFull
from streamer.redact import mask_url

log = logging.getLogger(__name__)

BUS_FAILED = Counter("imminence_bus_failed_total",
                     "Records the broker refused for good (e.g. too large); not retried", ["topic"])
BUS_RETRIES = Counter("imminence_bus_retries_total",
                      "Deliveries that failed and were queued again", ["topic"])
OUTBOX_RECOVERED = Counter("imminence_outbox_recovered_total",
                           "Records found unacknowledged in the durable outbox at start-up and sent again")
OUTBOX_FULL = Counter("imminence_outbox_full_total",
                      "Appends refused because the durable outbox file or its disk was full")
OUTBOX_MEMORY_ONLY = Counter("imminence_outbox_memory_only_total",
                             "Records kept in memory only because the durable outbox could not store them")

#: Errors that no retry can cure: the record itself is unacceptable.
_PERMANENT = (kerrors.MessageSizeTooLargeError, kerrors.InvalidTopicError,
              kerrors.RecordListTooLargeError, kerrors.UnsupportedForMessageFormatError)


class _MaskClientSecrets(logging.Filter):
    """kafka-python's admin client logs its whole configuration, SASL password included, at DEBUG."""

    SECRET_KEYS = ("sasl_plain_password", "ssl_password", "sasl_oauth_token_provider")

    def _mask(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("***" if k in self.SECRET_KEYS and v else v) for k, v in value.items()}
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        # LogRecord unpacks a lone dict argument into ``args`` itself.
        if isinstance(record.args, dict):
            record.args = self._mask(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(self._mask(a) for a in record.args)
        return True


_admin_log = logging.getLogger("kafka.admin.client")
if not any(isinstance(f, _MaskClientSecrets) for f in _admin_log.filters):
    _admin_log.addFilter(_MaskClientSecrets())


# -- configuration helpers -----------------------------------------------------------
def wire_topic(namespace: str, topic: str) -> str:
    """The topic name on the broker: ``namespace.topic``, or ``topic`` with no namespace."""
    ns = namespace.rstrip(".")
    return f"{ns}.{topic}" if ns else topic


def security_options(cfg: BusConfig) -> dict[str, Any]:
    """kafka-python keyword arguments for SASL (PLAIN/SCRAM) and TLS, from the bus config."""
    opts: dict[str, Any] = {"security_protocol": cfg.security_protocol}
    if cfg.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = cfg.sasl_mechanism
        opts["sasl_plain_username"] = cfg.sasl_username
        opts["sasl_plain_password"] = cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
    if cfg.security_protocol.endswith("SSL"):
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(cfg, name):
                opts[name] = getattr(cfg, name)
        opts["ssl_check_hostname"] = cfg.ssl_check_hostname
    return opts


def describe(cfg: BusConfig) -> str:
    """A loggable one-line description of the connection (credentials masked)."""
    parts = [f"bootstrap={mask_url(cfg.bootstrap or '')}", f"security={cfg.security_protocol}"]
    if cfg.namespace:
        parts.append(f"namespace={cfg.namespace}")
    if cfg.sasl_mechanism:
        parts.append(f"sasl={cfg.sasl_mechanism} user={cfg.sasl_username} password=***")
    return " ".join(parts)


def _as_config(config: Union[BusConfig, str], overrides: dict[str, Any]) -> BusConfig:
    if isinstance(config, str):
        return BusConfig(bootstrap=config, **overrides)
    if overrides:
        return config.model_copy(update=overrides)
    return config


# -- the producer side ------------------------------------------------------------------
@dataclass
class _Out:
    """One record waiting for the broker's acknowledgement."""

    topic: str  # logical
    wire: str
    key: Optional[bytes]
    value: bytes
    attempts: int = 0
    seq: Optional[int] = None  # its row in the durable outbox, when there is one
    created: float = 0.0  # wall-clock time of publish (the age bound)


class KafkaBus(Bus):
    """Publish and subscribe through Kafka with a non-blocking, bounded outbox.

    ``config`` is a :class:`BusConfig` or a bootstrap string; keyword overrides
    (``namespace=...``, ``outbox_size=...``) update a copy of it.  Nothing is
    contacted in the constructor: the sender thread connects (and reconnects)
    in the background, so a bus can be built while the broker is still down.

    ``producer_options``/``consumer_options`` pass extra kafka-python settings
    through (tansu answers a group join after half the session timeout, so
    tests use ``session_timeout_ms=6000`` to join in about 3 s instead of 5).

    Missing topics are created with ``replication_factor`` 1 (the embedded
    broker); a production cluster should have its topics made by the
    deployment with proper replication (``docker/``), which this never changes.
    """

    def __init__(self, config: Union[BusConfig, str], *, enable_idempotence: Optional[bool] = None,
                 durable: Optional[DurableOutbox] = None,
                 linger_ms: int = 10, create_topics: bool = True,
                 topics: Iterable[str] = schemas.TOPICS,
                 delivery_timeout_ms: int = 30_000, max_request_size: int = 1_048_576,
                 replication_factor: int = 1,
                 producer_options: Optional[dict[str, Any]] = None,
                 consumer_options: Optional[dict[str, Any]] = None, **overrides: Any) -> None:
        self.config = _as_config(config, overrides)
        if not self.config.bootstrap:
            raise ValueError("KafkaBus needs a bootstrap address (bus.bootstrap or --bootstrap host:port)")
        self.namespace = self.config.namespace.rstrip(".")
        self._prefix = f"{self.namespace}." if self.namespace else ""
        self._security = security_options(self.config)
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = self._security.get(name)
            if path and not os.path.isfile(path):
                raise FileNotFoundError(f"bus.{name}: {path} does not exist or is not a file")
        self._producer_options = {
            "acks": "all",
            "retries": 2_147_483_647,  # retried inside kafka-python until the delivery timeout
            "linger_ms": linger_ms,
            "batch_size": 256 * 1024,
            # One request in flight per broker: retries cannot reorder a partition (no idempotence
            # on tansu), and against tansu it is also the fastest setting measured.
            "max_in_flight_requests_per_connection": 1,
            "enable_idempotence": False,  # decided in _connect (idempotence.py)
            "delivery_timeout_ms": delivery_timeout_ms,
            "request_timeout_ms": min(15_000, max(1_000, delivery_timeout_ms - linger_ms - 1)),
            "max_block_ms": 2_000,  # send() may block this long for metadata: only the sender thread waits
            "max_request_size": max_request_size,
            "reconnect_backoff_max_ms": 2_000,
            **(producer_options or {}),
        }
        if enable_idempotence is None:
            self._idempotence = self.config.idempotence
        else:
            self._idempotence = "on" if enable_idempotence else "off"
        #: whether the connected producer is idempotent (None until it connected)
        self.idempotent: Optional[bool] = None
        self.idempotence_reason = ""
        self.consumer_options = dict(consumer_options or {})
        self._create_topics = create_topics
        self._replication = replication_factor
        self._project_topics = tuple(topics)
        self._ensured: set[str] = set()
        self._ensure_lock = threading.Lock()
        self._tried: set[str] = set()  # logical topics the sender already tried to create

        self._outbox: deque[_Out] = deque()
        self._inflight = 0
        # Records in flight count towards the bound; keep room for the outbox.
        self._inflight_limit = max(1, min(5_000, self.config.outbox_size // 2))
        self._cond = threading.Condition()
        self._stats = BusStats()
        self._closing = False
        self._closed = False
        self._connected = False
        self._producer: Optional[KafkaProducer] = None
        self._last_drop_log = 0.0
        self._children: dict[tuple, Any] = {}
        self._drops_since_log = 0
        self.durable = durable
        self._acked: list[int] = []  # durable rows acknowledged, removed by the sender thread
        self._last_expiry = 0.0
        self._last_full_log = float("-inf")
        self._tick = 0.5
        if durable is not None:
            if durable.fsync == "interval":
                self._tick = min(0.5, durable.fsync_ms / 1000)
            self._recover()
        self._thread = threading.Thread(target=self._run, name=f"kafka-outbox-{self.config.client_id}",
                                        daemon=True)
        self._thread.start()
        log.info("kafka bus %s", describe(self.config))

    # topic names ---------------------------------------------------------------------
    def wire(self, topic: str) -> str:
        """The broker-side name of a logical topic."""
        return self._prefix + topic

    def logical(self, wire: str) -> str:
        """The logical name of a broker-side topic (the namespace prefix removed)."""
        return wire[len(self._prefix):] if self._prefix and wire.startswith(self._prefix) else wire

    def client_options(self) -> dict[str, Any]:
        """Connection options shared by every kafka-python client this bus makes."""
        return {"bootstrap_servers": self.config.bootstrap.split(","), **self._security}

    def ensure_topics(self, topics: Iterable[str], timeout: float = 10.0, *, force: bool = False) -> bool:
        """Create the logical ``topics`` (namespaced) with ``config.partitions`` partitions if missing.

        Returns False when the broker could not be reached; the caller may go on
        (the broker would auto-create, with its own partition count).  With
        ``create_topics=False`` this does nothing unless ``force`` is set.
        """
        wanted = [self.wire(t) for t in topics]
        with self._ensure_lock:
            missing = [w for w in wanted if w not in self._ensured]
            if not missing or not (self._create_topics or force):
                return True
            admin = None
            try:
                admin = KafkaAdminClient(client_id=f"{self.config.client_id}-admin",
                                         request_timeout_ms=int(timeout * 1000), **self.client_options())
                for w in missing:  # one by one: an existing topic fails only its own request
                    try:
                        admin.create_topics([NewTopic(w, self.config.partitions, self._replication)],
                                            timeout_ms=int(timeout * 1000))
                        log.info("created topic %s (%d partitions)", w, self.config.partitions)
                    except kerrors.TopicAlreadyExistsError:
                        pass
                    self._ensured.add(w)
                return True
            except kerrors.KafkaError as exc:
                log.warning("could not create topics %s: %s", missing, mask_url(str(exc)))
                return False
            finally:
                if admin is not None:
                    admin.close()

    # publishing ------------------------------------------------------------------------
    def publish(self, topic: str, event: BaseModel, key: Optional[str] = None) -> None:
        if key is None:
            key = schemas.event_key(event)
        self.publish_raw(topic, schemas.encode(event), key)

    def publish_raw(self, topic: str, value: bytes, key: Optional[str] = None) -> None:
        """Queue bytes as they are (valid or not); the same outbox and guarantees as ``publish``."""
        rec = _Out(topic, self.wire(topic), key.encode("utf-8") if key is not None else None, bytes(value),
                   created=time.time())
        if self._closed:
            raise RuntimeError("publish on a closed KafkaBus")
        if self.durable is not None:
            rec.seq = self._store(rec)
        with self._cond:
            if self._closed:
                raise RuntimeError("publish on a closed KafkaBus")
            self._outbox.append(rec)
            self._enforce_bound_locked()
            if len(self._outbox) == 1:
                self._cond.notify_all()  # the sender sleeps only on an empty outbox (or a full pipe)
        BUS_BUFFERED.inc()

    # the durable outbox ------------------------------------------------------------------
    def _recover(self) -> None:
        """Queue the records a previous run of this process left unacknowledged, oldest first."""
        assert self.durable is not None
        pending = self.durable.pending()
        for p in pending:
            self._outbox.append(_Out(p.topic, self.wire(p.topic), p.key, p.value, seq=p.seq, created=p.created))
        self._stats.recovered = len(pending)
        if pending:
            OUTBOX_RECOVERED.inc(len(pending))
            BUS_BUFFERED.inc(len(pending))
            log.warning("durable outbox %s: %d record(s) of a previous run were never acknowledged; "
                        "sending them again (same ids: consumers drop repeats)", self.durable.path, len(pending))
            with self._cond:
                self._enforce_bound_locked()
        log.info("durable outbox %s (fsync=%s%s)", self.durable.path, self.durable.fsync,
                 f" every {self.durable.fsync_ms} ms" if self.durable.fsync == "interval" else "")

    def _store(self, rec: _Out) -> Optional[int]:
        """Append ``rec`` to the durable outbox; on a full file or disk, drop the oldest waiting records first.

        Returns the row, or None when even then it could not be stored (the record
        is kept in memory only, counted and logged: never a crash of the frame loop).
        """
        assert self.durable is not None
        for attempt in range(4):
            try:
                seq = self.durable.append(rec.topic, rec.key, rec.value, rec.created)
                if attempt and not self.durable.disk_full:  # a full disk keeps it released until it thaws
                    self.durable.restore_reserve()
                return seq
            except OutboxFull as exc:
                OUTBOX_FULL.inc()
                if attempt == 0:
                    self.durable.release_reserve()  # room to delete and checkpoint on a full disk
                    if self.durable.checkpoint():
                        continue  # a truncated WAL may be all the room needed
                # rows are appended at the end of the table: only whole freed pages make room, so
                # drop a chunk (5 %, at least 16) of the oldest, not one record at a time
                if attempt == 3 or not self._drop_stored_oldest(max(16, len(self._outbox) // 20), str(exc)):
                    break
            except OutboxError as exc:
                log.error("durable outbox %s: %s; record kept in memory only", self.durable.path, exc)
                break
        OUTBOX_MEMORY_ONLY.inc()
        with self._cond:
            self._stats.memory_only += 1
        now = time.monotonic()
        if now - self._last_full_log >= FULL_LOG_EVERY_S:  # once, then a reminder with the count
            self._last_full_log = now
            log.error("durable outbox %s is full and nothing older can be dropped: %d record(s) kept in memory "
                      "only (lost if this process is killed; stored when space returns); free disk space or "
                      "raise bus.outbox_max_bytes", self.durable.path, self._stats.memory_only)
        return None

    def _store_memory_only(self, limit: int = 512) -> int:
        """After the disk thawed: append records kept in memory only to the file (oldest first)."""
        assert self.durable is not None
        stored = 0
        with self._cond:  # held so an acknowledgement cannot pass a row being assigned
            for rec in self._outbox:
                if rec.seq is not None:
                    continue
                try:
                    rec.seq = self.durable.append(rec.topic, rec.key, rec.value, rec.created)
                except OutboxError:
                    break  # full again: the next thaw tries the rest
                stored += 1
                if stored >= limit:
                    break
        if stored:
            log.warning("durable outbox %s: %d record(s) kept in memory only are stored again",
                        self.durable.path, stored)
        return stored

    def _drop_stored_oldest(self, n: int, reason: str) -> int:
        """Full file or disk: drop the ``n`` oldest waiting records that are in the file, if deleting them works.

        Only rows really deleted make room, so a record is dropped only when its row
        could be removed (on a completely full disk even a delete can fail: then
        nothing is dropped and new records are kept in memory).
        """
        assert self.durable is not None
        with self._cond:
            victims = list(islice((r for r in self._outbox if r.seq is not None), n))
            if not victims:
                return 0
            try:
                self.durable.remove([r.seq for r in victims if r.seq is not None])
            except Exception as exc:  # the disk is too full even to delete
                log.debug("durable outbox: cannot delete to make room: %s", exc)
                return 0
            gone = {id(r) for r in victims}
            keep = [r for r in self._outbox if id(r) not in gone]
            self._outbox.clear()
            self._outbox.extend(keep)
            self._count_dropped_locked(victims, f"durable outbox full ({reason})", remove=False)
        self.durable.checkpoint()
        return len(victims)

    def _count_dropped_locked(self, dropped: list[_Out], reason: str, remove: bool = True) -> None:
        if not dropped:
            return
        if self.durable is not None and remove:
            seqs = [r.seq for r in dropped if r.seq is not None]
            try:
                self.durable.remove(seqs)
            except Exception as exc:  # a full disk may refuse even a delete: they are resent, never lost
                log.warning("durable outbox: could not remove %d dropped record(s): %s", len(seqs), exc)
        self._stats.dropped += len(dropped)
        BUS_BUFFERED.dec(len(dropped))
        for rec in dropped:
            BUS_DROPPED.labels(rec.topic).inc()
        self._drops_since_log += len(dropped)
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:  # loud, but one line a second at most
            log.warning("kafka outbox: %s: dropped %d oldest record(s) since last report, %d in total; "
                        "is the broker at %s reachable?", reason, self._drops_since_log, self._stats.dropped,
                        mask_url(self.config.bootstrap or ""))
            self._last_drop_log = now
            self._drops_since_log = 0

    def _expire_locked(self) -> None:
        """Drop records older than ``outbox_max_age_s`` (checked once a second)."""
        max_age = self.config.outbox_max_age_s
        now = time.time()
        if not max_age or now - self._last_expiry < 1.0:
            return
        self._last_expiry = now
        old = [r for r in self._outbox if now - r.created > max_age]
        if old:
            keep = [r for r in self._outbox if now - r.created <= max_age]
            self._outbox.clear()
            self._outbox.extend(keep)
            self._count_dropped_locked(old, f"records older than {max_age:g} s")

    def _remove_acked(self) -> None:
        """Delete acknowledged rows from the durable outbox (sender thread, close)."""
        if self.durable is None:
            return
        with self._cond:
            acked, self._acked = self._acked, []
        if acked:
            try:
                self.durable.remove(acked)
            except Exception as exc:  # they stay and are resent after a restart: duplicates, not losses
                log.warning("durable outbox: could not remove %d acknowledged record(s): %s", len(acked), exc)
        self.durable.maybe_sync()
        if self.durable.maybe_thaw() and self._stats.memory_only:
            self._store_memory_only()

    def _enforce_bound_locked(self) -> None:
        """Drop the oldest waiting records while more than ``outbox_size`` are held."""
        dropped: list[_Out] = []
        while self._outbox and len(self._outbox) + self._inflight > self.config.outbox_size:
            dropped.append(self._outbox.popleft())
        if not dropped:
            return
        self._count_dropped_locked(dropped, f"outbox full ({self.config.outbox_size} records)")

    def flush(self, timeout: Optional[float] = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._outbox or self._inflight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.1 if remaining is None else min(0.1, remaining))
            return True

    def stats(self) -> BusStats:
        with self._cond:
            s = BusStats(**vars(self._stats))
            s.buffered = len(self._outbox) + self._inflight
            return s

    def health(self) -> dict:
        """For :func:`streamer.observability.set_health`: not ok while records wait on an absent broker."""
        s = self.stats()
        ok = not self._closed and (self._connected or s.buffered == 0)
        return {"ok": ok, "connected": self._connected,
                "buffered": s.buffered, "sent": s.sent, "dropped": s.dropped, "failed": s.failed,
                "last_error": s.last_error, "idempotent": self.idempotent,
                "durable_outbox": str(self.durable.path) if self.durable is not None else None}

    def close(self, timeout: Optional[float] = 10.0) -> None:
        """Flush (up to ``timeout``), then stop the sender and close the producer.

        Records still unacknowledged after the timeout are counted as dropped and
        logged; nothing is discarded silently.  With a durable outbox they are not
        dropped: they stay in its file and are sent again at the next start.
        """
        if self._closed:
            return
        ok = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        if self._producer is not None:
            try:
                self._producer.close(timeout=5 if ok else 1)
            except Exception as exc:  # closing must not raise past the caller's shutdown
                log.warning("closing kafka producer: %s", exc)
        kept = 0
        if self.durable is not None:
            self._remove_acked()
            try:
                kept = self.durable.count()
            except Exception:  # the count is for the log line only
                kept = -1
            self.durable.close()
        with self._cond:
            left = len(self._outbox) + self._inflight
            if self.durable is not None:
                left = sum(1 for r in self._outbox if r.seq is None)
            if left:
                self._stats.dropped += left
            n = len(self._outbox) + self._inflight
            if n:
                BUS_BUFFERED.dec(n)
            self._outbox.clear()
            self._inflight = 0
            self._stats.kept = kept
        if kept:
            log.warning("kafka bus closed with %d record(s) unacknowledged, kept in the durable outbox %s: "
                        "they are sent at the next start", kept, self.durable.path if self.durable else "")
        if left:
            log.error("kafka bus closed with %d record(s) never acknowledged (counted as dropped; broker %s)",
                      left, mask_url(self.config.bootstrap or ""))
        s = self.stats()
        log.info("kafka bus closed: sent=%d retries=%d failed=%d dropped=%d", s.sent, s.retries, s.failed,
                 s.dropped)

    # the sender thread --------------------------------------------------------------
    def _decide_idempotence(self) -> Optional[bool]:
        """Whether the producer is idempotent: per ``bus.idempotence``; auto asks the broker once.

        None: auto could not reach a broker yet (the caller retries).
        """
        if self.idempotent is not None:
            return self.idempotent
        if self._idempotence == "off":
            self.idempotent, self.idempotence_reason = False, "bus.idempotence: off"
        elif self._idempotence == "on":
            self.idempotent, self.idempotence_reason = True, "bus.idempotence: on"
        else:
            from streamer.idempotence import probe  # noqa: PLC0415

            granted, reason = probe(self.client_options())
            if granted is None:
                self._note_error(f"cannot connect the producer: {reason}")
                return None
            self.idempotent, self.idempotence_reason = granted, f"auto: {reason}"
        log.info("idempotent producer: %s (%s)", "on" if self.idempotent else "off, falling back to "
                 "acks=all with retries; consumers drop repeats by event id", self.idempotence_reason)
        return self.idempotent

    def _connect(self) -> bool:
        idempotent = self._decide_idempotence()
        if idempotent is None:
            return False
        try:
            self._producer = KafkaProducer(client_id=self.config.client_id, **self.client_options(),
                                           **{**self._producer_options, "enable_idempotence": idempotent})
        except Exception as exc:  # NoBrokersAvailable, but also a bad CA file or SSL settings
            self._note_error(f"cannot connect the producer: {type(exc).__name__}: {exc}")
            return False
        self._connected = True
        log.info("kafka producer connected to %s (idempotent: %s)", mask_url(self.config.bootstrap or ""),
                 "yes" if idempotent else "no")
        if self._create_topics and self.ensure_topics(self._project_topics):
            self._tried |= set(self._project_topics)
        return True

    def _note_error(self, msg: str) -> None:
        with self._cond:
            first = self._stats.last_error != msg
            self._stats.last_error = msg
        (log.warning if first else log.debug)("kafka: %s", mask_url(msg))

    def _run(self) -> None:
        while True:
            try:
                self._loop()
                return
            except Exception:  # the sender must never die silently: log, pause, go on
                log.exception("kafka outbox sender failed; restarting it in 1 s")
                self._sleep(1.0)
                if self._closing:
                    return

    def _loop(self) -> None:
        backoff = 0.2
        while True:
            self._remove_acked()
            with self._cond:
                self._expire_locked()
                while not self._closing and not self._acked and (
                        not self._outbox or self._inflight >= self._inflight_limit):
                    self._cond.wait(self._tick)
                    self._expire_locked()
                if self._closing:
                    return
                if not self._outbox or self._inflight >= self._inflight_limit:
                    continue  # woken to remove acknowledged rows
            if self._producer is None and not self._connect():
                self._sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if self._create_topics:
                with self._cond:
                    pending = {r.topic for r in islice(self._outbox, 64)} - self._tried
                if pending:
                    self._tried |= pending  # once: on failure the broker's auto-creation serves
                    self.ensure_topics(pending)
            if self._send_some():
                backoff = 0.2
            else:
                self._sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            if not self._closing:
                self._cond.wait(seconds)

    def _send_some(self) -> bool:
        """Hand waiting records to kafka-python; False when a send failed and the loop should back off."""
        assert self._producer is not None
        send = self._producer.send
        while True:
            with self._cond:
                room = min(len(self._outbox), self._inflight_limit - self._inflight, 512)
                if self._closing or room <= 0:
                    return True
                batch = [self._outbox.popleft() for _ in range(room)]
                self._inflight += room
            for i, rec in enumerate(batch):
                rec.attempts += 1
                try:
                    fut = send(rec.wire, value=rec.value, key=rec.key)
                except _PERMANENT as exc:
                    self._settle(rec, exc)
                    continue
                except Exception as exc:  # KafkaTimeoutError while brokers are down, buffer full...
                    rest = batch[i:]
                    with self._cond:
                        self._inflight -= len(rest)
                        self._outbox.extendleft(reversed(rest))  # back in front, in their order
                        self._enforce_bound_locked()
                    self._note_error(f"send to {rec.wire} failed, will retry: {type(exc).__name__}: {exc}")
                    self._connected = False
                    return False
                fut.add_callback(self._on_ack, rec)
                fut.add_errback(self._on_error, rec)

    def _metric(self, counter: Counter, topic: str) -> Any:
        """The labelled child of ``counter`` for ``topic``, cached (labels() is a locked lookup)."""
        key = (counter, topic)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(topic)
        return child

    def _on_ack(self, rec: _Out, _metadata: Any) -> None:
        with self._cond:
            self._inflight -= 1
            self._stats.sent += 1
            self._connected = True
            if rec.seq is not None:
                self._acked.append(rec.seq)
                if len(self._acked) == 1:
                    self._cond.notify_all()  # the sender removes acknowledged rows
            if not self._inflight or self._inflight == self._inflight_limit - 1:
                self._cond.notify_all()  # flush waits for zero; the sender for room
        BUS_BUFFERED.dec()
        self._metric(BUS_SENT, rec.topic).inc()

    def _on_error(self, rec: _Out, exc: BaseException) -> None:
        self._settle(rec, exc)

    def _settle(self, rec: _Out, exc: BaseException) -> None:
        """A delivery failed: queue it again at the front, or give up when no retry can help."""
        with self._cond:
            self._inflight -= 1
            if isinstance(exc, _PERMANENT):
                self._stats.failed += 1
                if rec.seq is not None:
                    self._acked.append(rec.seq)  # refused for good: no retry after a restart either
                BUS_BUFFERED.dec()
                BUS_FAILED.labels(rec.topic).inc()
                permanent = True
            else:
                self._stats.retries += 1
                BUS_RETRIES.labels(rec.topic).inc()
                self._outbox.appendleft(rec)
                self._enforce_bound_locked()
                permanent = False
            self._cond.notify_all()
        if permanent:
            log.error("kafka refused a record for good (%s, %d bytes): %s", rec.wire, len(rec.value),
                      type(exc).__name__)
            with self._cond:
                self._stats.last_error = f"{type(exc).__name__}: {exc}"
        else:
            self._note_error(f"delivery to {rec.wire} failed, queued again: {type(exc).__name__}")

    # subscribing -----------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str], group: Optional[str] = None, *,
                  from_beginning: bool = False, client_id: Optional[str] = None) -> "KafkaSubscription":
        topics = list(topics)
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        self.ensure_topics(topics)
        return KafkaSubscription(self, topics, group, from_beginning=from_beginning, client_id=client_id)

    def _count_dead_letter(self, topic: str) -> None:
        with self._cond:
            self._stats.dead_lettered += 1
        BUS_DLQ.labels(topic).inc()


# -- the consumer side ------------------------------------------------------------------
class _Revocations(ConsumerRebalanceListener):
    """Forget what was returned from revoked partitions: uncommitted work is redelivered to the new owner."""

    def __init__(self, sub: "KafkaSubscription") -> None:
        self.sub = sub

    def on_partitions_revoked(self, revoked: Any) -> None:
        sub = self.sub
        lost = [tp for tp in revoked if tp in sub._returned]
        if lost and sub.on_revoke is not None:
            try:
                ready = bool(sub.on_revoke())
            except Exception as exc:  # the consumer's hook failed: fall back to redelivery
                log.warning("on_revoke hook of %s failed (%s); records will be redelivered", sub.name, exc)
                ready = False
            if ready and sub._flush_dead_letters():
                offsets = {tp: OffsetAndMetadata(sub._returned[tp], "", -1) for tp in lost}
                try:
                    sub._consumer.commit(offsets)
                    log.info("committed revoked partitions of %s after its outputs were published: %s",
                             sub.name, ", ".join(f"{tp.topic}[{tp.partition}]@{o.offset}" for tp, o in offsets.items()))
                    lost = []
                except kerrors.KafkaError as exc:
                    log.warning("commit on revocation failed for %s (%s); records will be redelivered",
                                sub.name, type(exc).__name__)
        for tp in revoked:
            sub._returned.pop(tp, None)
        if lost:
            log.info("partitions revoked with uncommitted records (they will be redelivered): %s",
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in lost))

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.debug("partitions assigned: %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in assigned))
        sub = self.sub
        sub._rewind_new(assigned)
        if sub.on_assign is not None:
            try:
                sub.on_assign({(sub.bus.logical(tp.topic), tp.partition) for tp in assigned})
            except Exception as exc:  # informational: a failing hook must not break the rebalance
                log.warning("on_assign hook of %s failed: %s", sub.name, exc)


class KafkaSubscription(Subscription):
    """A validating consumer on logical topics; see the module notes for commit and revocation."""

    def __init__(self, bus: KafkaBus, topics: list[str], group: Optional[str], *,
                 from_beginning: bool = False, client_id: Optional[str] = None) -> None:
        self.bus = bus
        self.topics = topics
        self.group = group
        self.name = group or client_id or bus.config.client_id
        cfg = bus.config
        self._consumer = KafkaConsumer(
            client_id=client_id or cfg.client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            max_poll_records=cfg.max_poll_records,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            # kafka-python rejects frames above 1 MB by default, below the fetch sizes above:
            # a backlog would then close the connection on every fetch and never be read
            receive_message_max_bytes=32 * 1024 * 1024,
            **{"session_timeout_ms": cfg.session_timeout_ms,
               "heartbeat_interval_ms": min(3_000, cfg.session_timeout_ms // 3),
               **bus.client_options(), **bus.consumer_options},
        )
        self._returned: dict[TopicPartition, int] = {}  # next offset after what poll returned
        #: Called on partition revocation; returns True once the consumer's outputs for everything
        #: returned so far are published, so those records may be committed instead of replayed.
        self.on_revoke: Optional[Callable[[], bool]] = None
        #: Called after a rebalance with the logical (topic, partition) pairs now assigned.
        self.on_assign: Optional[Callable[[set[tuple[str, int]]], None]] = None
        self._dlq_pending = False
        self._closed = False
        self._rewinding = False
        self._rewound: set[TopicPartition] = set()
        wire = [bus.wire(t) for t in topics]
        if group is not None:
            self._consumer.subscribe(wire, listener=_Revocations(self))
        else:
            tps = []
            for t, w in zip(topics, wire):
                parts = self._consumer.partitions_for_topic(w)
                if not parts:
                    # Manual assignment needs partitions: create a missing topic even when the bus
                    # was told not to create topics on connect (a group would have it auto-created).
                    bus.ensure_topics([t], force=True)
                    parts = self._consumer.partitions_for_topic(w)
                if not parts:
                    self._consumer.close(autocommit=False)
                    raise kerrors.UnknownTopicOrPartitionError(
                        f"topic {w} does not exist and could not be created (broker {mask_url(cfg.bootstrap or '')})")
                tps += [TopicPartition(w, p) for p in sorted(parts)]
            self._consumer.assign(tps)
            # Resolve the start now, so records published after subscribe() are seen.
            for tp in tps:
                self._consumer.position(tp)

    def rewind(self) -> None:
        self._rewinding = True
        self._rewind_new(self._consumer.assignment())

    def _rewind_new(self, assigned: Any) -> None:
        """Seek the partitions assigned for the first time to their beginning (after :meth:`rewind`)."""
        new = [tp for tp in assigned if tp not in self._rewound] if self._rewinding else []
        if new:
            self._consumer.seek_to_beginning(*new)
            self._rewound.update(new)
            log.info("%s reads from the beginning of %s", self.name,
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in new))

    @property
    def consumer(self) -> KafkaConsumer:
        """The underlying kafka-python consumer (for diagnostics; don't poll it directly)."""
        return self._consumer

    def assignment(self) -> set[tuple[str, int]]:
        """Logical (topic, partition) pairs currently assigned."""
        return {(self.bus.logical(tp.topic), tp.partition) for tp in self._consumer.assignment()}

    def poll(self, timeout: float = 1.0, max_records: int = 100) -> list[Received]:
        limit = max(1, min(max_records, self.bus.config.max_poll_records))
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=limit)
        except kerrors.KafkaError as exc:  # broker away: keep the loop alive
            log.warning("kafka poll failed (%s): %s", self.name, mask_url(str(exc)))
            time.sleep(min(timeout, 0.5))
            return []
        out: list[Received] = []
        for tp, records in batches.items():
            topic = self.bus.logical(tp.topic)
            for r in records:
                self._returned[tp] = r.offset + 1
                key = r.key.decode("utf-8", errors="replace") if r.key is not None else None
                try:
                    if r.value is None:
                        raise schemas.SchemaError("value is null (tombstone)")
                    event = schemas.decode(topic, r.value)
                except schemas.SchemaError as exc:
                    self._dead_letter(topic, tp.partition, r.offset, key, r.value, str(exc))
                    continue
                out.append(Received(topic, tp.partition, r.offset, key, event, r.timestamp))
        return out

    def _dead_letter(self, topic: str, partition: int, offset: int, key: Optional[str],
                     value: Optional[bytes], reason: str) -> None:
        size = len(value) if value is not None else 0
        log.warning("invalid record sent to %s: %s[%d]@%d (%d bytes): %s", schemas.TOPIC_DLQ, topic,
                    partition, offset, size, reason[:300])
        self.bus._count_dead_letter(topic)
        if topic == schemas.TOPIC_DLQ:
            return  # never loop dead letters back into their own topic
        dl = schemas.dead_letter(topic, value, reason, key=key, partition=partition, offset=offset,
                                 consumer=self.name)
        self.bus.publish(schemas.TOPIC_DLQ, dl, key=topic)
        self._dlq_pending = True

    def commit(self, timeout: float = 30.0) -> None:
        """Commit the offsets of everything ``poll`` returned (dead letters flushed first)."""
        if self.group is None or not self._returned:
            return
        if not self._flush_dead_letters(timeout):
            log.warning("not committing %s: dead letters not yet acknowledged", self.name)
            return
        assigned = self._consumer.assignment()
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in self._returned.items() if tp in assigned}
        if not offsets:
            self._returned.clear()
            return
        try:
            self._consumer.commit(offsets)
        except (kerrors.CommitFailedError, kerrors.RebalanceInProgressError, kerrors.IllegalStateError) as exc:
            log.warning("commit failed for %s (group rebalanced; records will be redelivered): %s",
                        self.name, type(exc).__name__)
            return
        for tp, om in offsets.items():
            if self._returned.get(tp) == om.offset:
                del self._returned[tp]

    def _flush_dead_letters(self, timeout: float = 30.0) -> bool:
        """Dead letters are this subscription's own outputs: acknowledged before any commit."""
        if self._dlq_pending:
            if not self.bus.flush(timeout):
                return False
            self._dlq_pending = False
        return True

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the broker's end offset per (logical topic, partition).

        Approximate: ListOffsets "latest" can trail the true log end, so a lag of
        0 does not prove everything was read.  On tansu 0.6.0 it is batch-grained
        (measured: 30 unread records in one batch per partition showed as a lag
        of 1 per partition); on Apache Kafka it is exact up to in-flight writes.
        """
        tps = list(self._consumer.assignment())
        if not tps:
            return {}
        ends = self._consumer.end_offsets(tps)
        out: dict[tuple[str, int], int] = {}
        per_topic: dict[str, int] = {}
        for tp in tps:
            pos = self._consumer.position(tp)
            lag = max(0, (ends.get(tp) or 0) - (pos or 0))
            topic = self.bus.logical(tp.topic)
            out[(topic, tp.partition)] = lag
            per_topic[topic] = per_topic.get(topic, 0) + lag
        for topic, lag in per_topic.items():
            CONSUMER_LAG.labels(self.group or "-", topic).set(lag)
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close(autocommit=False)
        except Exception as exc:  # leaving the group must not raise past shutdown
            log.warning("closing kafka consumer %s: %s", self.name, exc)


# -- process shutdown -------------------------------------------------------------------
def install_sigterm_flush(bus: Bus, timeout: float = 10.0, exit_code: int = 143) -> Callable:
    """On SIGTERM, exit with ``exit_code``, closing ``bus`` (flushing up to ``timeout`` s) on the way out.

    Must be called from the main thread.  Returns the previous handler.  The
    handler only raises :class:`SystemExit`; the bus is closed by an ``atexit``
    hook once the stack has unwound, because the signal may land while the main
    thread holds the bus's or the durable outbox's lock (in ``publish``), and
    closing from inside the handler would wait on that lock for ever.  A process
    that has its own shutdown path should call ``bus.close()`` there instead.
    """
    import atexit

    def _close() -> None:
        bus.close(timeout)

    def _handler(signum: int, frame: Optional[FrameType]) -> None:
        log.info("SIGTERM: exiting; the bus flushes and closes once the stack has unwound")
        atexit.unregister(_close)
        atexit.register(_close)
        raise SystemExit(exit_code)

    return signal.signal(signal.SIGTERM, _handler)
