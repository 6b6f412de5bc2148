"""Video sources of a camera worker: recorded files (every frame) and live streams (newest frame only).

Every frame is stamped once, right after decode, with the wall-clock time (UTC),
its stream time and its frame index (:class:`Frame`), and the camera's privacy
masks are blacked out at that same moment, before anything else sees the frame.

* :class:`FileSource` reads a file frame by frame at its own timestamps (stream
  time = frame index / the file's frame rate, falling back to
  ``CAP_PROP_POS_MSEC`` when the rate is unknown).  Nothing is dropped; with
  ``speed`` it is paced like a camera (1 = real time, 4 = four times faster),
  with ``speed=None`` it runs as fast as it decodes (replay ``--speed max``).
  A missing or undecodable file raises :class:`SourceError` naming the file.
* :class:`ImageSource` is a still image as a one-frame stream (console uploads).
* :class:`LiveSource` reads RTSP/HTTP URLs and devices with OpenCV's open and
  read timeouts.  A reader thread decodes continuously and keeps only the newest
  frame, counting the ones nobody took, so latency never grows when analysis is
  slower than the camera.  A read failure, or no frame for ``watchdog_s`` (a
  stream that goes silent without closing can block ``read()``: OpenCV #22677),
  makes it reconnect with capped exponential backoff inside the process; a
  reader stuck in ``read()`` is abandoned and replaced.  Its ``state`` goes
  ``starting`` -> ``online`` -> ``reconnecting`` -> ``online`` ...

Stream time of a live source is the time since its first frame, on the
monotonic clock, so it keeps increasing across reconnects.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from streamer.redact import mask_url

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source that cannot be opened or read (message names the file or URL)."""


@dataclass
class Frame:
    """One decoded frame with the stamps it got at decode."""

    image: np.ndarray
    index: int  # frame index in the stream (0-based, counts every decoded frame)
    t: float  # stream time, seconds
    wall: datetime  # wall-clock time at decode, UTC
    mono: float  # time.monotonic() at decode (latency, pacing)


def is_live_url(source: str) -> bool:
    """Network streams and device indices are live; anything else is a file path."""
    return source.strip().isdigit() or "://" in source


