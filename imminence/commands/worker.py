"""`imminence worker`: run one camera worker in the foreground.

    imminence worker --camera lobby --config configs/cameras.yaml [--bootstrap 127.0.0.1:9092]

Reads the camera's source, analyses it at the camera's rate, and publishes an
IndicatorEvent per clip to ``imminence.indicators`` and state heartbeats to
``imminence.cameras``.  A relative file path in ``source`` is resolved against
the configuration file's folder.  SIGTERM or Ctrl-C stops it cleanly: the open
clip is published, the bus flushed and closed.

Exit codes: 0 when the source ended or the worker was stopped; 1 when the source
cannot be opened (missing or corrupt file, named in the message); 2 for a
configuration error (file:line: key: problem) or when no broker is configured.
A live source that cannot be reached is not fatal: the worker logs it, stays in
state ``reconnecting`` and retries with backoff.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import signal
import threading
from pathlib import Path
from typing import Any, Optional

from imminence.config import ImminenceConfig, load_config
from imminence.configfile import ConfigError
from imminence.errors import CommandError, report
from imminence.logs import add_log_context, setup_logging
from streamer.config import CameraConfig
from streamer.sources import FileSource, SourceError, is_live_url, open_source, recording_start
from streamer.worker import CameraWorker

log = logging.getLogger("imminence.worker")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("worker", help="run one camera worker (source -> detectors -> events)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--camera", required=True, metavar="ID", help="camera id from the config's cameras list")
    p.add_argument("--config", required=True, help="YAML configuration with grid, cameras and bus sections")
    p.add_argument("--bootstrap", default=None, metavar="HOST:PORT", help="Kafka bootstrap (overrides bus.bootstrap)")
    p.set_defaults(func=main)


def find_camera(cfg: ImminenceConfig, camera_id: str, config_path: str | Path) -> CameraConfig:
    """The camera with this id, its relative file source resolved against the config's folder."""
    ids = [c.id for c in cfg.cameras]
    for cam in cfg.cameras:
        if cam.id == camera_id:
            if not is_live_url(cam.source) and not Path(cam.source).is_absolute():
                cam = cam.model_copy(update={"source": str(Path(config_path).parent / cam.source)})
            return cam
    close = difflib.get_close_matches(camera_id, ids, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"{config_path}: cameras: no camera with id '{camera_id}'{hint}; known: {ids}")


def make_bus(cfg: ImminenceConfig, bootstrap: Optional[str], config_path: str | Path,
             camera: Optional[CameraConfig] = None) -> Any:
    """The worker's Kafka bus, with the camera's durable outbox unless ``bus.outbox_dir`` is null."""
    from streamer.kafka_bus import KafkaBus  # noqa: PLC0415 - kafka-python only for commands that need it
    from streamer.outbox import OutboxError, open_durable  # noqa: PLC0415

    address = bootstrap or cfg.bus.bootstrap
    if not address:
        raise ConfigError(f"{config_path}: bus -> bootstrap: no broker configured; set bus.bootstrap "
                          "or pass --bootstrap HOST:PORT")
    durable = None
    if camera is not None:
        try:
            durable = open_durable(cfg.bus, config_path, f"camera-{camera.id}", camera.outbox_fsync)
        except OutboxError as exc:
            raise ConfigError(f"{config_path}: bus -> outbox_dir: {exc}") from exc
    return KafkaBus(cfg.bus.model_copy(update={"bootstrap": address}), durable=durable)


def run_camera(stop_event: Any, config_path: str, camera_id: str, bootstrap: Optional[str] = None,
               log_level: Optional[str] = None, log_format: str = "text") -> int:
    """The entry point of each process ``imminence workers`` supervises: :func:`serve_camera`, its exit code.

    No ``cli.main`` runs in the child, so its errors are reported here, the same way (:mod:`imminence.errors`).
    """
    if log_level:
        setup_logging(log_level, log_format)
    try:
        return serve_camera(stop_event, config_path, camera_id, bootstrap)
    except (CommandError, ConfigError) as exc:
        return report("worker", exc)


def serve_camera(stop_event: Any, config_path: str, camera_id: str, bootstrap: Optional[str] = None) -> int:
    """Run one camera until its source ends or ``stop_event`` is set; returns 0.

    Raises ``ConfigError``, or ``CommandError`` (code 1) when the source cannot be opened.
    """
    add_log_context(camera=camera_id)  # every line of this process names its camera
    try:
        cfg, grid = load_config(config_path)
        cam = find_camera(cfg, camera_id, config_path)
        if not cam.enabled:
            log.warning("camera %s is disabled in %s; running it anyway", cam.id, config_path)
        source = open_source(cam.source, masks=cam.masks, live=cam.live, speed=1.0,
                             open_timeout_s=cam.open_timeout_s, read_timeout_s=cam.read_timeout_s,
                             watchdog_s=cam.watchdog_s, reconnect_max_s=cam.reconnect_max_s)
        source.open()  # a missing or corrupt file fails here, before the broker is contacted
        bus = make_bus(cfg, bootstrap, config_path, cam)
    except ConfigError:
        raise  # a ValueError too, but a configuration error (exit 2), not a camera failure
    except (SourceError, ValueError) as exc:
        raise CommandError(f"camera {camera_id}: {exc}") from exc
    # A file is a recording: its clips are timed from the file's modification time (as replay
    # does), so a worker restarted by the supervisor re-publishes the same clips under the same
    # event ids and consumers drop the repeats.  Its events say so (replay: true), so the map ages
    # them in the recording's time.  Live sources are timed from the wall clock.
    origin = None
    if isinstance(source, FileSource):
        origin = recording_start(source.path)
    worker = CameraWorker(cam, cfg.detectors, bus, grid, source=source, stop_event=stop_event, origin=origin,
                          replay=origin is not None)
    from streamer.observability import set_health  # noqa: PLC0415

    set_health(f"camera:{cam.id}", worker.health)
    set_health("bus", bus.health)
    try:
        summary = worker.run()
    finally:
        bus.close(timeout=15)
    stats = bus.stats()
    log.info("camera %s stopped: %d clips, %d events, %d situation messages, %d frames read, %d analysed, "
             "%d dropped, %d reconnects; bus sent=%d dropped=%d recovered=%d kept=%d", cam.id, summary.clips,
             summary.events, summary.situation_messages, summary.frames_read, summary.frames_analysed, summary.frames_dropped, summary.reconnects, stats.sent,
             stats.dropped, stats.recovered, stats.kept)
    return 0


def main(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return serve_camera(stop, args.config, args.camera, args.bootstrap)
