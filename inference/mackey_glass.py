"""The Mackey-Glass series and Jang's ANFIS benchmark data set built from it.

``dx/dt = 0.2 x(t - tau) / (1 + x(t - tau)^10) - 0.1 x(t)`` with ``tau = 17``,
``x(0) = 1.2`` and ``x(t) = 0`` for ``t < 0`` (Jang 1993).  Integrated with the
classical fourth-order Runge-Kutta method at step ``dt = 0.1``; the delayed term
at the half steps is interpolated linearly between stored points of the history
(``tau / dt`` is a whole number of steps, so the full steps need no
interpolation).  The series is sampled at integer times.

Jang's data: for ``t = 118 .. 1117`` the input is ``[x(t-18), x(t-12), x(t-6), x(t)]``
and the output ``x(t+6)``; the first 500 pairs train, the last 500 check.
"""
from __future__ import annotations

import numpy as np


def mackey_glass(t_max: float = 1200.0, tau: float = 17.0, dt: float = 0.1, x0: float = 1.2,
                 beta: float = 0.2, gamma: float = 0.1, n: float = 10.0) -> np.ndarray:
    """x(t) at integer t = 0 .. floor(t_max)."""
    lag = int(round(tau / dt))
    if abs(lag * dt - tau) > 1e-9:
        raise ValueError(f"tau ({tau}) must be a whole number of steps dt ({dt})")
    steps = int(round(t_max / dt))
    x = np.zeros(steps + 1)
    x[0] = x0

    def delayed(j: float) -> float:  # x at step index j (may be fractional / negative)
        if j < 0:
            return 0.0
        lo = int(np.floor(j))
        frac = j - lo
        return x[lo] if frac == 0 else (1 - frac) * x[lo] + frac * x[lo + 1]

    def f(xt: float, xd: float) -> float:
        return beta * xd / (1.0 + xd ** n) - gamma * xt

    for k in range(steps):
        d0, dh, d1 = delayed(k - lag), delayed(k + 0.5 - lag), delayed(k + 1 - lag)
        k1 = f(x[k], d0)
        k2 = f(x[k] + 0.5 * dt * k1, dh)
        k3 = f(x[k] + 0.5 * dt * k2, dh)
        k4 = f(x[k] + dt * k3, d1)
        x[k + 1] = x[k] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    per = int(round(1.0 / dt))
    return x[::per]


def jang_dataset(series: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_check, y_check): 500 + 500 pairs for t = 118 .. 1117."""
    x = mackey_glass() if series is None else series
    t = np.arange(118, 1118)
    X = np.column_stack([x[t - 18], x[t - 12], x[t - 6], x[t]])
    y = x[t + 6]
    return X[:500], y[:500], X[500:], y[500:]


def ndei(pred: np.ndarray, target: np.ndarray) -> float:
    """Non-dimensional error index: RMSE divided by the target's standard deviation."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    return float(np.sqrt(np.mean((pred - target) ** 2)) / np.std(target))
