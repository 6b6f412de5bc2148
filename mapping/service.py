"""The live map service: imminence.cells in, MapSnapshot to imminence.maps, GeoJSON and PNG to disk.

State: the latest :class:`CellImminence` per cell: a later window replaces an
earlier one, and within one window the highest revision wins (repeats and
stale revisions are ignored, so at-least-once redelivery is harmless;
:func:`streamer.revisions.supersedes`).

The merge, per crime type and cell (documented in the README):

* live value of a cell with a message: ``l_c = imminence_c / 10`` (the study's
  0..10 scale to 0..1), its weight ``w_c = live_weight * 2 ** (-age_c / live_half_life_s)``
  where ``age_c`` is the time since the end of the cell's window (see *Clocks*);
  cells without a message have ``w_c = 0``;
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
(``10 * m * W / live_weight``: the KDE of the age-decayed imminence, 0..10), ``forecast`` (0..1), the
standard-deviation classes of each of the three (> 0 only; :func:`mapping.kde.class_dict`, so consumers never
recompute them) and the top cells.  Cell values below a
threshold are left out of the sparse dicts, and the threshold rises until the
encoded snapshot fits ``max_bytes`` (1 MB Kafka default): values under 0.0005 are
left out, and when that is not enough each dict keeps only its highest cells
(the cap shrinks until the message fits), so a 10,000-cell grid fits.

Clocks (``map.clock``).  ``auto`` (the default) ages each window against its
own source's clock: a window of live cameras against the wall clock, a window
whose events all come from replayed recordings (``CellImminence.replay``, set
from ``IndicatorEvent.replay``) against the end of the newest replayed window
of its camera(s).  So a recording from months ago replayed at any speed maps
as if it were live, beside live cameras that are aged in real time.  ``wall``
ages everything against the wall clock, ``event`` everything against the
newest window received (the behaviour before ``auto``).  A window older than
``HORIZON_HALF_LIVES`` half-lives (its live weight below 1/1000; 150 minutes at
the default half-life) is dropped as too old, on arrival or later: counted,
logged with the count and the reason (at most every ``_LOG_EVERY_S``), and
reported in each snapshot (``windows_too_old``, ``too_old_newest``,
``live_horizon_s``) so the console can say why the map is empty.

Snapshots go out when the state changed (at most every ``min_gap_s``) and at
least every ``interval_s`` (the live weights decay with time).  The service
consumes through the shared :class:`streamer.consume.ConsumerLoop`: offsets are
committed only after the snapshot is published and flushed (its commit point),
and a broker error in poll or commit is counted and retried with the loop's
capped exponential backoff (logged once per outage); the state is kept and
the service catches up from its committed offsets.

Restarts: the state (latest window per cell, the event clock, windows too
old) is a fold of the whole ``imminence.cells`` topic, so a (re)started
service reads every partition it is assigned from its beginning
(:meth:`streamer.bus.Subscription.rewind`), not from the group's committed
offsets, which only say what an earlier process had already folded into a
state that died with it.  A service killed with ``-9`` mid-stream and
restarted ends with the snapshot an uninterrupted one ends with (measured:
``tests/test_faults.py``).  The cost is reading the topic's retention once
per start (windows beyond the horizon are dropped as they are read).
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
from geo.grid import Grid
from mapping.kde import class_dict, sd_classes, surface_from_cells, top_cells
from mapping.render import render_png, write_geojson
from geo.vocabulary import CRIME_TYPES
from streamer import schemas
from streamer.revisions import supersedes
from streamer.bus import Bus, Received
from streamer.consume import ConsumerLoop
from streamer.observability import MODEL_INFO
from streamer.schemas import CellImminence, GridInfo, MapLayer, MapSnapshot, TopCell

log = logging.getLogger(__name__)
SNAPSHOTS = Counter("imminence_map_snapshots_total", "MapSnapshots published")
CELL_UPDATES = Counter("imminence_map_cell_updates_total", "CellImminence messages read, by outcome",
                       ["outcome"])
ALL = "all"
MAX_BYTES = 900_000
#: surfaces() key of each published layer's class array (``class`` is merged's, as written to the files)
CLASS_KEYS = {"merged": "class", "live": "live_class", "forecast": "forecast_class"}
MIN_VALUE = 0.0005   # merged/forecast values below this are left out of the sparse dicts (live: x10)
HORIZON_HALF_LIVES = 10.0  # a window older than this many half-lives (weight < 1/1000) is dropped as too old
_LOG_EVERY_S = 60.0  # too-old windows are logged at most this often (with the count so far)


@dataclass
class ServiceStats:
    received: int = 0
    applied: int = 0
    ignored: int = 0           # repeats and stale revisions/windows
    outside_grid: int = 0
    too_old: int = 0           # windows dropped as older than the live horizon (on arrival or later)
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
    replay: bool = False
    cameras: tuple[str, ...] = ()


class MapService:
    """Consumes cell imminence, keeps the latest per cell, publishes merged maps and writes files."""

    def __init__(self, bus: Bus, grid: Grid, cfg: MapConfig = MapConfig(), *,
                 forecast: DayForecast | str | Path | None = None, cameras: Sequence[dict] = (),
                 out_dir: str | Path | None = None, crime_types: Sequence[str] = CRIME_TYPES,
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
        self._loop: Optional[ConsumerLoop] = None
        self.last_snapshot: Optional[MapSnapshot] = None
        self._surfaces: dict[str, dict[str, np.ndarray]] = {}
        self._newest_end: Optional[datetime] = None  # newest window end received (clock: event)
        self._replay_end: dict[str, datetime] = {}  # camera -> newest replayed window end (clock: auto)
        self._replay_newest: Optional[datetime] = None  # newest replayed window end of any camera
        self._too_old_newest: Optional[datetime] = None
        self._too_old_by: dict[str, int] = {}  # reason kind -> windows dropped (for the log)
        self._too_old_logged: dict[str, tuple[float, int]] = {}  # kind -> (monotonic time, count) of last log

    @property
    def horizon_s(self) -> float:
        """Live windows older than this, against their clock, are dropped as too old."""
        return HORIZON_HALF_LIVES * self.cfg.live_half_life_s

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
        self._note_clocks(msg)
        cur = self.cells.get(msg.cell_id)
        if not supersedes(msg, cur):  # a repeat, a stale revision or an older window
            self.stats.ignored += 1
            CELL_UPDATES.labels("ignored").inc()
            return False
        cell = _Cell(msg.window_start, msg.window_end, msg.revision, dict(msg.imminence), msg.replay,
                     tuple(msg.cameras))
        if self._age_s(cell, self.clock()) > self.horizon_s:  # arrived far in the past: never mapped
            self._drop_too_old([cell])
            CELL_UPDATES.labels("too_old").inc()
            return False
        CELL_UPDATES.labels("applied").inc()
        self.cells[msg.cell_id] = cell
        self.stats.applied += 1
        self._dirty = True
        return True

    # -- clocks -------------------------------------------------------------------------------
    def _note_clocks(self, msg: CellImminence) -> None:
        end = msg.window_end
        if self._newest_end is None or end > self._newest_end:
            self._newest_end = end
        if msg.replay:
            if self._replay_newest is None or end > self._replay_newest:
                self._replay_newest = end
            for cam in msg.cameras:
                if cam not in self._replay_end or end > self._replay_end[cam]:
                    self._replay_end[cam] = end

    def reference_time(self, cell: _Cell, now: datetime) -> datetime:
        """What a cell's window is aged against (see *Clocks* in the module doc); ``now`` is the wall clock."""
        mode = self.cfg.clock
        if mode == "wall":
            return now
        if mode == "event":
            return self._newest_end or now
        if not cell.replay:
            return now
        ends = [self._replay_end[c] for c in cell.cameras if c in self._replay_end]
        return max(ends) if ends else (self._replay_newest or cell.window_end)

    def _age_s(self, cell: _Cell, now: datetime) -> float:
        return max(0.0, (self.reference_time(cell, now) - cell.window_end).total_seconds())

    def _too_old_kind(self, cell: _Cell) -> str:
        if self.cfg.clock == "event":
            return "event"
        if self.cfg.clock == "auto" and cell.replay:
            return "replay"
        return "wall"

    def expire(self, now: Optional[datetime] = None) -> int:
        """Drop the cells whose window is older than the horizon; returns how many."""
        now = now or self.clock()
        old = [cid for cid, c in self.cells.items() if self._age_s(c, now) > self.horizon_s]
        if old:
            self._drop_too_old([self.cells.pop(cid) for cid in old])
            self._dirty = True
        return len(old)

    def _drop_too_old(self, cells: list[_Cell]) -> None:
        for c in cells:
            kind = self._too_old_kind(c)
            self._too_old_by[kind] = self._too_old_by.get(kind, 0) + 1
            if self._too_old_newest is None or c.window_end > self._too_old_newest:
                self._too_old_newest = c.window_end
        self.stats.too_old += len(cells)

    def _log_too_old(self) -> None:
        """Say how many windows were dropped as too old and why: once, then at most every ``_LOG_EVERY_S``."""
        now_m = time.monotonic()
        for kind, count in self._too_old_by.items():
            last_t, last_n = self._too_old_logged.get(kind, (-1e18, 0))
            if count > last_n and now_m - last_t >= _LOG_EVERY_S:
                self._too_old_logged[kind] = (now_m, count)
                log.warning("map: %d cell window(s) left out as too old so far: %s", count, self._reason(kind))

    def _reason(self, kind: str) -> str:
        minutes = self.horizon_s / 60.0
        newest = self._too_old_newest.isoformat() if self._too_old_newest else "?"
        if kind == "replay":
            return (f"replayed windows ended more than {minutes:.0f} min before the newest replayed window of "
                    f"their camera (newest left out ended {newest})")
        if kind == "event":
            return (f"they ended more than {minutes:.0f} min before the newest window received "
                    f"(map.clock: event; newest left out ended {newest})")
        hint = ("their events are not marked as replayed (IndicatorEvent.replay), so they are aged against the "
                "wall clock; for recorded footage use `imminence replay` or set map.clock: event"
                if self.cfg.clock == "auto" else "map.clock: wall ages every window against the wall clock; "
                                                 "for replays of recorded footage use map.clock: auto or event")
        return (f"they ended more than {minutes:.0f} min ({HORIZON_HALF_LIVES:g} half-lives of "
                f"map.live_half_life_s) before the wall clock (newest left out ended {newest}); {hint}")

    # -- surfaces ----------------------------------------------------------------------------
    def _live_arrays(self, now: datetime) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per type the (rows, cols) imminence (0..10) of cells with messages, and their weights."""
        vals = {t: np.zeros(self.grid.shape) for t in self.types + (ALL,)}
        w = np.zeros(self.grid.shape)
        for cid, c in self.cells.items():
            r, col = self.grid.parse_cell_id(cid)
            age = self._age_s(c, now)
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

    def surfaces(self, now: Optional[datetime] = None) -> dict[str, dict[str, np.ndarray]]:
        """Per layer (types and all): merged, live, forecast arrays and their SD classes (:data:`CLASS_KEYS`).

        ``now`` is the wall clock (default: the service's clock); each window is aged against its own
        source's clock (:meth:`reference_time`), and windows beyond the horizon are dropped first.
        """
        now = now or self.clock()
        self.expire(now)
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
                      "weight": W * self.grid.mask, "live_mean": mean * self.grid.mask}
            for kind, key in CLASS_KEYS.items():  # every published layer is classed here, once
                out[t][key] = sd_classes(out[t][kind], self.grid.mask)
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
        tops = [TopCell(cell_id=cid, value=round(v, 4), cls=int(cls[g.parse_cell_id(cid)]))
                for cid, v in top_cells(s["merged"], g, n=n_top)]
        values = {"merged": self._sparse(s["merged"], MIN_VALUE, cap, 4),
                  "live": self._sparse(s["live"], MIN_VALUE * 10, cap, 3),
                  "forecast": self._sparse(s["forecast"], MIN_VALUE, cap, 4)}
        classes = {}
        for kind, cells in values.items():
            full = class_dict(s[CLASS_KEYS[kind]], g)
            # capped to fit max_bytes: only the kept cells keep their class (classes are of the whole layer)
            classes[kind] = full if cap is None else {c: k for c, k in full.items() if c in cells}
        return MapLayer(**values, classes=classes["merged"], live_classes=classes["live"],
                        forecast_classes=classes["forecast"], top_cells=tops)

    def snapshot(self, now: Optional[datetime] = None) -> MapSnapshot:
        """Build (not publish) the snapshot of the current state, within ``max_bytes`` when encoded."""
        now = now or self.clock()
        surf = self.surfaces(now)
        self._surfaces = surf
        w_max = max((self.cfg.live_weight * 2.0 ** (-self._age_s(c, now) / self.cfg.live_half_life_s)
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
                               cells_live=len(self.cells), live_horizon_s=self.horizon_s,
                               windows_too_old=self.stats.too_old, too_old_newest=self._too_old_newest)
            size = len(schemas.encode(snap))
            if size <= self.max_bytes or cap == 0:
                break
            # shrink every dict to the share of cells that fits, with a margin
            largest = max(max(len(l.merged), len(l.live), len(l.forecast)) for l in snap.layers.values())
            cap = int(min(largest if cap is None else cap, largest) * 0.9 * self.max_bytes / size)
            log.debug("snapshot %d bytes > %d: keeping the %d highest cells per layer", size, self.max_bytes, cap)
        self.stats.last_snapshot_bytes = size
        self._log_too_old()  # after a batch of messages, so the first line already counts the batch
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
                 "cells_live": len(self.cells), "written_at": datetime.now(timezone.utc).isoformat(),
                 "live_horizon_s": self.horizon_s, "windows_too_old": self.stats.too_old,
                 "too_old_newest": self._too_old_newest.isoformat() if self._too_old_newest else None,
                 # which window (and revision of it) each live cell's value comes from
                 "live_windows": {cid: {"window_start": c.window_start.isoformat(), "revision": c.revision}
                                  for cid, c in sorted(self.cells.items())}}
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
        self._loop = ConsumerLoop(self.bus, [schemas.TOPIC_CELLS], group=self.cfg.group, client_id=self.client_id,
                                  from_beginning=True, max_records=max_records, handle=self._handle,
                                  after_batch=self._after_batch, on_error=lambda msg, exc: self._count_error(msg),
                                  lag_every_s=5.0, stop=self._stop, name="map service",
                                  on_open=lambda sub: sub.rewind())  # rebuild the state from the whole topic
        self._loop.run(duration_s=duration_s, idle_exit_s=idle_exit_s, poll_timeout=poll_timeout,
                       finish=self._finish)
        return self.stats

    def _handle(self, recs: list[Received]) -> bool:
        """Apply a batch; True when it changed the state (redelivered repeats are not news: they do not
        keep an idle service alive)."""
        changed = False
        for rec in recs:
            if isinstance(rec.event, CellImminence):
                changed = self.apply(rec.event) or changed
        return changed

    def _after_batch(self) -> bool:
        """The loop's commit point: publish (and write files) when due; True once the snapshot is flushed."""
        try:
            self.reload_forecast()
        except ForecastFileError as exc:
            self._note_error(str(exc))
        now_m = time.monotonic()
        due = now_m - self._last_pub >= self.cfg.interval_s
        if not ((self._dirty and now_m - self._last_pub >= self.min_gap_s) or due):
            return False
        self.publish()
        self._dirty = False
        self._last_pub = now_m
        if now_m - self._last_files >= self.files_every_s:
            self._write_files_safely()
            self._last_files = now_m
        return self._loop is not None and self._loop.pending and self.bus.flush(30.0)

    def _finish(self) -> bool:
        """Final state: publish, write files; True (commit) once flushed."""
        self.publish()
        self._write_files_safely()
        return self.bus.flush(30.0)

    def _write_files_safely(self) -> None:
        try:
            self.write_files()
        except OSError as exc:
            self._note_error(f"writing maps to {self.out_dir}: {exc}")

    def _note_error(self, msg: str) -> None:
        self._count_error(msg)
        log.warning("map service: %s", msg)

    def _count_error(self, msg: str) -> None:
        """Count an error for health(); broker errors are logged by the consumer loop, once per outage."""
        self.stats.errors += 1
        self.stats.last_error = msg

    def health(self) -> dict:
        return {"ok": self.stats.errors == 0 or self.stats.snapshots > 0, "cells_live": len(self.cells),
                "snapshots": self.stats.snapshots, "last_error": self.stats.last_error,
                "windows_too_old": self.stats.too_old}

    def hottest(self, layer: str = ALL, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` highest merged cells of a layer in the latest surfaces."""
        s = self._surfaces or self.surfaces()
        return top_cells(s[layer]["merged"], self.grid, n=n)
