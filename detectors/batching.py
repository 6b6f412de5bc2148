"""A detection server that batches frames from several cameras into one forward pass.

In the manner of DeepStream's ``nvstreammux``: camera workers submit frames; the
server thread collects up to ``max_batch`` of them, waiting at most
``max_wait_ms`` after the first (DeepStream's ``batched-push-timeout``) so a slow
camera never holds the others back, runs ``detector.detect_batch`` once, and hands
each camera its own detections through a future. Adding cameras adds batch rows,
not processes competing for the GPU. On a CPU it works the same way (batching
just buys less there).

Tracking stays per camera (ultralytics #7209): the server returns raw detections
and each worker's :class:`detectors.tracking.CameraTracker` links them.

In-process use with threads::

    server = DetectionServer(YOLODetector("model.pt")).start()
    det = server.client("cam1")          # has .detect(frame), like any detector
    ...
    server.stop()
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from detectors.types import Detection
from detectors.yolo import DetectorError

log = logging.getLogger(__name__)


@dataclass
class _Request:
    camera_id: str
    frame: np.ndarray
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    batches: int = 0
    frames: int = 0
    max_batch_seen: int = 0
    busy_s: float = 0.0
    by_camera: dict[str, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        return self.frames / self.batches if self.batches else 0.0


class DetectionServer:
    """Batches ``detect`` requests of many cameras into ``detector.detect_batch`` calls on one thread."""

    def __init__(self, detector: Any, max_batch: int = 16, max_wait_ms: float = 10.0,
                 queue_size: int = 256) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.detector = detector
        self.max_batch = int(max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._q: queue.Queue[Optional[_Request]] = queue.Queue(maxsize=queue_size)
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self.stats = BatchStats()
        self.name = f"batched-{getattr(detector, 'name', type(detector).__name__)}"
        self.version = str(getattr(detector, "version", "unknown"))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "DetectionServer":
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="detection-server", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._q.put(None)
        self._thread.join(timeout)
        self._thread = None
        while True:  # fail whatever is still queued rather than leave callers waiting
            try:
                req = self._q.get_nowait()
            except queue.Empty:
                break
            if req is not None and not req.future.done():
                req.future.set_exception(DetectorError("detection server stopped"))

    def __enter__(self) -> "DetectionServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    def submit(self, camera_id: str, frame: np.ndarray) -> Future:
        """Queue one frame; the future resolves to that frame's detections."""
        if self._thread is None:
            raise DetectorError("detection server is not running (call start())")
        req = _Request(camera_id, frame)
        self._q.put(req)
        return req.future

    def detect(self, camera_id: str, frame: np.ndarray, timeout: Optional[float] = 30.0) -> list[Detection]:
        return self.submit(camera_id, frame).result(timeout)

    def client(self, camera_id: str) -> "BatchedClient":
        return BatchedClient(self, camera_id)

    # ------------------------------------------------------------------ server loop
    def _collect(self) -> list[_Request]:
        first = self._q.get()
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                req = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if req is None:
                self._stopping.set()
                break
            batch.append(req)
        return batch

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self._collect()
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                frames = [r.frame for r in batch]
                if hasattr(self.detector, "detect_batch"):
                    results = self.detector.detect_batch(frames)
                else:  # a detector without batching (the OpenCV default) still serves every camera
                    results = [self.detector.detect(f) for f in frames]
            except Exception as exc:  # one bad batch must not kill the server
                log.warning("detection batch of %d failed: %s", len(batch), exc)
                for r in batch:
                    r.future.set_exception(exc)
                continue
            self.stats.busy_s += time.perf_counter() - t0
            self.stats.batches += 1
            self.stats.frames += len(batch)
            self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(batch))
            for r, dets in zip(batch, results):
                self.stats.by_camera[r.camera_id] = self.stats.by_camera.get(r.camera_id, 0) + 1
                r.future.set_result(dets)


class BatchedClient:
    """A per-camera handle with the detector interface (``detect``, ``version``) backed by the server."""

    def __init__(self, server: DetectionServer, camera_id: str) -> None:
        self.server = server
        self.camera_id = camera_id
        self.name = server.name
        self.version = server.version
        self.names = getattr(server.detector, "names", None)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.server.detect(self.camera_id, frame)
