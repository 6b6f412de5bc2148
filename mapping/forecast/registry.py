"""Forecasters by name, one interface, one output type.

Every forecaster (the CNN-LSTM, each baseline, anything added later) is a class
registered here under a name, with two methods:

* ``fit(maps, train_end)``: learn from days ``< train_end`` of the daily maps
  (a baseline only remembers them and calibrates its scores on the last
  training year);
* ``predict(maps, days, targets) -> GridPrediction``: a forecast for each day
  index in ``days`` from days strictly before it.

:class:`GridPrediction` is the one thing every forecaster returns (as open_cp's
``GridPredictionArray``, with days and crime types stacked), so the backtest
scores any list of forecasters alike.  :func:`create` builds a forecaster from
its name, offering it the shared options (``grid``, ``cfg``, ``kde_radius``,
``progress``, ``curve_png``, ``targets``): a class takes those its ``__init__`` names.
Adding a forecaster is one new module plus its name in :data:`BUILT_IN`
(worked example: ``docs/extending.md``).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from mapping.forecast.data import DailyMaps

#: modules whose import registers the built-in forecasters (the registry's list)
BUILT_IN = ("mapping.forecast.baselines", "mapping.forecast.cnn_lstm", "mapping.forecast.count365",
            "mapping.forecast.prospective", "mapping.forecast.logistic", "mapping.forecast.random_forest",
            "mapping.forecast.gradient_boosting", "mapping.forecast.sepp")


@dataclass(frozen=True)
class GridPrediction:
    """A forecast over one grid: scores per forecast day, target and cell.

    ``scores`` ranks cells (higher: more likely an incident); ``probs``, where
    the forecaster gives them, are calibrated probabilities of at least one
    incident (the Brier score needs them).  Both are (days, targets, H, W) and
    0 outside the city.
    """

    grid_id: str
    days: np.ndarray                      # (n,) day indices into DailyMaps.days
    targets: tuple[str, ...]
    scores: np.ndarray
    probs: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        want = (len(self.days), len(self.targets))
        if self.scores.shape[:2] != want or (self.probs is not None and self.probs.shape != self.scores.shape):
            raise ValueError(f"GridPrediction arrays {self.scores.shape} do not match {want} days x targets")

    def layer(self, target: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(scores, probs) of one target, each (n, H, W)."""
        k = self.targets.index(target)
        return self.scores[:, k], None if self.probs is None else self.probs[:, k]


class GridForecaster(Protocol):
    name: str

    def fit(self, maps: DailyMaps, train_end: int) -> None: ...

    def predict(self, maps: DailyMaps, days: np.ndarray, targets: Sequence[str]) -> GridPrediction: ...


_FORECASTERS: dict[str, Callable[..., GridForecaster]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: the forecaster called ``name``; sets the class's ``name``."""
    def add(cls: type) -> type:
        if name in _FORECASTERS and _FORECASTERS[name] is not cls:
            raise ValueError(f"a forecaster named {name!r} is already registered")
        cls.name = name
        _FORECASTERS[name] = cls
        return cls
    return add


def _load_built_in() -> None:
    for module in BUILT_IN:
        importlib.import_module(module)


def names() -> tuple[str, ...]:
    _load_built_in()
    return tuple(sorted(_FORECASTERS))


def create(name: str, **options: Any) -> GridForecaster:
    """The forecaster ``name``, given the ``options`` its ``__init__`` accepts (the others are not for it)."""
    _load_built_in()
    cls = _FORECASTERS.get(name)
    if cls is None:
        raise ValueError(f"unknown forecaster {name!r}; known: {', '.join(names())}")
    params = inspect.signature(cls).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return cls(**options)
    return cls(**{k: v for k, v in options.items() if k in params})
