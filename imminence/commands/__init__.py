"""Subcommands of `imminence`; each module registers its own (see :mod:`imminence.cli`)."""
