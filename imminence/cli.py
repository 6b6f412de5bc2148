"""`imminence` console script: a dispatch table of subcommands, `-h` everywhere.

Each module in :mod:`imminence.commands` defines ``register(subparsers)``, which adds
its subcommand(s) and sets ``func`` (taking the parsed args, returning an exit code).
An unknown command is an error; configuration errors exit with status 2 and one
line per problem naming file, line and key.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Optional, Sequence

from imminence import __version__, commands
from imminence.configfile import ConfigError
from imminence.logs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imminence", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"imminence {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="json: one JSON object per line")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve Prometheus /metrics and /healthz on this port (0 = any free port)")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"imminence.commands.{mod.name}").register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.metrics_port is not None:
        from streamer.observability import serve

        server = serve(args.metrics_port, args.metrics_host)
        print(f"metrics: http://{args.metrics_host}:{server.port}/metrics", file=sys.stderr, flush=True)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"imminence {args.command}: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
