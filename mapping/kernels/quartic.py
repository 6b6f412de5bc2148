"""The quartic (biweight) kernel, ArcGIS's kernel density (Silverman 1986, eq. 4.5).

``K(d) = 3 / (pi r^2) * (1 - (d/r)^2)^2`` for d < r, else 0.
"""
from __future__ import annotations

import math

import numpy as np

from mapping.kernels import register


@register("quartic")
def quartic(d: np.ndarray, radius: float) -> np.ndarray:
    u = 1.0 - (d / radius) ** 2
    return np.where(d < radius, 3.0 / (math.pi * radius ** 2) * u * u, 0.0)
