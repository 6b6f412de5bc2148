"""A durable outbox: records waiting for the broker's acknowledgement, kept in a local SQLite log.

:class:`DurableOutbox` is the on-disk half of :class:`streamer.kafka_bus.KafkaBus`'s
outbox.  ``publish`` appends the record here (one SQLite transaction in WAL mode)
before the frame loop moves on; the record is deleted only once the broker
acknowledged it.  A worker killed with ``-9``, by the OOM killer or a power cut
finds its unacknowledged records here at the next start and sends them again,
unchanged: same topic, key and bytes, so the same deterministic event ids, and
consumers drop the repeats.

Durability (``fsync``, per camera or for the whole bus):

* ``always``: ``synchronous=FULL``; every append is fsynced before ``append``
  returns.  Survives a kill and a power cut.
* ``interval``: ``synchronous=NORMAL`` and the WAL file fsynced at most every
  ``fsync_ms`` (on an append or on the sender's tick).  Survives a kill; a power
  cut can lose the last ``fsync_ms`` of records.
* ``off``: ``synchronous=NORMAL``, never fsynced by us (the OS writes back when
  it likes).  Survives a kill (the bytes are in the page cache), not a power cut.

Every policy survives ``kill -9``: a committed SQLite transaction is in the
WAL file as soon as ``append`` returns.  ``bench/bench_outbox.py`` measures the
cost of each.

Bounds.  ``max_bytes`` caps the file (SQLite ``max_page_count``); when it (or the
disk) is full, :meth:`append` raises :class:`OutboxFull` and the bus drops the
oldest waiting records, counted and logged, to make room.  The record count and
age bounds are applied by the bus (``outbox_size``, ``outbox_max_age_s``).

On a full disk even a delete needs room (for the WAL), so ``RESERVE_BYTES`` are
set aside in ``PATH.reserve`` at open and released to make room when needed.

One process owns an outbox file at a time (an exclusive ``flock`` on
``PATH.lock``): a second process opening it gets :class:`OutboxLocked`.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal, Optional, Union

if TYPE_CHECKING:
    from streamer.config import BusConfig

FsyncPolicy = Literal["always", "interval", "off"]
FSYNC_POLICIES: tuple[str, ...] = ("always", "interval", "off")
#: disk space set aside next to the file, released when the disk is full so that the oldest
#: records can still be deleted (a delete in WAL mode needs room in the WAL)
RESERVE_BYTES = 256 * 1024

_SCHEMA = """CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    created REAL NOT NULL)"""


class OutboxError(RuntimeError):
    """The outbox file cannot be used."""


class OutboxLocked(OutboxError):
    """Another process holds this outbox."""


class OutboxFull(OutboxError):
    """The outbox file reached ``max_bytes`` or the disk is full."""


@dataclass(frozen=True)
class Pending:
    """One stored record not yet acknowledged."""

    seq: int
    topic: str
    key: Optional[bytes]
    value: bytes
    created: float


class DurableOutbox:
    """An append/remove log of records in SQLite (WAL), safe to call from several threads."""

    def __init__(self, path: Union[str, Path], *, fsync: FsyncPolicy = "interval", fsync_ms: int = 100,
                 max_bytes: Optional[int] = None) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"outbox fsync policy must be one of {FSYNC_POLICIES}, not {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.fsync_ms = fsync_ms
        self.max_bytes = max_bytes
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutboxError(f"cannot create the outbox at {self.path}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise OutboxLocked(f"outbox {self.path} is in use by another process (one worker per camera)") from None
        self._lock = threading.Lock()
        self._last_sync = time.monotonic()
        self._dirty = False
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync == 'always' else 'NORMAL'}")
            self._db.execute(_SCHEMA)
            # a small WAL (checkpointed every 64 pages, truncated back to 256 KiB): a full disk
            # then holds mostly records, and a checkpoint gives room back quickly
            self._db.execute("PRAGMA wal_autocheckpoint=64")
            self._db.execute(f"PRAGMA journal_size_limit={RESERVE_BYTES}")
            if max_bytes:
                page = self._db.execute("PRAGMA page_size").fetchone()[0]
                self._db.execute(f"PRAGMA max_page_count={max(8, int(max_bytes) // page)}")
        except sqlite3.Error as exc:
            self._release()
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
        self._reserve = Path(str(self.path) + ".reserve")
        self.restore_reserve()

    # -- room on a full disk ----------------------------------------------------------------
    def release_reserve(self) -> bool:
        """Delete the reserve file (``RESERVE_BYTES`` kept aside at open) so deletes and a checkpoint
        can run on a full disk; True when there was one."""
        try:
            self._reserve.unlink()
            return True
        except FileNotFoundError:
            return False

    def restore_reserve(self) -> bool:
        """Set the reserve aside again (fails quietly while the disk is full)."""
        if self._reserve.exists():
            return True
        try:
            with open(self._reserve, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
            return True
        except OSError:
            try:
                self._reserve.unlink()
            except OSError:
                pass
            return False

    # -- writing ------------------------------------------------------------------------
    def append(self, topic: str, key: Optional[bytes], value: bytes, created: Optional[float] = None) -> int:
        """Store one record durably (per the fsync policy); returns its sequence number.

        Raises :class:`OutboxFull` when the file or the disk is full.
        """
        created = time.time() if created is None else created
        with self._lock:
            try:
                cur = self._db.execute("INSERT INTO records(topic, key, value, created) VALUES (?, ?, ?, ?)",
                                       (topic, key, value, created))
            except sqlite3.OperationalError as exc:
                if _is_full(exc):
                    raise OutboxFull(f"outbox {self.path} is full: {exc}") from exc
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            self._dirty = True
            if self.fsync == "interval":
                self._maybe_sync_locked()
            return int(cur.lastrowid)

    def remove(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged (or dropped) records; returns how many were removed."""
        rows = [(s,) for s in seqs]
        if not rows:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM records WHERE seq = ?", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it (frees disk); False when it could not."""
        with self._lock:
            try:
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                return busy == 0
            except sqlite3.Error:
                return False

    def oldest(self, n: int) -> list[int]:
        """Sequence numbers of the ``n`` oldest stored records."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT seq FROM records ORDER BY seq LIMIT ?", (n,))]

    def maybe_sync(self) -> None:
        """For the ``interval`` policy: fsync the WAL when ``fsync_ms`` passed since the last one."""
        if self.fsync == "interval":
            with self._lock:
                self._maybe_sync_locked()

    def _maybe_sync_locked(self) -> None:
        if self._dirty and (time.monotonic() - self._last_sync) * 1000 >= self.fsync_ms:
            self._sync_locked()

    def _sync_locked(self) -> None:
        wal = str(self.path) + "-wal"
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            fd = os.open(str(self.path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._dirty = False
        self._last_sync = time.monotonic()

    # -- reading ------------------------------------------------------------------------
    def pending(self) -> list[Pending]:
        """Every stored record, oldest first."""
        with self._lock:
            return [Pending(*r) for r in
                    self._db.execute("SELECT seq, topic, key, value, created FROM records ORDER BY seq")]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint, close the database and release the lock (idempotent)."""
        if self._db is None:
            return
        with self._lock:
            try:
                if self.fsync != "off" and self._dirty:
                    self._sync_locked()
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except (sqlite3.Error, OSError):
                pass  # a full disk: the WAL stays and is replayed at the next open
            self._db.close()
            self._db = None
        self._release()

    def _release(self) -> None:
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> "DurableOutbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL if code is not None else "full" in str(exc).lower()


def outbox_path(directory: Union[str, Path], namespace: str, name: str) -> Path:
    """The file of one process's outbox: ``DIR/<namespace or _>/<name>.sqlite``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
    return Path(directory) / (namespace.rstrip(".") or "_") / f"{safe}.sqlite"


def open_durable(bus: "BusConfig", config_path: Union[str, Path, None], name: str,
                 fsync: Optional[str] = None) -> Optional[DurableOutbox]:
    """The durable outbox a process named ``name`` should use per ``bus.outbox_*``; None = in memory.

    A relative ``bus.outbox_dir`` is resolved against the configuration file's
    folder (like camera sources); ``fsync`` overrides ``bus.outbox_fsync`` (the
    camera's own policy).
    """
    if not bus.outbox_dir:
        return None
    directory = Path(bus.outbox_dir).expanduser()
    if not directory.is_absolute() and config_path is not None:
        directory = Path(config_path).resolve().parent / directory
    return DurableOutbox(outbox_path(directory, bus.namespace, name), fsync=fsync or bus.outbox_fsync,  # type: ignore[arg-type]
                         fsync_ms=bus.outbox_fsync_ms, max_bytes=bus.outbox_max_bytes)
