"""How a command fails: raise :class:`CommandError`; :func:`imminence.cli.main` reports it.

A command's ``func(args)`` returns 0 (or a status it computed, such as 1 when a
replay dropped events) and *raises* to fail.  :func:`report` is the one place an
error becomes a line on stderr and an exit code, so every command fails the
same way.  The exit-code policy:

=====  ==================================================================
code   meaning
=====  ==================================================================
0      success
1      ``FAILURE``: the command started and a stage failed (a model or
       dataset that cannot be read, training that cannot proceed, a broker
       that refuses or dies, a source that cannot be opened)
2      ``USAGE``: the command cannot start as asked (an option value out of
       range, a missing input or broker address) and every
       :class:`~imminence.configfile.ConfigError` (one line per problem,
       naming file, line and key)
130    ``INTERRUPTED``: Ctrl-C (KeyboardInterrupt)
=====  ==================================================================

A command picks the code when it raises (``CommandError(msg, code=USAGE)``); a
``ConfigError`` needs no wrapping: it propagates and exits 2.  The message is
printed as ``imminence COMMAND [ACTION]: MESSAGE`` (a configuration error as
``imminence COMMAND [ACTION]: configuration error:`` followed by its lines).
"""
from __future__ import annotations

import sys
from typing import TextIO

from imminence.configfile import ConfigError

FAILURE = 1
USAGE = 2
INTERRUPTED = 130


class CommandError(Exception):
    """A command cannot go on: ``message`` (without the ``imminence COMMAND:`` prefix) and its exit code."""

    def __init__(self, message: str, code: int = FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def report(command: str, exc: CommandError | ConfigError, stream: TextIO | None = None) -> int:
    """Print ``exc`` for ``imminence COMMAND`` in the one format; return its exit code (see the policy above)."""
    stream = sys.stderr if stream is None else stream
    if isinstance(exc, CommandError):
        print(f"imminence {command}: {exc.message}", file=stream)
        return exc.code
    print(f"imminence {command}: configuration error:\n{exc}", file=stream)
    return USAGE
