"""`imminence replay`: play a recorded dataset (or one video) through the camera workers onto Kafka.

    imminence replay data/scene --speed max
    imminence replay clip.mp4 --camera-id plaza --position=-79.38,43.65 --speed 1 --bootstrap 127.0.0.1:9092

A dataset folder holds ``manifest.json`` (see :mod:`streamer.dataset`); a single
video needs ``--camera-id`` and ``--position=LON,LAT`` (write it with ``=``: a negative longitude looks like an option; its start is
``--start``, default the file's modification time).  Every frame is decoded,
frames are sampled to the analysis rate (``--fps``, or the manifest entry's),
and event times are the recording's start plus stream time.  The same dataset
gives the same events, ids included (``--run-id`` makes a run's ids its own).

With no ``--bootstrap`` and no ``bus.bootstrap`` in ``--config``, an embedded
broker is started for the run (its address is printed; it stops when the replay
ends).  Exits 0 when every camera replayed and the bus dropped nothing, 1 when a
camera failed or events were dropped, 2 for a bad dataset, manifest or config.
"""
from __future__ import annotations

import argparse
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Optional

from imminence.config import ImminenceConfig, load_config
from imminence.errors import USAGE, CommandError
from streamer.config import Position
from streamer.dataset import DatasetError
from streamer.replay import dataset_videos, replay_videos, single_video
from streamer.sources import SourceError


def _speed(text: str) -> Optional[float]:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0, got {text!r}")
    return value


def _position(text: str) -> Position:
    try:
        lon, lat = (float(v) for v in text.split(","))
        return Position(lon=lon, lat=lat)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"expected LON,LAT (e.g. -79.38,43.65), got {text!r}: {exc}") from None


def _start(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (Z or +00:00): {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("replay", help="replay a dataset folder or a video file through the workers",
                              description=__doc__.splitlines()[0])
    p.add_argument("path", help="dataset folder (with manifest.json) or a video file")
    p.add_argument("--speed", type=_speed, default=None, metavar="1|4|max",
                   help="playback speed: 1 = real time, 4 = four times faster, max = as fast as possible (default)")
    p.add_argument("--bootstrap", default=None, metavar="HOST:PORT", help="Kafka bootstrap (default: embedded broker)")
    p.add_argument("--config", default=None, help="configuration (bus, grid, detectors sections)")
    p.add_argument("--camera-id", default=None, help="camera id of a single video")
    p.add_argument("--position", type=_position, default=None, metavar="LON,LAT", help="position of a single video; write --position=-79.38,43.65 (with '=': a negative value looks like an option)")
    p.add_argument("--start", type=_start, default=None, metavar="ISO",
                   help="recording start of a single video (default: its modification time)")
    p.add_argument("--fps", type=float, default=5.0, help="analysis rate, frames/s (default 5)")
    p.add_argument("--clip-seconds", type=float, default=2.0, help="clip length, seconds (default 2)")
    p.add_argument("--run-id", default="", help="salt for event ids (default: none, ids repeat across runs)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cfg, grid = (load_config(args.config) if args.config else (ImminenceConfig(), None))
    if args.fps <= 0 or args.clip_seconds <= 0:
        raise CommandError("--fps and --clip-seconds must be > 0", code=USAGE)
    path = Path(args.path)
    try:
        if path.is_dir():
            videos, grid_cfg = dataset_videos(path, fps=args.fps, clip_seconds=args.clip_seconds)
            if grid is None and grid_cfg is not None:
                from geo.grid import Grid  # noqa: PLC0415

                grid = Grid.from_config(grid_cfg, base_dir=path)
        else:
            if not path.exists():
                raise CommandError(f"{path}: no such dataset folder or video file", code=USAGE)
            if not args.camera_id or args.position is None:
                raise CommandError(f"{path} is a single video: give --camera-id ID and --position LON,LAT",
                                   code=USAGE)
            videos = [single_video(path, args.camera_id, args.position, start=args.start, fps=args.fps,
                                   clip_seconds=args.clip_seconds)]
    except (DatasetError, SourceError, ValueError) as exc:
        raise CommandError(str(exc), code=USAGE) from exc

    from streamer.kafka_bus import KafkaBus  # noqa: PLC0415

    broker = None
    bootstrap = args.bootstrap or cfg.bus.bootstrap
    if not bootstrap:
        from streamer.broker import EmbeddedBroker  # noqa: PLC0415

        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap
        print(f"embedded broker: {bootstrap} (stops when the replay ends; pass --bootstrap to keep the events)",
              flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from streamer.outbox import OutboxError, open_durable  # noqa: PLC0415

    try:
        durable = open_durable(cfg.bus, args.config, "replay") if args.config else None
    except OutboxError as exc:
        raise CommandError(str(exc), code=USAGE) from exc
    bus = KafkaBus(cfg.bus.model_copy(update={"bootstrap": bootstrap}), durable=durable)
    try:
        summary = replay_videos(videos, bus, cfg, grid, args.speed, run_id=args.run_id, stop_event=stop)
    finally:
        bus.close(timeout=30)
        if broker is not None:
            broker.stop()
    print(summary.table())
    stats = bus.stats()
    print(f"bus: {stats.sent} records acknowledged, {stats.dropped} dropped, {stats.failed} failed")
    if summary.failed or stats.dropped or stats.failed:
        return 1
    return 0
