"""`imminence` console script: a dispatch table of subcommands, `-h` everywhere.

Each module ``imminence/commands/NAME.py`` defines the subcommand ``NAME`` through
``register(subparsers)``, which adds it and sets ``func`` (taking the parsed args,
returning 0 or a status it computed, and raising to fail).  Only the module of the command being run is imported
(the others are listed from their docstrings), so start-up does not pay for
torch or scikit-learn unless the command needs them.  An unknown command is an
error (argparse, status 2).

Errors are reported one way (:mod:`imminence.errors`): a command raises
``CommandError(message, code)`` or lets a ``ConfigError`` propagate, and
:func:`main` alone prints it to stderr as ``imminence COMMAND [ACTION]: message``
and returns its code: 1 when a stage failed, 2 when the command cannot start as
asked and for every configuration error (one line per problem naming file, line
and key), 130 on Ctrl-C; any other exception is a bug and keeps its traceback.
A command with actions names its subparsers' ``dest``
``<command>_command``, so the prefix names the action too.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from imminence import __version__, commands
from imminence.configfile import ConfigError
from imminence.errors import INTERRUPTED, CommandError, report
from imminence.logs import setup_logging


_GLOBAL_WITH_VALUE = {"--log-level", "--log-format", "--metrics-port", "--metrics-host"}


def command_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def _summary(name: str) -> str:
    """First docstring line of a command module, read without importing it."""
    path = Path(commands.__path__[0]) / f"{name}.py"
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    line = doc.splitlines()[0] if doc else ""
    return line.split(":", 1)[1].strip() if line.startswith("`") and ":" in line else line


def _requested(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named on the command line, skipping global options and their values."""
    skip = False
    for tok in argv:
        if skip:
            skip = False
        elif tok in _GLOBAL_WITH_VALUE:
            skip = True
        elif not tok.startswith("-"):
            return tok
    return None


def build_parser(only: Optional[str] = "*") -> argparse.ArgumentParser:
    """The argument parser; ``only`` names the one command whose module is imported ("*": all)."""
    parser = argparse.ArgumentParser(prog="imminence", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"imminence {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="json: one JSON object per line")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve Prometheus /metrics and /healthz on this port (0 = any free port)")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_names():
        if only == "*" or name == only:
            importlib.import_module(f"imminence.commands.{name}").register(sub)
        else:
            sub.add_parser(name, help=_summary(name), add_help=False)
    return parser


def command_path(args: argparse.Namespace) -> str:
    """``COMMAND`` or ``COMMAND ACTION`` of the parsed args (an action is the ``<command>_command`` dest)."""
    action = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {action}" if action else args.command


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_requested(argv))
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.metrics_port is not None:
        from streamer.observability import serve

        server = serve(args.metrics_port, args.metrics_host)
        print(f"metrics: http://{args.metrics_host}:{server.port}/metrics", file=sys.stderr, flush=True)
    try:
        return int(args.func(args) or 0)
    except (CommandError, ConfigError) as exc:
        return report(command_path(args), exc)
    except KeyboardInterrupt:
        return INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
