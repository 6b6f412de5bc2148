"""`imminence workers`: one supervised process per enabled camera.

    imminence workers --config configs/cameras.yaml [--bootstrap HOST:PORT] [--camera ID ...]

Each camera runs as ``imminence worker`` would, in its own process named
``worker:<id>``.  A worker that dies is restarted with backoff and logged
(after five restarts in a minute it waits 5 s, 10 s, ... before the next); one
that exits cleanly (its file ended) is left alone; one camera's failure never
stops the others.  With no ``--bootstrap`` and no ``bus.bootstrap`` in the
configuration an embedded broker is started for the run and its address
printed.  SIGTERM or Ctrl-C stops every worker (each publishes its open clip
and flushes), waiting at most ``--stop-timeout`` seconds before killing.
"""
from __future__ import annotations

import argparse
import signal
import threading

from imminence.commands.worker import find_camera, run_camera
from imminence.config import load_config
from imminence.configfile import ConfigError
from imminence.errors import CommandError
from streamer.supervisor import ProcessSpec, Supervisor


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("workers", help="run and supervise one worker process per camera",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="YAML configuration with grid, cameras and bus sections")
    p.add_argument("--bootstrap", default=None, metavar="HOST:PORT",
                   help="Kafka bootstrap (overrides bus.bootstrap; default: an embedded broker)")
    p.add_argument("--camera", action="append", default=None, metavar="ID",
                   help="run only these cameras (repeatable; default: every enabled camera)")
    p.add_argument("--stop-timeout", type=float, default=15.0, help="seconds to wait for workers on stop")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cfg, _grid = load_config(args.config)
    if args.camera:
        cameras = [find_camera(cfg, cid, args.config) for cid in args.camera]
    else:
        cameras = [c for c in cfg.cameras if c.enabled]
    if not cameras:
        raise ConfigError(f"{args.config}: cameras: no enabled camera to run")
    broker = None
    bootstrap = args.bootstrap or cfg.bus.bootstrap
    if not bootstrap:
        from streamer.broker import EmbeddedBroker  # noqa: PLC0415

        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap
        print(f"embedded broker: {bootstrap}", flush=True)
    level = args.log_level if hasattr(args, "log_level") else "INFO"
    fmt = getattr(args, "log_format", "text")
    if getattr(args, "metrics_port", None) is not None:
        from streamer.observability import enable_child_metrics  # noqa: PLC0415

        enable_child_metrics()  # the workers' per-camera counters show on this process's /metrics
    specs = [ProcessSpec(f"worker:{c.id}", run_camera, (args.config, c.id, bootstrap, level, fmt)) for c in cameras]
    sup = Supervisor(specs, stop_timeout_s=args.stop_timeout)
    from streamer.observability import set_health  # noqa: PLC0415

    set_health("supervisor", sup.health)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"supervising {len(specs)} worker(s): {', '.join(s.name for s in specs)}", flush=True)
    try:
        sup.start()
        sup.run(until=stop)
    finally:
        if broker is not None:
            broker.stop()
    failed = [n for n, c in sup.children.items() if c.last_exitcode not in (0, None) and not stop.is_set()]
    if failed:
        raise CommandError(f"ended with failed worker(s): {', '.join(failed)}")
    return 0
