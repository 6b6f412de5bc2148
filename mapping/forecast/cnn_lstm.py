"""The CNN-LSTM grid forecast (:mod:`mapping.forecast.train`) as a registered forecaster."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mapping.forecast.data import DailyMaps
from mapping.forecast.registry import GridPrediction, register
from mapping.forecast.train import Forecaster, TrainConfig, fit


@register("cnn_lstm")
class CNNLSTM:
    """Trains on ``fit`` (unless built around an already trained ``model``); its scores are its probabilities."""

    def __init__(self, cfg: TrainConfig = TrainConfig(), progress: bool = False,
                 curve_png: Optional[str | Path] = None, model: Optional[Forecaster] = None) -> None:
        self.cfg, self.progress, self.curve_png = cfg, progress, curve_png
        self.model = model

    @property
    def history_log(self) -> dict:
        return self.model.history_log if self.model is not None else {}

    def fit(self, maps: DailyMaps, train_end: int) -> None:
        if self.model is None:
            self.model = fit(maps, train_end, self.cfg, progress=self.progress, curve_png=self.curve_png)

    def predict(self, maps: DailyMaps, days: np.ndarray, targets: Sequence[str]) -> GridPrediction:
        if self.model is None:
            raise ValueError("the CNN-LSTM forecaster is not trained: call fit(maps, train_end) first")
        probs, _ = self.model.predict(maps, days, progress=self.progress)
        idx = [self.model.targets.index(t) for t in targets]
        p = probs[:, idx]
        return GridPrediction(maps.grid_id, np.asarray(days), tuple(targets), p, p)
