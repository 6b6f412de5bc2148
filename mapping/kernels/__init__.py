"""KDE kernels by name: the registry :mod:`mapping.kde` and ``map.kernel`` read.

A kernel is a function ``density(d, radius) -> array``: the density per square
metre at distances ``d`` (metres) from a point, zero from ``radius`` on, that
integrates to 1 over the plane.  Each lives in a module of this package that
registers it with :func:`register`; the import line at the bottom of this file
is the registry's list of built-in kernels.  Adding one is a new module plus
its name on that line (worked example: ``docs/extending.md``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

KernelFn = Callable[[np.ndarray, float], np.ndarray]

_KERNELS: dict[str, KernelFn] = {}


def register(name: str) -> Callable[[KernelFn], KernelFn]:
    """Decorator: make ``fn`` the kernel called ``name`` (a name may be registered once)."""
    def add(fn: KernelFn) -> KernelFn:
        if name in _KERNELS and _KERNELS[name] is not fn:
            raise ValueError(f"a KDE kernel named {name!r} is already registered")
        _KERNELS[name] = fn
        return fn
    return add


def names() -> tuple[str, ...]:
    """The registered kernels' names, sorted."""
    return tuple(sorted(_KERNELS))


def get(name: str) -> KernelFn:
    """The kernel called ``name``; a ValueError naming the known ones otherwise."""
    try:
        return _KERNELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"kernel must be one of {names()}, got {name!r}") from None


from mapping.kernels import gaussian, quartic  # noqa: E402,F401  (the built-in kernels register themselves)
