"""Schema-valid sample messages for the console's tests, benchmark and development without services.

Every builder returns the real pydantic models of :mod:`streamer.schemas`, so a
message that goes through the bus here is exactly what the services publish.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Optional

import numpy as np

from geo.grid import Grid, GridConfig
from geo.vocabulary import CONCEPTS, CRIME_TYPES
from streamer.schemas import (CameraStatus, CellImminence, ConceptResult, DetectionSummary, GridInfo, IndicatorEvent,
                              MapLayer, MapSnapshot, RuleFiring, TopCell)
from mapping.kde import class_dict, sd_classes


def small_grid(rows: int = 6, cols: int = 8, cell_size_m: float = 250.0) -> Grid:
    """A lon/lat grid of about rows x cols cells around Toronto's centre."""
    lon0, lat0 = -79.38, 43.65
    dlon = cols * cell_size_m / (111_320 * np.cos(np.radians(lat0)))
    dlat = rows * cell_size_m / 110_574
    return Grid.from_config(GridConfig(bbox=(lon0, lat0, lon0 + dlon * 0.999, lat0 + dlat * 0.999),
                                       cell_size_m=cell_size_m))


def grid_info(grid: Grid) -> GridInfo:
    return GridInfo(grid_id=grid.grid_id, cell_size_m=grid.cell_size, rows=grid.rows, cols=grid.cols,
                    cells=int(grid.mask.sum()))


def snapshot(grid: Grid, values: dict[str, float], *, snapshot_id: Optional[str] = None,
             created_at: Optional[datetime] = None, forecast: Optional[dict[str, float]] = None) -> MapSnapshot:
    """A snapshot whose every crime layer has ``values`` (merged = live here) and standard-deviation classes."""
    created_at = created_at or datetime.now(timezone.utc)
    forecast = forecast or {}
    layers = {}
    # classed as the map service classes its layers (mapping.kde)
    classes = class_dict(sd_classes(grid.dict_to_values(values), grid.mask), grid)
    forecast_classes = class_dict(sd_classes(grid.dict_to_values(forecast), grid.mask), grid)
    for crime in tuple(CRIME_TYPES) + ("all",):
        top = sorted(values.items(), key=lambda kv: -kv[1])[:10]
        layers[crime] = MapLayer(merged=dict(values), live=dict(values), forecast=dict(forecast), classes=classes,
                                 live_classes=classes, forecast_classes=forecast_classes,
                                 top_cells=[TopCell(cell_id=c, value=v, cls=classes.get(c, 0)) for c, v in top])
    sid = snapshot_id or hashlib.sha1(f"{created_at.isoformat()}{sorted(values.items())}".encode()).hexdigest()[:16]
    return MapSnapshot(snapshot_id=sid, created_at=created_at, grid=grid_info(grid), layers=layers,
                       live_weight=0.7, forecast_version="sample", cells_live=len(values))


def cell_message(cell_id: str, *, at: Optional[datetime] = None, level: float = 6.0, revision: int = 0,
                 window_s: float = 60.0) -> CellImminence:
    at = at or datetime.now(timezone.utc)
    start = at - timedelta(seconds=window_s)
    imm = {c: float(np.clip(level - i, 0, 10)) for i, c in enumerate(CRIME_TYPES)}
    rules = {c: [RuleFiring(rule=f"IF violent_movement is high AND hour is late THEN {c} imminence is high",
                            strength=0.62, output=imm[c] + 1.0),
                 RuleFiring(rule=f"IF robbery_rate is medium AND sneaking is low THEN {c} imminence is medium",
                            strength=0.31, output=imm[c] - 1.0)] for c in CRIME_TYPES}
    return CellImminence(message_id=f"{cell_id}|{start.isoformat()}|{revision}", cell_id=cell_id,
                         window_start=start, window_end=at, revision=revision, imminence=imm,
                         flags={c: v > 5 for c, v in imm.items()}, events=3, cameras=["cam-1"],
                         concept_counts={"violent_movement": 2, "normal": 1},
                         inputs={c: {"violent_movement": 2.0, "hour": 23.0} for c in CRIME_TYPES},
                         top_rules=rules, produced_at=at)


def indicator_event(camera_id: str, cell_id: Optional[str], index: int, *, concept: str = "violent_movement",
                    at: Optional[datetime] = None) -> IndicatorEvent:
    at = at or datetime.now(timezone.utc)
    scores = {c: 0.05 for c in CONCEPTS}
    scores[concept] = 0.8
    return IndicatorEvent(event_id=f"{camera_id}:{index}", camera_id=camera_id, cell_id=cell_id, clip_index=index,
                          clip_start=at - timedelta(seconds=2), clip_end=at, stream_start_s=2.0 * index,
                          stream_end_s=2.0 * index + 2, frame_first=10 * index, frame_last=10 * index + 9,
                          captured_at=at, detections=DetectionSummary(frames=10, counts={"person": 2.0},
                                                                      max_counts={"person": 2}, tracks=["t:1", "t:2"]),
                          concept=ConceptResult(label=concept, score=0.8, scores=scores, method="gmcp", window=8))


def camera_status(camera_id: str, cell_id: Optional[str], state: str = "online", *,
                  at: Optional[datetime] = None) -> CameraStatus:
    return CameraStatus(camera_id=camera_id, cell_id=cell_id, state=state, at=at or datetime.now(timezone.utc),
                        fps_analysed=4.9, frames_read=500, frames_analysed=250, reconnects=1, clips=25,
                        events_published=25, events_buffered=0, events_dropped=0,
                        last_event_at=at or datetime.now(timezone.utc))
