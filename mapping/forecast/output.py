"""The forecast file the map service merges: per-cell P(hotspot) for one day, per crime type.

JSON (``.json``): ``{"schema": "imminence.forecast/1", "grid_id", "date",
"created_at", "version", "targets", "cells": {type: {cell_id: p}}}`` with
sparse, rounded cell dicts; NPZ (``.npz``): ``probs`` (K, H, W), ``targets``,
``grid_id``, ``date``, ``version``.  Both carry the grid id, and reading one for
another grid is an error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from geo.grid import Grid
from geo.jsonfile import check_tag, read_model

SCHEMA = "imminence.forecast/1"


class ForecastFileError(ValueError):
    """A forecast file that is missing, malformed or for another grid."""


class ForecastFile(BaseModel):
    """The JSON forecast file; unknown keys (``created_at``) are ignored, the schema tag is checked first."""

    model_config = ConfigDict(populate_by_name=True)
    schema_: str = Field(alias="schema")
    grid_id: str
    date: str
    version: str = ""
    targets: list[str]
    cells: dict[str, dict[str, float]] = Field(description="crime type -> {cell id: P(hotspot)}, sparse")

    @model_validator(mode="before")
    @classmethod
    def _schema_first(cls, data: object) -> object:
        return check_tag(data, "schema", SCHEMA, "not a forecast file (schema {found!r}, expected {expected!r})")


@dataclass
class DayForecast:
    grid_id: str
    date: str
    targets: tuple[str, ...]
    probs: np.ndarray          # (K, H, W) in 0..1
    version: str = ""

    def layer(self, target: str) -> Optional[np.ndarray]:
        return self.probs[self.targets.index(target)] if target in self.targets else None


def write(fc: DayForecast, grid: Grid, path: str | Path, ndigits: int = 4) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez_compressed(path, probs=fc.probs.astype(np.float32), targets=np.array(fc.targets),
                            grid_id=fc.grid_id, date=fc.date, version=fc.version)
    else:
        obj = {"schema": SCHEMA, "grid_id": fc.grid_id, "date": fc.date, "version": fc.version,
               "created_at": datetime.now(timezone.utc).isoformat(), "targets": list(fc.targets),
               "cells": {t: grid.values_to_dict(fc.probs[i], min_abs=10 ** -ndigits, ndigits=ndigits)
                         for i, t in enumerate(fc.targets)}}
        path.write_text(json.dumps(obj))
    return path


def read(path: str | Path, grid: Grid) -> DayForecast:
    path = Path(path)
    if not path.exists():
        raise ForecastFileError(f"{path}: no such forecast file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                fc = DayForecast(str(z["grid_id"]), str(z["date"]), tuple(str(t) for t in z["targets"]),
                                 np.asarray(z["probs"], dtype=float), str(z["version"]))
        else:
            doc = read_model(path, ForecastFile, ForecastFileError, "forecast file")
            targets = tuple(doc.targets)
            probs = np.stack([grid.dict_to_values(doc.cells.get(t, {})) for t in targets]) if targets \
                else np.zeros((0,) + grid.shape)
            fc = DayForecast(doc.grid_id, doc.date, targets, probs, doc.version)
    except ForecastFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ForecastFileError(f"{path}: unreadable forecast file ({exc})") from None
    if fc.grid_id != grid.grid_id:
        raise ForecastFileError(f"{path}: forecast is for grid {fc.grid_id}, the map's grid is {grid.grid_id}")
    if fc.probs.shape[1:] != grid.shape:
        raise ForecastFileError(f"{path}: forecast shape {fc.probs.shape[1:]} is not the grid's {grid.shape}")
    return fc
