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

A full disk is handled as a cap (``disk_full``).  On a full disk even a delete
needs room (for the WAL), so ``RESERVE_BYTES`` are set aside in ``PATH.reserve``
at open.  The first append the disk refuses (or an open that cannot set the
reserve aside) releases the reserve, checkpoints the WAL more often (every 8
pages), and caps the file (``max_page_count``) at what leaves that WAL's room
(about 64 KiB) free; one ERROR is logged.  From then on deletes work, and the
bus drops the oldest records to make room exactly as under ``max_bytes``, so
every record it holds is in the file.  :meth:`maybe_thaw` (the bus's sender
calls it) sets the reserve aside again and lifts the cap once the disk has room
for the reserve and twice the normal WAL's (about 850 KiB) free.  Only a disk
with under about 64 KiB free at open leaves the bus nothing to store into
(records kept in memory only, counted, ERROR logged, stored when space returns).

One process owns an outbox file at a time (an exclusive ``flock`` on
``PATH.lock``): a second process opening it gets :class:`OutboxLocked`.
"""
from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal, Optional, Union

if TYPE_CHECKING:
    from streamer.config import BusConfig

log = logging.getLogger(__name__)

FsyncPolicy = Literal["always", "interval", "off"]
FSYNC_POLICIES: tuple[str, ...] = ("always", "interval", "off")
#: disk space set aside next to the file, released when the disk is full so that the oldest
#: records can still be deleted (a delete in WAL mode needs room in the WAL)
RESERVE_BYTES = 256 * 1024
_AUTOCHECKPOINT_PAGES = 64
_AUTOCHECKPOINT_PAGES_FULL = 8  # while the disk is full: a WAL of about 64 KiB at most
_DELETE_STEP = 256  # rows per delete transaction (about the WAL's checkpoint size in 1 kB records)
_DELETE_STEP_FULL = 16  # rows per delete transaction while the disk is full (a few pages of WAL)
#: a full disk is logged at ERROR once, then at most this often while it lasts (with counts)
FULL_LOG_EVERY_S = 60.0
#: seconds between checks for free space while the disk is full
THAW_CHECK_S = 1.0

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
            self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={RESERVE_BYTES}")
            if max_bytes:
                page = self._db.execute("PRAGMA page_size").fetchone()[0]
                self._db.execute(f"PRAGMA max_page_count={max(8, int(max_bytes) // page)}")
        except sqlite3.Error as exc:
            self._release()
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
        self._cap_pages = int(self._db.execute("PRAGMA max_page_count").fetchone()[0])  # restored on a thaw
        page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        # the most a WAL takes between checkpoints (every N pages, each frame a page and a header),
        # normally and while the disk is full (checkpointed more often, so that little room is enough)
        self._wal_room = (_AUTOCHECKPOINT_PAGES + 8) * (page + 24)
        self._wal_room_full = (_AUTOCHECKPOINT_PAGES_FULL + 8) * (page + 24)
        #: free bytes that end a full disk: the reserve back, the WAL's room, and as much again to grow
        self._thaw_bytes = RESERVE_BYTES + 2 * self._wal_room
        #: True while the disk is full: the file is capped (see the module doc)
        self.disk_full = False
        self.disk_full_episodes = 0
        self._last_full_log = float("-inf")
        self._last_thaw_check = 0.0
        self._reserve = Path(str(self.path) + ".reserve")
        if not self.restore_reserve():  # the disk is nearly full already: start capped
            with self._lock:
                self._freeze_locked(f"not even {RESERVE_BYTES // 1024} KiB free at open")

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
                    if not self.disk_full and self._page_count_locked() < self._max_pages_locked():
                        self._freeze_locked(exc)  # below our own cap: the disk itself is full
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
            # bounded transactions keep the WAL near its checkpoint size (a big delete would need as
            # much WAL as the rows take); on a full disk small ones, the WAL truncated after each
            step = _DELETE_STEP_FULL if self.disk_full else _DELETE_STEP
            for i in range(0, len(rows), step):
                self._delete_locked(rows[i:i + step])
        return len(rows)

    def _delete_locked(self, rows: list[tuple[int]]) -> None:
        for attempt in (0, 1):
            try:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM records WHERE seq = ?", rows)
                self._db.execute("COMMIT")
                break
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if attempt or not _is_full(exc):
                    raise
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL's room back, then once more
        if self.disk_full:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next step's WAL room
            except sqlite3.Error:
                pass  # the next step retries after its own checkpoint

    # -- a full disk as a cap ---------------------------------------------------------------
    def _page_count_locked(self) -> int:
        return int(self._db.execute("PRAGMA page_count").fetchone()[0])

    def _max_pages_locked(self) -> int:
        return int(self._db.execute("PRAGMA max_page_count").fetchone()[0])

    def _free_bytes(self) -> int:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def _freeze_locked(self, exc: object) -> None:
        """The disk refused an append: release the reserve (room for the WAL, so deletes work), move the
        WAL into the file, and cap the file so that what stays free is the WAL's room: from then on,
        drops make room for new records instead of growth."""
        self.release_reserve()
        try:
            self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES_FULL}")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL, not the records, took the disk
        except sqlite3.Error:
            pass
        page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        pages = self._page_count_locked()
        try:
            room = max(0, (self._free_bytes() - self._wal_room_full) // page)
        except OSError:
            room = 0
        cap = min(pages + room, self._cap_pages)
        self._db.execute(f"PRAGMA max_page_count={cap}")
        self.disk_full = True
        self.disk_full_episodes += 1
        now = time.monotonic()
        self._last_thaw_check = now
        if now - self._last_full_log >= FULL_LOG_EVERY_S:
            self._last_full_log = now
            log.error("durable outbox %s: the disk is full (%s); the file is capped at %d KiB and the oldest "
                      "waiting records are dropped to make room (counted in imminence_bus_dropped_total) "
                      "until %d KiB are free again", self.path, exc, cap * page // 1024,
                      self._thaw_bytes // 1024)

    def maybe_thaw(self) -> bool:
        """While the disk is full: once ``_thaw_bytes`` are free again, set the reserve aside and
        lift the cap (checked at most every ``THAW_CHECK_S``).  True when the outbox thawed now."""
        now = time.monotonic()
        if not self.disk_full or now - self._last_thaw_check < THAW_CHECK_S:
            return False
        self._last_thaw_check = now
        try:
            free = self._free_bytes()
        except OSError:
            return False
        if free < self._thaw_bytes or not self.restore_reserve():
            return False
        with self._lock:
            self._db.execute(f"PRAGMA max_page_count={self._cap_pages}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
            self.disk_full = False
        log.warning("durable outbox %s: disk space is back; the file may grow again", self.path)
        return True

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
