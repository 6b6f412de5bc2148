"""The Mackey-Glass series and Jang's ANFIS benchmark data set built from it.

``dx/dt = 0.2 x(t - tau) / (1 + x(t - tau)^10) - 0.1 x(t)`` with ``tau = 17``,
``x(0) = 1.2`` and ``x(t) = 0`` for ``t < 0`` (Jang 1993), integrated with the
classical fourth-order Runge-Kutta method at step ``dt = 0.1`` (``tau / dt`` a
whole number of steps) and sampled at integer times.

Two details decide whether the result is the solution of that equation or a
different chaotic trajectory (issue 15):

* The history jumps from 0 to ``x(0) = 1.2`` at ``t = 0``, so the delayed term
  ``x(s - tau)`` is 0 over the whole step that ends at ``s = tau``.  Reading
  ``x(0)`` at that step's end (or averaging 0 and 1.2 for its midpoint, as a
  plain RK4 with linear interpolation does) is an O(dt) error made once.
* The delayed value at the half steps is the cubic Hermite interpolant of the
  stored values and slopes (the slope on each side of ``t = tau``, where
  ``x'`` jumps), which keeps the method fourth order; linear interpolation
  makes it second order.

Either error is small at first, but the series is chaotic: an error of 1e-3 at
t = 17 grows to differences of order 0.1 by t = 600, i.e. a different series
for Jang's checking range.  Done as here, the series agrees with an independent
scipy integration (DOP853, rtol 1e-10, method of steps) to within 1e-6 for
t <= 1124 (``tests/test_anfis.py``).

Jang's data: for ``t = 118 .. 1117`` the input is ``[x(t-18), x(t-12), x(t-6), x(t)]``
and the output ``x(t+6)``; the first 500 pairs train, the last 500 check.
"""
from __future__ import annotations

import numpy as np


def mackey_glass(t_max: float = 1200.0, tau: float = 17.0, dt: float = 0.1, x0: float = 1.2,
                 beta: float = 0.2, gamma: float = 0.1, n: float = 10.0) -> np.ndarray:
    """x(t) at integer t = 0 .. floor(t_max); history x(t) = 0 for t < 0."""
    lag = int(round(tau / dt))
    if lag < 1 or abs(lag * dt - tau) > 1e-9:
        raise ValueError(f"tau ({tau}) must be a whole, positive number of steps dt ({dt})")
    per = int(round(1.0 / dt))
    if abs(per * dt - 1.0) > 1e-9:
        raise ValueError(f"1 / dt must be a whole number of steps to sample at integer times, got dt={dt}")
    steps = int(round(t_max / dt))
    x = np.zeros(steps + 1)
    slope_right = np.zeros(steps + 1)  # x'(t_k+), from the step that starts at t_k
    slope_left = np.zeros(steps + 1)   # x'(t_k-), from the step that ends at t_k
    x[0] = x0

    def f(xt: float, xd: float) -> float:
        return beta * xd / (1.0 + xd ** n) - gamma * xt

    for k in range(steps):
        j = k - lag  # grid index of t_k - tau
        if j < 0:
            # t_k - tau < 0 and t_{k+1} - tau <= 0: the whole step sees the zero history
            # (its end reads the left limit 0, not x(0) = 1.2)
            d0 = dh = d1 = 0.0
        else:
            d0, d1 = x[j], x[j + 1]
            dh = 0.5 * (d0 + d1) + dt / 8.0 * (slope_right[j] - slope_left[j + 1])  # cubic Hermite midpoint
        k1 = f(x[k], d0)
        slope_right[k] = k1
        k2 = f(x[k] + 0.5 * dt * k1, dh)
        k3 = f(x[k] + 0.5 * dt * k2, dh)
        k4 = f(x[k] + dt * k3, d1)
        x[k + 1] = x[k] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        slope_left[k + 1] = f(x[k + 1], d1)
    return x[::per]


def jang_dataset(series: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_check, y_check): 500 + 500 pairs for t = 118 .. 1117.

    ``series`` is x at integer times 0, 1, ... (at least up to 1123); the
    project's own :func:`mackey_glass` by default.
    """
    x = mackey_glass() if series is None else np.asarray(series, dtype=float)
    if x.shape[0] < 1124:
        raise ValueError(f"the series must reach t = 1123, it has {x.shape[0]} samples")
    t = np.arange(118, 1118)
    X = np.column_stack([x[t - 18], x[t - 12], x[t - 6], x[t]])
    y = x[t + 6]
    return X[:500], y[:500], X[500:], y[500:]


def ndei(pred: np.ndarray, target: np.ndarray) -> float:
    """Non-dimensional error index: RMSE divided by the target's standard deviation."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    return float(np.sqrt(np.mean((pred - target) ** 2)) / np.std(target))
