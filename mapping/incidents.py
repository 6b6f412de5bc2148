"""Historical incident reports: load SF, Toronto MCI or generic CSVs, count bad rows, aggregate to maps.

Every input row ends up either in the loaded table or in a rejection count with
its reason (missing coordinates, impossible coordinates, unparseable date,
unknown category, duplicate); nothing is dropped silently.  Times are
timezone-aware in the city's zone, so a day is the city's local day.

Formats:

* ``toronto-mci``: Toronto Police "Major Crime Indicators".  ``occurrencedate``
  is the local date at midnight written in UTC (``2014/03/02 05:00:00+00``); the
  hour is in ``occurrencehour``; ``MCI`` is the category; ``Lat``/``Long``.
  Exact duplicate rows are rejected as duplicates.
* ``sf``: the SFPD incident export (``IncidntNum, Category, Descript, DayOfWeek,
  Date, Time, PdDistrict, Resolution, Address, X, Y, Location, PdId``); ``X`` is
  longitude, ``Y`` latitude (the export writes ``-120.5, 90`` for unknown places);
  a repeated ``PdId`` is a duplicate.
* ``generic``: any CSV with a column mapping ``time=COL,category=COL,lon=COL,lat=COL``
  (or ``x=COL,y=COL`` metric), optional ``premises=COL``, ``id=COL``.

Categories map to crime types through ``configs/crime_categories.yaml``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import pandas as pd
import yaml

from geo.grid import Grid

FORMATS = ("sf", "toronto-mci", "generic")
Format = Literal["sf", "toronto-mci", "generic"]
DEFAULT_CATEGORIES = Path(__file__).resolve().parent.parent / "configs" / "crime_categories.yaml"
REASONS = ("missing_coords", "impossible_coords", "unparseable_date", "unknown_category", "duplicate")

_SF_COLUMNS = ("IncidntNum", "Category", "Descript", "DayOfWeek", "Date", "Time", "PdDistrict",
               "Resolution", "Address", "X", "Y", "Location", "PdId")
_TORONTO_COLUMNS = ("occurrencedate", "occurrencehour", "MCI", "Lat", "Long")


class IncidentError(ValueError):
    """An incident file or mapping that cannot be read as asked."""


@dataclass
class LoadReport:
    """What happened to each input row."""

    source: str
    rows_read: int = 0
    rows_loaded: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    examples: dict[str, list[int]] = field(default_factory=dict)
    unknown_categories: dict[str, int] = field(default_factory=dict)
    first: Optional[str] = None
    last: Optional[str] = None
    by_type: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str, rows: np.ndarray) -> None:
        """Count rows (0-based data-row numbers) rejected for ``reason`` and keep a few examples."""
        n = int(len(rows))
        if n:
            self.rejected[reason] += n
            # CSV line numbers: header is line 1, first data row line 2
            self.examples.setdefault(reason, []).extend((np.asarray(rows[:5]) + 2).tolist())

    def as_dict(self) -> dict:
        return {"source": self.source, "rows_read": self.rows_read, "rows_loaded": self.rows_loaded,
                "rows_rejected": sum(self.rejected.values()), "rejected": dict(self.rejected),
                "example_lines": {k: v[:5] for k, v in self.examples.items()},
                "unknown_categories": dict(sorted(self.unknown_categories.items(), key=lambda kv: -kv[1])[:20]),
                "first": self.first, "last": self.last, "by_type": self.by_type}


@dataclass
class Incidents:
    """A clean incident table: ``time`` (tz-aware, city zone), ``category``, ``crime_type``,
    ``lon``/``lat`` (or ``x``/``y`` when metric), ``premises`` (may be empty)."""

    df: pd.DataFrame
    timezone: str
    types: tuple[str, ...]
    metric: bool = False

    def __len__(self) -> int:
        return len(self.df)

    @staticmethod
    def concat(parts: Sequence["Incidents"]) -> "Incidents":
        if not parts:
            raise IncidentError("no incident files given")
        tz = parts[0].timezone
        for p in parts[1:]:
            if p.timezone != tz or p.metric != parts[0].metric:
                raise IncidentError(f"incident files mix time zones or coordinate kinds ({tz} vs {p.timezone})")
        types = tuple(dict.fromkeys(t for p in parts for t in p.types))
        return Incidents(pd.concat([p.df for p in parts], ignore_index=True), tz, types, parts[0].metric)

    def xy(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        if self.metric:
            return self.df["x"].to_numpy(float), self.df["y"].to_numpy(float)
        return grid.to_metric(self.df["lon"].to_numpy(float), self.df["lat"].to_numpy(float))


# -- category tables --------------------------------------------------------------------
def load_categories(path: str | Path | None = None) -> dict[str, dict]:
    """Read the category -> crime type tables: ``{format: {timezone, types: {type: [categories]}}}``."""
    p = Path(path) if path else DEFAULT_CATEGORIES
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise IncidentError(f"cannot read category table {p}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise IncidentError(f"{p}: expected a mapping of format -> table")
    for fmt, table in data.items():
        if not isinstance(table, dict) or not isinstance(table.get("types"), dict):
            raise IncidentError(f"{p}: {fmt}: needs 'types: {{type: [categories]}}'")
    return data


def category_lookup(table: dict) -> dict[str, str]:
    """Upper-cased, stripped category -> crime type."""
    out = {}
    for ctype, cats in table["types"].items():
        for c in cats:
            out[str(c).strip().upper()] = ctype
    return out


# -- column mapping ---------------------------------------------------------------------
def parse_mapping(text: str | None) -> dict[str, str]:
    """``time=COL,category=COL,lon=COL,lat=COL`` -> dict; raises on unknown keys."""
    if not text:
        return {}
    out = {}
    allowed = {"time", "date", "hour", "category", "lon", "lat", "x", "y", "premises", "id"}
    for part in text.split(","):
        if "=" not in part:
            raise IncidentError(f"--map: expected KEY=COLUMN, got {part!r}")
        k, v = (s.strip() for s in part.split("=", 1))
        if k not in allowed:
            raise IncidentError(f"--map: unknown key {k!r}; use {sorted(allowed)}")
        out[k] = v
    return out


def _require(df: pd.DataFrame, cols: Sequence[str], source: str, fmt: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise IncidentError(f"{source}: not a {fmt} file: missing column(s) {missing}; "
                            f"found {list(df.columns)[:20]}")


def _parse_times(values: pd.Series, source: str, column: str, fmt: Optional[str] = None,
                 utc: bool = False) -> pd.Series:
    """Parse a date column; a format that fails on (nearly) every row is an error, not a row count."""
    s = values.astype("string").str.strip()
    try:
        with warnings.catch_warnings():  # pandas warns when it falls back to per-row parsing
            warnings.simplefilter("ignore", UserWarning)
            t = pd.to_datetime(s, format=fmt, errors="coerce", utc=utc)
    except (ValueError, TypeError) as exc:
        raise IncidentError(f"{source}: column {column!r}: unreadable date format ({exc})") from None
    present = s.notna() & (s != "")
    if present.sum() and t[present].notna().mean() < 0.5:
        bad = s[present & t.isna()].head(3).tolist()
        raise IncidentError(f"{source}: column {column!r}: unreadable date format "
                            f"(expected {fmt or 'ISO 8601 or a format pandas infers'}; e.g. {bad})")
    return t


def _localize(naive: pd.Series, tz: str) -> pd.Series:
    # the repeated hour at the end of DST is read as its first occurrence; the skipped hour moves on
    return naive.dt.tz_localize(tz, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="shift_forward")


# -- loading ------------------------------------------------------------------------------
def load_incidents(path: str | Path, fmt: Format, *, mapping: dict[str, str] | None = None,
                   timezone: str | None = None, categories: str | Path | dict | None = None,
                   time_format: str | None = None, nrows: int | None = None) -> tuple[Incidents, LoadReport]:
    """Read an incident CSV (plain or .gz) of ``fmt``; return the clean table and the row report."""
    if fmt not in FORMATS:
        raise IncidentError(f"unknown incident format {fmt!r}; use one of {FORMATS}")
    source = str(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], nrows=nrows)
    except FileNotFoundError:
        raise IncidentError(f"{source}: no such file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise IncidentError(f"{source}: not a readable CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise IncidentError(f"{source}: empty file") from None
    tables = categories if isinstance(categories, dict) else load_categories(categories)
    report = LoadReport(source=source, rows_read=len(raw))
    out = pd.DataFrame(index=raw.index)
    metric = False
    if fmt == "toronto-mci":
        _require(raw, _TORONTO_COLUMNS, source, fmt)
        tz = timezone or tables.get(fmt, {}).get("timezone", "America/Toronto")
        # local midnight written in UTC -> local calendar date, then the local hour on top
        day = _parse_times(raw["occurrencedate"], source, "occurrencedate", "%Y/%m/%d %H:%M:%S%z", utc=True)
        local_day = day.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        hour = pd.to_numeric(raw["occurrencehour"], errors="coerce")
        hour = hour.where((hour >= 0) & (hour <= 23))
        out["time"] = _localize(local_day + pd.to_timedelta(hour, unit="h"), tz)
        out["category"] = raw["MCI"]
        out["lon"] = pd.to_numeric(raw["Long"], errors="coerce")
        out["lat"] = pd.to_numeric(raw["Lat"], errors="coerce")
        out["premises"] = raw["premises_type"] if "premises_type" in raw else ""
        dup_key = raw  # exact duplicate rows
        table = tables.get(fmt)
    elif fmt == "sf":
        _require(raw, ("Category", "Date", "Time", "X", "Y"), source, fmt)
        tz = timezone or tables.get(fmt, {}).get("timezone", "America/Los_Angeles")
        date = raw["Date"].astype("string").str.strip().str.slice(0, 10)
        # the export has used both 01/19/2015 and 2015-01-19(T00:00:00)
        dfmt = "%Y-%m-%d" if date.dropna().head(50).str.match(r"\d{4}-").mean() > 0.5 else "%m/%d/%Y"
        d = _parse_times(date, source, "Date", dfmt)
        tm = pd.to_timedelta(raw["Time"].astype("string").str.strip() + ":00", errors="coerce")
        out["time"] = _localize(d + tm, tz)
        out["category"] = raw["Category"]
        out["lon"] = pd.to_numeric(raw["X"], errors="coerce")
        out["lat"] = pd.to_numeric(raw["Y"], errors="coerce")
        out["premises"] = ""
        dup_key = raw[["PdId"]] if "PdId" in raw else raw
        table = tables.get(fmt)
    else:
        m = dict(mapping or {})
        need = ["category"] + (["time"] if "time" in m else ["date"])
        if "lon" in m or "lat" in m:
            need += ["lon", "lat"]
        elif "x" in m or "y" in m:
            need += ["x", "y"]
            metric = True
        else:
            need += ["lon", "lat"]
        missing = [k for k in need if k not in m]
        if missing:
            raise IncidentError(f"generic format needs --map with {missing} "
                                f"(e.g. time=COL,category=COL,lon=COL,lat=COL); columns found: {list(raw.columns)[:20]}")
        cols = [m[k] for k in m if k != "id" or m[k]]
        absent = [c for c in cols if c not in raw.columns]
        if absent:
            raise IncidentError(f"{source}: unknown column(s) {absent} in --map; found {list(raw.columns)[:20]}")
        tz = timezone or "UTC"
        tcol = m.get("time", m.get("date"))
        t = _parse_times(raw[tcol], source, tcol, time_format)
        if "hour" in m:
            t = t + pd.to_timedelta(pd.to_numeric(raw[m["hour"]], errors="coerce"), unit="h")
        out["time"] = t.dt.tz_convert(tz) if t.dt.tz is not None else _localize(t, tz)
        out["category"] = raw[m["category"]]
        if metric:
            out["x"] = pd.to_numeric(raw[m["x"]], errors="coerce")
            out["y"] = pd.to_numeric(raw[m["y"]], errors="coerce")
        else:
            out["lon"] = pd.to_numeric(raw[m["lon"]], errors="coerce")
            out["lat"] = pd.to_numeric(raw[m["lat"]], errors="coerce")
        out["premises"] = raw[m["premises"]] if "premises" in m else ""
        dup_key = raw[[m["id"]]] if "id" in m else raw
        table = tables.get("generic")
    out["premises"] = out["premises"].fillna("").astype(str).str.strip()

    # categories: a table when the format has one, else the categories themselves are the types
    cat = out["category"].astype("string").str.strip()
    if table is not None:
        look = category_lookup(table)
        out["crime_type"] = cat.str.upper().map(look)
        types = tuple(table["types"])
    else:
        out["crime_type"] = cat.str.lower().str.replace(r"[^a-z0-9]+", "_", regex=True)
        types = tuple(sorted(out["crime_type"].dropna().unique()))
    out["category"] = cat

    # reasons, first match wins, in REASONS order
    ok = np.ones(len(out), dtype=bool)
    cx, cy = ("x", "y") if metric else ("lon", "lat")
    missing_xy = out[cx].isna().to_numpy() | out[cy].isna().to_numpy()
    report.reject("missing_coords", np.flatnonzero(ok & missing_xy))
    ok &= ~missing_xy
    if not metric:
        lon, lat = out["lon"].to_numpy(), out["lat"].to_numpy()
        with np.errstate(invalid="ignore"):
            bad = ~((np.abs(lon) <= 180) & (np.abs(lat) < 90)) | ((np.abs(lon) < 1e-6) & (np.abs(lat) < 1e-6))
    else:
        bad = ~np.isfinite(out["x"].to_numpy()) | ~np.isfinite(out["y"].to_numpy())
    report.reject("impossible_coords", np.flatnonzero(ok & bad))
    ok &= ~bad
    no_time = out["time"].isna().to_numpy()
    report.reject("unparseable_date", np.flatnonzero(ok & no_time))
    ok &= ~no_time
    unknown = out["crime_type"].isna().to_numpy()
    idx = np.flatnonzero(ok & unknown)
    report.reject("unknown_category", idx)
    if len(idx):
        report.unknown_categories = out["category"].iloc[idx].fillna("<empty>").value_counts().to_dict()
    ok &= ~unknown
    dup = dup_key.duplicated(keep="first").to_numpy()
    report.reject("duplicate", np.flatnonzero(ok & dup))
    ok &= ~dup

    df = out.loc[ok].reset_index(drop=True)
    report.rows_loaded = len(df)
    if len(df):
        report.first, report.last = str(df["time"].min()), str(df["time"].max())
        report.by_type = {k: int(v) for k, v in df["crime_type"].value_counts().items()}
    assert report.rows_loaded + sum(report.rejected.values()) == report.rows_read
    return Incidents(df, str(tz), types, metric), report


# -- aggregation ----------------------------------------------------------------------------
@dataclass
class IncidentMaps:
    """Counts of shape (T, C, H, W): period ``t`` starting ``periods[t]``, crime type ``types[c]``."""

    counts: np.ndarray
    periods: pd.DatetimeIndex
    types: tuple[str, ...]
    outside: int = 0

    def index_of(self, day) -> int:
        """First period starting on or after ``day``."""
        ts = pd.Timestamp(day)
        if ts.tzinfo is None and self.periods.tz is not None:
            ts = ts.tz_localize(self.periods.tz)
        return int(self.periods.searchsorted(ts))


def aggregate(incidents: Incidents, grid: Grid, *, start=None, end=None, freq: str = "D",
              types: Sequence[str] | None = None) -> IncidentMaps:
    """Count incidents per period (``freq``, pandas alias: D, W, 7D, h...) and type on the grid.

    Periods run over [start, end) in the incidents' time zone (default: the data's
    first and last day).  Incidents outside the grid's area are counted in ``outside``.
    """
    df = incidents.df
    tz = incidents.timezone
    types = tuple(types) if types is not None else incidents.types
    t = df["time"]
    lo = pd.Timestamp(start, tz=tz) if start is not None else t.min().normalize()
    hi = pd.Timestamp(end, tz=tz) if end is not None else t.max().normalize() + pd.Timedelta(days=1)
    periods = pd.date_range(lo, hi, freq=freq, inclusive="left")
    if len(periods) == 0:
        raise IncidentError(f"no {freq} periods between {lo} and {hi}")
    x, y = incidents.xy(grid)
    row, col, inside = grid.rowcol_of_xy(x, y)
    tix = periods.searchsorted(t, side="right") - 1
    in_time = (t >= lo).to_numpy() & (t < hi).to_numpy()
    ctype = pd.Categorical(df["crime_type"], categories=list(types)).codes
    sel = in_time & inside & (ctype >= 0)
    counts = np.zeros((len(periods), len(types), grid.rows, grid.cols), dtype=np.float32)
    np.add.at(counts, (tix[sel], ctype[sel], row[sel], col[sel]), 1.0)
    return IncidentMaps(counts, periods, types, outside=int((in_time & ~inside).sum()))


def premises_mix(incidents: Incidents, grid: Grid, *, before, kinds: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Share of each premises kind among a cell's incidents before ``before``: (P, H, W), rows sum to 1 or 0.

    Only incidents strictly before the cutoff count, so the mix is a leak-free static feature.
    """
    df = incidents.df
    cut = pd.Timestamp(before, tz=incidents.timezone) if pd.Timestamp(before).tzinfo is None else pd.Timestamp(before)
    kinds = tuple(kinds) if kinds is not None else tuple(sorted(k for k in df["premises"].unique() if k))
    out = np.zeros((len(kinds), grid.rows, grid.cols), dtype=np.float32)
    if not kinds:
        return out, kinds
    x, y = incidents.xy(grid)
    row, col, inside = grid.rowcol_of_xy(x, y)
    pk = pd.Categorical(df["premises"], categories=list(kinds)).codes
    sel = inside & (pk >= 0) & (df["time"] < cut).to_numpy()
    np.add.at(out, (pk[sel], row[sel], col[sel]), 1.0)
    tot = out.sum(0, keepdims=True)
    return np.divide(out, tot, out=np.zeros_like(out), where=tot > 0), kinds
