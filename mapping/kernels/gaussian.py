"""A Gaussian kernel truncated at the search radius: sigma = r / 3, shifted to reach zero at r, renormalised.

``K(d) = (exp(-d^2 / 2 sigma^2) - exp(-r^2 / 2 sigma^2)) / Z`` for d < r, else 0.
The shift makes it continuous, so a point at exactly r (a lattice offset of
whole cells) counts the same in every evaluation order.
"""
from __future__ import annotations

import math

import numpy as np

from mapping.kernels import register

SIGMAS = 3.0  # the search radius in standard deviations


@register("gaussian")
def gaussian(d: np.ndarray, radius: float) -> np.ndarray:
    sigma = radius / SIGMAS
    tail = math.exp(-radius ** 2 / (2 * sigma ** 2))
    z = 2 * math.pi * sigma ** 2 * (1 - tail) - math.pi * radius ** 2 * tail
    return np.where(d < radius, (np.exp(-d ** 2 / (2 * sigma ** 2)) - tail) / z, 0.0)
