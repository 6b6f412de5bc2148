"""`imminence score`: the ANFIS scoring service (imminence.indicators -> imminence.cells).

    imminence score --bootstrap 127.0.0.1:9092 --config configs/demo.yaml [--models DIR]

Joins the consumer group ``scoring.group`` on ``imminence.indicators``,
aggregates events per grid cell and event-time window, scores the four crime
models and publishes ``CellImminence`` to ``imminence.cells``.  SIGTERM or
Ctrl-C: the current batch is finished, published and committed, then it exits.
Models: ``--models``, else ``scoring.models``, else the bundled defaults in
``inference/models``.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from imminence.config import load_config
from imminence.errors import USAGE, CommandError
from inference.crime_models import CrimeModelError, default_models_dir, load_models
from inference.service import ScoringService

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("score", help="run the ANFIS scoring service (indicators -> cell imminence)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="root configuration YAML (bus, grid, scoring sections)")
    p.add_argument("--bootstrap", default=None, help="Kafka host:port (overrides bus.bootstrap)")
    p.add_argument("--models", default=None, help="folder of crime models (overrides scoring.models)")
    p.add_argument("--group", default=None, help="consumer group (overrides scoring.group)")
    p.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="exit after this long without an event (replays and tests)")
    p.add_argument("--no-restore", action="store_true", help="do not rebuild open windows from imminence.cells")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer.kafka_bus import KafkaBus
    from streamer.observability import set_health

    cfg, grid = load_config(args.config)
    bus_cfg = cfg.bus.model_copy(update={"bootstrap": args.bootstrap}) if args.bootstrap else cfg.bus
    if not bus_cfg.bootstrap:
        raise CommandError("no broker: give --bootstrap HOST:PORT or bus.bootstrap in the config "
                           "(imminence broker starts a local one)", code=USAGE)
    scoring = cfg.scoring
    updates = {}
    if args.group:
        updates["group"] = args.group
    if args.no_restore:
        updates["restore"] = False
    if updates:
        scoring = scoring.model_copy(update=updates)
    folder = args.models or scoring.models
    if folder is not None and not Path(folder).is_absolute() and args.models is None:
        folder = str(Path(args.config).parent / folder)
    try:
        models = load_models(folder or default_models_dir())
    except CrimeModelError as exc:
        raise CommandError(str(exc)) from exc
    bus = KafkaBus(bus_cfg)
    cells = set(grid.cell_ids()) if grid is not None else None
    cameras = {c.id for c in cfg.cameras} if scoring.known_cameras_only else None
    service = ScoringService(bus, models, scoring, cells=cells, cameras=cameras, client_id=f"{bus_cfg.client_id}-score")
    set_health("scoring", service.health)

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the batch, publishing and committing", signum)
        service.stop()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stats = service.run(idle_exit_s=args.idle_exit)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        bus.close(30.0)
    print(stats, file=sys.stderr)
    return 0
