"""The `imminence` command and root configuration: a thin layer that parses, validates and dispatches.

No stage package imports this one.
"""
__version__ = "0.1.0"
