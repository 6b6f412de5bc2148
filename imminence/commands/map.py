"""`imminence map`: the live map service (imminence.cells -> imminence.maps, GeoJSON and PNG on disk).

    imminence map --config configs/demo.yaml --bootstrap 127.0.0.1:9092 --out out/map \\
        [--forecast runs/forecast/next_day.json] [--duration 60 | --idle-exit 10]

Joins the consumer group ``map.group`` on ``imminence.cells``, keeps the latest
imminence per cell and crime type, merges the KDE surface with the forecast
(see :mod:`mapping.service` for the formula), publishes ``MapSnapshot`` to
``imminence.maps`` at ``map.interval_s`` and on change, and writes
``map.geojson`` and ``map_<type>.png`` to ``--out``.  On exit it prints the
hottest cells.  SIGTERM or Ctrl-C: the last snapshot is published and the
offsets committed.
"""
from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from imminence.config import load_config
from imminence.configfile import ConfigError
from imminence.errors import CommandError
from mapping.forecast.output import ForecastFileError
from mapping.service import MapService

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("map", help="run the live map service (cell imminence + forecast -> maps)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="root configuration YAML (bus, grid, cameras, map, forecast)")
    p.add_argument("--bootstrap", default=None, help="Kafka host:port (overrides bus.bootstrap)")
    p.add_argument("--out", default=None, help="output folder for map.geojson and PNGs (overrides map.out_dir)")
    p.add_argument("--forecast", default=None, help="forecast file from 'forecast predict' (overrides forecast.predictions)")
    p.add_argument("--group", default=None, help="consumer group (overrides map.group)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    p.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="stop after this long without a new cell message (replays, demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, grid = load_config(args.config)
    if grid is None:
        raise ConfigError(f"{args.config}: the map service needs a 'grid' section")
    base = Path(args.config).parent
    mcfg = cfg.map.model_copy(update={"group": args.group}) if args.group else cfg.map
    fpath = args.forecast or cfg.forecast.predictions
    if fpath and not args.forecast and not Path(fpath).is_absolute():
        fpath = str(base / fpath)
    cameras = [{"id": c.id, "lon": c.position.lon, "lat": c.position.lat, "x": c.position.x, "y": c.position.y}
               for c in cfg.cameras]
    from streamer.kafka_bus import KafkaBus  # kafka-python only for commands that need it

    address = args.bootstrap or cfg.bus.bootstrap
    if not address:
        raise ConfigError(f"{args.config}: bus -> bootstrap: no broker configured; set bus.bootstrap "
                          "or pass --bootstrap HOST:PORT")
    bus = KafkaBus(cfg.bus.model_copy(update={"bootstrap": address}))
    try:
        service = MapService(bus, grid, mcfg, forecast=fpath, cameras=cameras, out_dir=args.out or mcfg.out_dir,
                             client_id=f"{cfg.bus.client_id}-map")
    except ForecastFileError as exc:
        bus.close(5.0)
        raise CommandError(str(exc)) from exc

    from streamer.observability import set_health  # noqa: PLC0415

    set_health("map", service.health)

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: publishing the last snapshot and committing", signum)
        service.stop()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stats = service.run(duration_s=args.duration, idle_exit_s=args.idle_exit)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        bus.close(30.0)
    print(f"map: {stats.applied} cell updates applied ({stats.ignored} repeats/stale ignored, "
          f"{stats.too_old} too old to map), "
          f"{stats.snapshots} snapshots, {stats.errors} broker/file errors, files in {service.out_dir}")
    if stats.last_error:
        print(f"last error: {stats.last_error}")
    print("hottest cells (all crime, merged):")
    for cid, v in service.hottest(n=5):
        print(f"  {cid}  {v:.3f}")
    return 0
