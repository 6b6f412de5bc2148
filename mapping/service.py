"""The live map service: imminence.cells in, MapSnapshot to imminence.maps, GeoJSON and PNG to disk.

State: the latest :class:`CellImminence` per cell: a later window replaces an
earlier one, and within one window the highest revision wins (repeats and
stale revisions are ignored, so at-least-once redelivery is harmless).

The merge, per crime type and cell (documented in the README):

* live value of a cell with a message: ``l_c = imminence_c / 10`` (the study's
  0..10 scale to 0..1), its weight ``w_c = live_weight * 2 ** (-age_c / live_half_life_s)``
  where ``age_c`` is the time since the end of the cell's window; cells without
  a message have ``w_c = 0``;
* both spread by the KDE (``mapping.kde.surface_from_cells``, density within
  ``radius_m``): the live reach ``W = min(live_weight, KDE(w) / K(0))`` (equal
  to ``w_c`` at a lone live cell, falling to 0 at the search radius) and the
  kernel-weighted mean live value ``m = KDE(w * l) / KDE(w)``;
* ``merged = W * m + (1 - W) * F``, with ``F`` the forecast P(hotspot) of the
  type for the day (0 where no forecast covers the type).  As ``W <= live_weight``
  and ``m, F`` lie in 0..1, merged stays in 0..1: a fresh live signal takes
  weight ``live_weight`` at its cell, the forecast the rest, and the live
  share halves every half-life.

The ``all`` layer uses the largest imminence over the types and the
forecast's ``all`` target.  Published layers: ``merged`` (0..1), ``live``
(``10 * m * W / live_weight``: the KDE of the age-decayed imminence, 0..10), ``forecast`` (0..1), standard-deviation
classes of ``merged`` (> 0 only) and the top cells.  Cell values below a
threshold are left out of the sparse dicts, and the threshold rises until the
encoded snapshot fits ``max_bytes`` (1 MB Kafka default): values under 0.0005 are
left out, and when that is not enough each dict keeps only its highest cells
(the cap shrinks until the message fits), so a 10,000-cell grid fits.

Snapshots go out when the state changed (at most every ``min_gap_s``) and at
least every ``interval_s`` (the live weights decay with time).  Offsets are
committed only after the snapshot is published and flushed.  A broker error
in poll or commit is logged and retried with backoff; the state is kept and
the service catches up from its committed offsets.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from prometheus_client import Counter

from mapping.config import MapConfig
from mapping.forecast.output import DayForecast, ForecastFileError, read as read_forecast
from mapping.grid import Grid
from mapping.kde import sd_classes, surface_from_cells, top_cells
from mapping.render import render_png, write_geojson
from streamer import schemas
from streamer.bus import Bus, LagProbe
from streamer.observability import MODEL_INFO
from streamer.schemas import CellImminence, GridInfo, MapLayer, MapSnapshot, TopCell

log = logging.getLogger(__name__)
SNAPSHOTS = Counter("imminence_map_snapshots_total", "MapSnapshots published")
CELL_UPDATES = Counter("imminence_map_cell_updates_total", "CellImminence messages read, by outcome",
                       ["outcome"])
ALL = "all"
MAX_BYTES = 900_000
MIN_VALUE = 0.0005   # merged/forecast values below this are left out of the sparse dicts (live: x10)


@dataclass
class ServiceStats:
    received: int = 0
    applied: int = 0
    ignored: int = 0           # repeats and stale revisions/windows
    outside_grid: int = 0
    snapshots: int = 0
    files_written: int = 0
    errors: int = 0
    last_error: Optional[str] = None
    last_snapshot_bytes: int = 0


@dataclass
class _Cell:
    window_start: datetime
    window_end: datetime
    revision: int
    imminence: dict[str, float]


class MapService:
    """Consumes cell imminence, keeps the latest per cell, publishes merged maps and writes files."""

    def __init__(self, bus: Bus, grid: Grid, cfg: MapConfig = MapConfig(), *,
                 forecast: DayForecast | str | Path | None = None, cameras: Sequence[dict] = (),
                 out_dir: str | Path | None = None, crime_types: Sequence[str] = schemas.CRIME_TYPES,
                 clock: Callable[[], datetime] = schemas.utcnow, min_gap_s: float = 0.5,
                 files_every_s: Optional[float] = None, max_bytes: int = MAX_BYTES,
                 client_id: str = "imminence-map") -> None:
        self.bus = bus
        self.grid = grid
        self.cfg = cfg
        self.types = tuple(crime_types)
        self.cameras = list(cameras)
        self.out_dir = Path(out_dir if out_dir is not None else cfg.out_dir)
        self.clock = clock
        self.min_gap_s = min_gap_s
        self.files_every_s = cfg.files_interval_s if files_every_s is None else files_every_s
        self.max_bytes = max_bytes
        self.client_id = client_id
        self.cells: dict[str, _Cell] = {}
        self.stats = ServiceStats()
        self.forecast: Optional[DayForecast] = None
        self._forecast_path: Optional[Path] = None
        self._forecast_mtime = 0.0
        if isinstance(forecast, DayForecast):
            if forecast.grid_id != grid.grid_id:
                raise ForecastFileError(f"forecast is for grid {forecast.grid_id}, the map's grid is {grid.grid_id}")
            self.forecast = forecast
        elif forecast is not None:
            self._forecast_path = Path(forecast)
            if not self._forecast_path.exists():
                raise ForecastFileError(f"{forecast}: no such forecast file (write one with 'imminence forecast predict')")
            self.reload_forecast()
        self._stop = threading.Event()
        self._dirty = True
        self._last_pub = 0.0
        self._last_files = 0.0
        self._lag_probe = LagProbe()
        self.last_snapshot: Optional[MapSnapshot] = None
        self._surfaces: dict[str, dict[str, np.ndarray]] = {}

    # -- state ------------------------------------------------------------------------------
    def reload_forecast(self) -> bool:
        """(Re)read the forecast file when it changed on disk; keeps the old one on error."""
        if self._forecast_path is None:
            return False
        try:
            mtime = self._forecast_path.stat().st_mtime
        except OSError:
            return False
        if mtime == self._forecast_mtime:
            return False
        self.forecast = read_forecast(self._forecast_path, self.grid)
        self._forecast_mtime = mtime
        self._dirty = True
        MODEL_INFO.labels("forecast", str(self.forecast.version)).set(1)
        log.info("forecast %s for %s loaded", self._forecast_path, self.forecast.date)
        return True

    def apply(self, msg: CellImminence) -> bool:
        """Take one message into the state; True when it changed the state."""
        self.stats.received += 1
        if not self.grid.has_cell(msg.cell_id):
            self.stats.outside_grid += 1
            CELL_UPDATES.labels("outside_grid").inc()
            return False
        cur = self.cells.get(msg.cell_id)
        if cur is not None and (msg.window_start, msg.revision) <= (cur.window_start, cur.revision):
            self.stats.ignored += 1
            CELL_UPDATES.labels("ignored").inc()
            return False
        CELL_UPDATES.labels("applied").inc()
        self.cells[msg.cell_id] = _Cell(msg.window_start, msg.window_end, msg.revision, dict(msg.imminence))
        self.stats.applied += 1
        self._dirty = True
        return True

    # -- surfaces ----------------------------------------------------------------------------
    def _live_arrays(self, now: datetime) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per type the (rows, cols) imminence (0..10) of cells with messages, and their weights."""
        vals = {t: np.zeros(self.grid.shape) for t in self.types + (ALL,)}
        w = np.zeros(self.grid.shape)
        for cid, c in self.cells.items():
            r, col = self.grid.parse_cell_id(cid)
            age = max(0.0, (now - c.window_end).total_seconds())
            w[r, col] = self.cfg.live_weight * 2.0 ** (-age / self.cfg.live_half_life_s)
            for t in self.types:
                vals[t][r, col] = float(c.imminence.get(t, 0.0))
            vals[ALL][r, col] = max((float(c.imminence.get(t, 0.0)) for t in self.types), default=0.0)
        return vals, w

    def _peak(self) -> float:
        """Density at a lone unit cell's own centre (the kernel's peak on this grid)."""
        if getattr(self, "_peak_value", None) is None:
            one = np.zeros(self.grid.shape)
            rows, cols = np.nonzero(self.grid.mask)
            r, c = rows[len(rows) // 2], cols[len(cols) // 2]
            one[r, c] = 1.0
            dens = surface_from_cells(one, self.grid, radius=self.cfg.radius_m, kernel=self.cfg.kernel,
                                      mode="density")
            self._peak_value = float(dens[r, c])
        return self._peak_value

    def as_of(self, now: datetime) -> datetime:
        """The time live windows are aged against: the wall clock, or with ``clock: event`` (replays of
        recorded footage) the end of the newest window received, so old recordings are not all stale."""
        if self.cfg.clock == "event" and self.cells:
            return max(c.window_end for c in self.cells.values())
        return now

    def surfaces(self, now: Optional[datetime] = None) -> dict[str, dict[str, np.ndarray]]:
        """Per layer (types and all): merged, live, forecast arrays and SD classes."""
        now = now or self.as_of(self.clock())
        vals, w = self._live_arrays(now)
        kde = dict(radius=self.cfg.radius_m, kernel=self.cfg.kernel, mode="density")
        have_live = bool(w.any())
        if have_live:
            dw = surface_from_cells(w, self.grid, **kde)
            # live reach: kernel-shaped, equal to w_c at a lone live cell, never above live_weight
            W = np.clip(dw / self._peak(), 0.0, self.cfg.live_weight)
        else:
            W = np.zeros(self.grid.shape)
        out = {}
        for t in self.types + (ALL,):
            if have_live:
                mean = np.divide(surface_from_cells(w * vals[t] / 10.0, self.grid, **kde), dw,
                                 out=np.zeros(self.grid.shape), where=dw > 1e-12)
                mean = np.clip(mean, 0.0, 1.0)
            else:
                mean = np.zeros(self.grid.shape)
            L = W * mean
            share = W / self.cfg.live_weight if self.cfg.live_weight > 0 else W
            live = 10.0 * mean * share
            F = self.forecast.layer(t) if self.forecast is not None else None
            F = np.zeros(self.grid.shape) if F is None else np.clip(F, 0.0, 1.0)
            merged = np.clip(L + (1.0 - W) * F, 0.0, 1.0) * self.grid.mask
            # weight and live_mean make each cell's merged value explainable: merged = weight * live_mean
            # + (1 - weight) * forecast (before clipping), both written to the GeoJSON
            out[t] = {"merged": merged, "live": live * self.grid.mask, "forecast": F * self.grid.mask,
                      "class": sd_classes(merged, self.grid.mask), "weight": W * self.grid.mask,
                      "live_mean": mean * self.grid.mask}
        return out

    # -- snapshot ------------------------------------------------------------------------------
    def _sparse(self, values: np.ndarray, min_abs: float, cap: Optional[int], ndigits: int) -> dict[str, float]:
        """Cells above ``min_abs``; with ``cap``, only the ``cap`` highest (ties: row-major order)."""
        if cap is not None and int((self.grid.mask & (np.abs(values) > min_abs)).sum()) > cap:
            flat = np.where(self.grid.mask, np.abs(values), -1.0).ravel()
            kth = np.sort(flat)[::-1][max(cap - 1, 0)]
            keep = (np.abs(values) >= kth) & (np.abs(values) > min_abs)
            return self.grid.values_to_dict(np.where(keep, values, 0.0), min_abs=min_abs, ndigits=ndigits)
        return self.grid.values_to_dict(values, min_abs=min_abs, ndigits=ndigits)

    def _layer(self, s: dict[str, np.ndarray], cap: Optional[int], n_top: int = 10) -> MapLayer:
        g = self.grid
        cls = s["class"]
        classes = {g.cell_id(r, c): int(cls[r, c]) for r, c in zip(*np.nonzero(g.mask & (cls > 0)))}
        tops = [TopCell(cell_id=cid, value=round(v, 4), cls=int(cls[g.parse_cell_id(cid)]))
                for cid, v in top_cells(s["merged"], g, n=n_top)]
        return MapLayer(merged=self._sparse(s["merged"], MIN_VALUE, cap, 4),
                        live=self._sparse(s["live"], MIN_VALUE * 10, cap, 3),
                        forecast=self._sparse(s["forecast"], MIN_VALUE, cap, 4),
                        classes=classes, top_cells=tops)

    def snapshot(self, now: Optional[datetime] = None) -> MapSnapshot:
        """Build (not publish) the snapshot of the current state, within ``max_bytes`` when encoded."""
        now = now or self.clock()
        as_of = self.as_of(now)
        surf = self.surfaces(as_of)
        self._surfaces = surf
        w_max = max((self.cfg.live_weight * 2.0 ** (-max(0.0, (as_of - c.window_end).total_seconds())
                                                      / self.cfg.live_half_life_s)
                     for c in self.cells.values()), default=0.0)
        sid = hashlib.sha1(f"{self.grid.grid_id}|{now.isoformat()}|{len(self.cells)}".encode()).hexdigest()[:16]
        info = GridInfo(grid_id=self.grid.grid_id, cell_size_m=self.grid.cell_size, rows=self.grid.rows,
                        cols=self.grid.cols, cells=int(self.grid.mask.sum()))
        cap: Optional[int] = None
        while True:
            snap = MapSnapshot(snapshot_id=sid, created_at=now, grid=info,
                               layers={t: self._layer(s, cap) for t, s in surf.items()},
                               live_weight=round(min(1.0, w_max), 4),
                               forecast_version=self.forecast.version if self.forecast else None,
                               forecast_date=self.forecast.date if self.forecast else None,
                               cells_live=len(self.cells))
            size = len(schemas.encode(snap))
            if size <= self.max_bytes or cap == 0:
                break
            # shrink every dict to the share of cells that fits, with a margin
            largest = max(max(len(l.merged), len(l.live), len(l.forecast)) for l in snap.layers.values())
            cap = int(min(largest if cap is None else cap, largest) * 0.9 * self.max_bytes / size)
            log.debug("snapshot %d bytes > %d: keeping the %d highest cells per layer", size, self.max_bytes, cap)
        self.stats.last_snapshot_bytes = size
        return snap

    def publish(self, now: Optional[datetime] = None) -> MapSnapshot:
        snap = self.snapshot(now)
        self.bus.publish(schemas.TOPIC_MAPS, snap)
        SNAPSHOTS.inc()
        self.stats.snapshots += 1
        self.last_snapshot = snap
        return snap

    def write_files(self) -> list[Path]:
        """GeoJSON of every layer and one PNG per layer of the latest surfaces."""
        if not self._surfaces:
            self._surfaces = self.surfaces()
        out = self.out_dir
        extra = {"forecast_date": self.forecast.date if self.forecast else None,
                 "cells_live": len(self.cells), "written_at": datetime.now(timezone.utc).isoformat()}
        paths = [write_geojson(self.grid, self._surfaces, out / "map.geojson", extra)]
        for t, s in self._surfaces.items():
            top = float(s["merged"].max()) if s["merged"].size else 0.0
            paths.append(render_png(self.grid, s["merged"], out / f"map_{t}.png", classes=s["class"],
                                    cameras=self.cameras, label="merged imminence (0..1)",
                                    title=f"{t}: live imminence merged with forecast "
                                          f"{self.forecast.date if self.forecast else '(none)'}",
                                    vmax=max(top, 1e-6)))
        self.stats.files_written += 1
        return paths

    # -- loop -----------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self, *, duration_s: Optional[float] = None, idle_exit_s: Optional[float] = None,
            poll_timeout: float = 0.5, max_records: int = 200) -> ServiceStats:
        """Consume until :meth:`stop`, ``duration_s`` or ``idle_exit_s`` without a state change."""
        sub = self.bus.subscribe([schemas.TOPIC_CELLS], group=self.cfg.group, from_beginning=True,
                                 client_id=self.client_id)
        start = last_msg = time.monotonic()
        backoff = 0.5
        pending_commit = False
        try:
            while not self._stop.is_set():
                now_m = time.monotonic()
                if duration_s is not None and now_m - start >= duration_s:
                    break
                if idle_exit_s is not None and now_m - last_msg >= idle_exit_s:
                    break
                try:
                    recs = sub.poll(timeout=poll_timeout, max_records=max_records)
                except Exception as exc:  # broker gone: keep the state, retry with backoff
                    self._note_error(f"poll: {exc}")
                    self._stop.wait(backoff)
                    backoff = min(10.0, backoff * 2)
                    continue
                backoff = 0.5
                changed = False
                for rec in recs:
                    if isinstance(rec.event, CellImminence):
                        changed = self.apply(rec.event) or changed
                if recs:
                    pending_commit = True
                if changed:  # redelivered repeats are not news: they do not keep an idle service alive
                    last_msg = time.monotonic()
                try:
                    self.reload_forecast()
                except ForecastFileError as exc:
                    self._note_error(str(exc))
                now_m = time.monotonic()
                due = now_m - self._last_pub >= self.cfg.interval_s
                if (self._dirty and now_m - self._last_pub >= self.min_gap_s) or due:
                    self.publish()
                    self._dirty = False
                    self._last_pub = now_m
                    if now_m - self._last_files >= self.files_every_s:
                        self._write_files_safely()
                        self._last_files = now_m
                    if pending_commit and self.bus.flush(30.0):
                        pending_commit = not self._commit(sub)
                    self._lag_probe.maybe_refresh(sub)
            # final state: publish, write, commit
            self.publish()
            self._write_files_safely()
            if self.bus.flush(30.0):
                self._commit(sub)
        finally:
            sub.close()
        return self.stats

    def _commit(self, sub) -> bool:
        try:
            sub.commit()
            return True
        except Exception as exc:  # the records come again after a rebalance; apply() drops repeats
            self._note_error(f"commit: {exc}")
            return False

    def _write_files_safely(self) -> None:
        try:
            self.write_files()
        except OSError as exc:
            self._note_error(f"writing maps to {self.out_dir}: {exc}")

    def _note_error(self, msg: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = msg
        log.warning("map service: %s", msg)

    def health(self) -> dict:
        return {"ok": self.stats.errors == 0 or self.stats.snapshots > 0, "cells_live": len(self.cells),
                "snapshots": self.stats.snapshots, "last_error": self.stats.last_error}

    def hottest(self, layer: str = ALL, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` highest merged cells of a layer in the latest surfaces."""
        s = self._surfaces or self.surfaces()
        return top_cells(s[layer]["merged"], self.grid, n=n)