def build_masks(masks: Sequence[Sequence[Sequence[float]]]) -> list[np.ndarray]:
    """Privacy-mask polygons (pixel coordinates) as int32 arrays for ``cv2.fillPoly``."""
    out = []
    for i, poly in enumerate(masks):
        pts = np.asarray(poly, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            raise ValueError(f"mask {i}: a polygon needs at least 3 [x, y] points")
        out.append(np.round(pts).astype(np.int32))
    return out


def apply_masks(image: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """Black out the mask polygons in place (privacy: before analysis, storage or display)."""
    if masks:
        cv2.fillPoly(image, masks, (0, 0, 0))
    return image


class Source(ABC):
    """Common counters and the interface the worker uses."""

    live = False

    def __init__(self, name: str, masks: Sequence[Sequence[Sequence[float]]] = ()) -> None:
        self.name = name
        self.masks = build_masks(masks)
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.state = "starting"
        self.message: Optional[str] = None
        self.finished = False  # no more frames will come (end of file, or closed)

    def open(self) -> None:
        """Open the source; raises :class:`SourceError` when it cannot be used at all."""

    @abstractmethod
    def read(self, timeout: float = 1.0) -> Optional[Frame]:
        """The next frame to analyse, or None when none came within ``timeout`` (or at the end)."""

    def close(self) -> None:
        self.finished = True

    @property
    def native_fps(self) -> Optional[float]:
        return None


def recording_start(path: str | Path) -> datetime:
    """When a video file's recording is taken to start: its modification time, whole seconds, UTC.

    Replays and file-source workers time clips from it, so re-reading the same file
    gives the same clip times and event ids.
    """
    p = Path(path)
    try:
        return datetime.fromtimestamp(int(p.stat().st_mtime), timezone.utc)
    except OSError:
        raise SourceError(f"{p}: video file not found") from None


class FileSource(Source):
    """A video file read frame by frame, every frame, at its own timestamps."""

    def __init__(self, path: str | Path, *, masks: Sequence[Sequence[Sequence[float]]] = (),
                 speed: Optional[float] = None, gate: Optional[Callable[[float], None]] = None) -> None:
        super().__init__(str(path), masks)
        self.path = Path(path)
        self.speed = speed
        self.gate = gate  # called with each frame's stream time before it is stamped (replay's shared clock)
        self._cap: Optional[cv2.VideoCapture] = None
        self._fps: Optional[float] = None
        self._index = 0
        self._t0: Optional[float] = None
        self._pending: Optional[np.ndarray] = None

    @property
    def native_fps(self) -> Optional[float]:
        return self._fps

    def open(self) -> None:
        if self._cap is not None or self.finished:
            return
        if not self.path.exists():
            raise SourceError(f"{self.path}: video file not found")
        if not self.path.is_file():
            raise SourceError(f"{self.path}: not a file")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"{self.path}: cannot open video (not a video OpenCV can decode, or corrupt)")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"{self.path}: no frame could be decoded (corrupt or empty video)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if fps and math.isfinite(fps) and 0 < fps <= 1000 else None
        self._cap = cap
        self._pending = first
        self.state = "online"

    def read(self, timeout: float = 1.0) -> Optional[Frame]:
        if self._cap is None:
            self.open()
        if self.finished:
            return None
        if self._pending is not None:
            img, self._pending = self._pending, None
        else:
            ok, img = self._cap.read()
            if not ok or img is None:
                self._finish()
                return None
        pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        t = self._index / self._fps if self._fps else max(0.0, pos_ms / 1000.0)
        if self.speed:  # paced like a camera: frame t is due at start + t / speed
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now - t / self.speed
            delay = self._t0 + t / self.speed - now
            if delay > 0:
                time.sleep(delay)
        if self.gate is not None:
            self.gate(t)
        frame = Frame(apply_masks(img, self.masks), self._index, t, datetime.now(timezone.utc), time.monotonic())
        self._index += 1
        self.frames_read += 1
        return frame

    def _finish(self) -> None:
        self.finished = True
        self.state = "stopped"
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def close(self) -> None:
        self._finish()


class ImageSource(Source):
    """A still image as a stream of one frame at stream time 0 (console uploads), masked like any frame."""

    def __init__(self, path: str | Path, *, masks: Sequence[Sequence[Sequence[float]]] = ()) -> None:
        super().__init__(str(path), masks)
        self.path = Path(path)
        self._image: Optional[np.ndarray] = None

    def open(self) -> None:
        if self._image is not None or self.finished:
            return
        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{self.path}: not an image OpenCV can decode")
        self._image = image
        self.state = "online"

    def read(self, timeout: float = 1.0) -> Optional[Frame]:
        self.open()
        if self._image is None:
            return None
        image, self._image = self._image, None
        self.finished = True  # the one frame is out: the worker closes its clip next
        self.state = "stopped"
        self.frames_read += 1
        return Frame(apply_masks(image, self.masks), 0, 0.0, datetime.now(timezone.utc), time.monotonic())


class LiveSource(Source):
    """A live stream: reader thread keeping the newest frame, timeouts, watchdog, reconnect with backoff."""

    live = True

    def __init__(self, url: str, *, masks: Sequence[Sequence[Sequence[float]]] = (),
                 open_timeout_s: float = 10.0, read_timeout_s: float = 5.0, watchdog_s: float = 20.0,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0) -> None:
        super().__init__(mask_url(url), masks)
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.watchdog_s = watchdog_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._cond = threading.Condition()
        self._latest: Optional[Frame] = None
        self._stop = threading.Event()
        self._generation = 0
        self._thread: Optional[threading.Thread] = None
        self._watchdog: Optional[threading.Thread] = None
        self._last_frame_mono = time.monotonic()
        self._mono0: Optional[float] = None
        self._index = 0
        self._fps: Optional[float] = None
        self.last_error: Optional[str] = None

    @property
    def native_fps(self) -> Optional[float]:
        return self._fps

    def open(self) -> None:
        """Start the reader (it connects, and keeps reconnecting, in the background)."""
        if self._thread is not None:
            return
        self._start_reader()
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog:{self.name}", daemon=True)
        self._watchdog.start()

    def _start_reader(self) -> None:
        with self._cond:
            self._generation += 1
            gen = self._generation
        self._thread = threading.Thread(target=self._run, args=(gen,), name=f"reader:{self.name}", daemon=True)
        self._thread.start()

    def _capture(self) -> cv2.VideoCapture:
        src: int | str = int(self.url) if self.url.strip().isdigit() else self.url
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        if isinstance(src, int):
            return cv2.VideoCapture(src, cv2.CAP_ANY, params)
        return cv2.VideoCapture(src, cv2.CAP_FFMPEG, params)

    def _set_state(self, state: str, message: Optional[str] = None) -> None:
        if state != self.state:
            log.info("source %s: %s%s", self.name, state, f" ({message})" if message else "")
        self.state = state
        self.message = message

    def _current(self, gen: int) -> bool:
        return gen == self._generation and not self._stop.is_set()

    def _run(self, gen: int) -> None:
        backoff = self.reconnect_min_s
        first = True
        while self._current(gen):
            if not first:
                self.reconnects += 1
            first = False
            cap = self._capture()
            if not cap.isOpened():
                cap.release()
                self.last_error = f"{self.name}: cannot open stream (unreachable, refused or timed out)"
                self._set_state("reconnecting", f"{self.last_error}; retrying with backoff")
                log.warning("%s; retrying in %.1fs", self.last_error, backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            fps = cap.get(cv2.CAP_PROP_FPS)
            if fps and math.isfinite(fps) and 0 < fps <= 1000:
                self._fps = float(fps)
            self._last_frame_mono = time.monotonic()
            while self._current(gen):
                ok, img = cap.read()
                if not self._current(gen):
                    break  # the watchdog replaced this reader while it was blocked
                if not ok or img is None:
                    self.last_error = f"{self.name}: read failed or timed out"
                    break
                now = time.monotonic()
                if self._mono0 is None:
                    self._mono0 = now
                frame = Frame(apply_masks(img, self.masks), self._index, now - self._mono0,
                              datetime.now(timezone.utc), now)
                self._index += 1
                self._last_frame_mono = now
                with self._cond:
                    if self._latest is not None:
                        self.frames_dropped += 1  # nobody took the previous one: newest wins
                    self._latest = frame
                    self.frames_read += 1
                    self._cond.notify_all()
                if self.state != "online":
                    backoff = self.reconnect_min_s
                    self._set_state("online")
            cap.release()
            if self._current(gen):
                self._set_state("reconnecting", self.last_error)
                log.warning("%s; reconnecting in %.1fs", self.last_error, backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.reconnect_max_s)

    def _watch(self) -> None:
        """Replace a reader that got no frame for ``watchdog_s`` while it thought it was online."""
        while not self._stop.wait(min(1.0, self.watchdog_s / 4)):
            if self.state == "online" and time.monotonic() - self._last_frame_mono > self.watchdog_s:
                self.last_error = f"{self.name}: no frame for {self.watchdog_s:.0f}s (stalled stream)"
                log.warning("%s; restarting the reader", self.last_error)
                self._set_state("reconnecting", self.last_error)
                self.reconnects += 1
                self._last_frame_mono = time.monotonic()
                self._start_reader()  # the stuck reader sees a stale generation and exits when read() returns

    def read(self, timeout: float = 1.0) -> Optional[Frame]:
        """The newest frame not yet taken, waiting at most ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._latest = self._latest, None
            return frame

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self.finished = True
        self.state = "stopped"
        if self._thread is not None:
            self._thread.join(timeout=2.0)  # a reader blocked in read() is a daemon; it exits on return


def open_source(source: str, *, masks: Sequence[Sequence[Sequence[float]]] = (), live: Optional[bool] = None,
                speed: Optional[float] = 1.0, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                watchdog_s: float = 20.0, reconnect_max_s: float = 30.0) -> Source:
    """A :class:`LiveSource` for URLs/devices (or ``live=True``), else a :class:`FileSource` paced at ``speed``."""
    if live if live is not None else is_live_url(source):
        return LiveSource(source, masks=masks, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                          watchdog_s=watchdog_s, reconnect_max_s=reconnect_max_s)
    return FileSource(source, masks=masks, speed=speed)

