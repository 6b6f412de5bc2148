"""`imminence web`: serve the web console (live map, cell explanations, events, cameras, clip analysis).

Live, against the topics:        imminence web --bootstrap 127.0.0.1:9092 [--config configs/x.yaml]
A finished run from disk:        imminence web --from runs/demo/map
Make a password hash for config: imminence web --hash-password   (reads the password from stdin)

Bound to loopback (the default) the console may run open; on any other address
it refuses to start unless ``web.users`` or a token (``IMMINENCE_WEB_TOKEN``) is set.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import sys

from imminence.errors import USAGE, CommandError

log = logging.getLogger("imminence.web")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("web", help="serve the web console", description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--config", help="YAML configuration (web:, bus:, grid:, detectors: sections)")
    p.add_argument("--bootstrap", help="Kafka bootstrap host:port (default: bus.bootstrap of the config)")
    p.add_argument("--namespace", help="topic namespace (default: bus.namespace of the config)")
    p.add_argument("--host", help="address to bind (default: web.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: web.port, 8080)")
    p.add_argument("--from", dest="run_dir", metavar="DIR", help="serve a finished run folder instead of the topics")
    p.add_argument("--hash-password", action="store_true", help="print a password hash for web.users and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from console.auth import AuthError, hash_password

    if args.hash_password:
        pw = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if not pw:
            raise CommandError("empty password", code=USAGE)
        print(hash_password(pw))
        return 0

    from console.server import build_console, default_analyzer_factory, serve
    from imminence.config import ImminenceConfig, load_config

    if args.config:
        cfg, grid = load_config(args.config)
    else:
        cfg, grid = ImminenceConfig(), None
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    web = cfg.web.model_copy(update=updates)
    if not 0 < web.port < 65536:
        raise CommandError(f"--port {web.port} is not a port number (1-65535)", code=USAGE)
    bus = None
    bootstrap = args.bootstrap or cfg.bus.bootstrap
    if args.run_dir is None:
        if not bootstrap:
            raise CommandError("give --bootstrap HOST:PORT (or bus.bootstrap in --config), or --from DIR", code=USAGE)
        from streamer.kafka_bus import KafkaBus

        bus_cfg = cfg.bus.model_copy(update={"bootstrap": bootstrap,
                                             **({"namespace": args.namespace} if args.namespace else {})})
    try:
        if args.run_dir is None:
            bus = KafkaBus(bus_cfg)
        console = build_console(web, grid=grid, bus=bus, bootstrap=bootstrap, run_dir=args.run_dir,
                                analyzer_factory=default_analyzer_factory(cfg.detectors), close_bus=True)
    except AuthError as exc:
        if bus is not None:
            bus.close(1.0)
        raise CommandError(str(exc), code=USAGE) from exc
    except FileNotFoundError as exc:
        raise CommandError(str(exc), code=USAGE) from exc
    from streamer.observability import set_health  # noqa: PLC0415

    # /healthz (with --metrics-port): unhealthy while the live feed's broker is unreachable
    set_health("console", lambda: {"ok": bool(args.run_dir) or console.state.connected, **console.state.status()})
    scheme = "https" if web.tls_cert else "http"
    print(f"imminence web: console at {scheme}://{web.host}:{web.port}/ "
          f"({'run folder ' + args.run_dir if args.run_dir else 'live from ' + bootstrap})", file=sys.stderr, flush=True)
    try:
        serve(console.app, web.host, web.port, tls_cert=web.tls_cert, tls_key=web.tls_key)
    finally:
        console.close()
    return 0
