"""`imminence incidents`: load historical incident reports and summarise them (and their bad rows).

    imminence incidents load data/toronto_mci.csv.gz --format toronto-mci
    imminence incidents load sfpd.csv --format sf --json
    imminence incidents load x.csv --format generic --map time=when,category=type,lon=lng,lat=lat --tz Europe/London
    imminence incidents load data/toronto.csv.gz --format toronto-mci --config configs/toronto.yaml --maps out/maps.npz

Prints rows read, loaded and rejected by reason (missing coordinates, impossible
coordinates, unparseable date, unknown category, duplicate), the loaded rows per
crime type and the time span in the city's time zone.  With ``--config`` (a
grid) and ``--maps`` it also writes the daily count maps (T, C, H, W) as NPZ.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from geo.grid import Grid, GridConfig, GridError
from imminence.errors import CommandError
from mapping.incidents import FORMATS, IncidentError, aggregate, load_incidents, parse_mapping


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("incidents", help="load historical incident reports",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    ld = sub.add_parser("load", help="read an incident CSV and report rows loaded and rejected by reason")
    ld.add_argument("csv", help="incident CSV (plain or .gz)")
    add_format_args(ld)
    ld.add_argument("--json", action="store_true", help="print the summary as JSON")
    ld.add_argument("--config", help="configuration with a grid section (for --maps)")
    ld.add_argument("--cell-size", type=float, help="cell edge in metres (overrides the config's)")
    ld.add_argument("--maps", help="write daily count maps (T, C, H, W) on the grid to this NPZ file")
    ld.add_argument("--freq", default="D", help="aggregation period (pandas alias: D, W, 7D...; default D)")
    ld.set_defaults(func=load)


def add_format_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="file layout (default: forecast.incidents_format of --config, else generic)")
    p.add_argument("--map", dest="mapping", help="generic: KEY=COLUMN list, keys time|date, hour, category, "
                                               "lon, lat (or x, y), premises, id")
    p.add_argument("--tz", help="city time zone (default: the format's, e.g. America/Toronto)")
    p.add_argument("--time-format", help="generic: strftime format of the time column (default: inferred)")
    p.add_argument("--categories", help="category -> crime type table (default configs/crime_categories.yaml)")


def read_all(paths: list[str], args: argparse.Namespace):
    """Load one or more incident files with the format arguments; returns (incidents, reports)."""
    from mapping.incidents import Incidents

    parts, reports = [], []
    mapping = parse_mapping(args.mapping)
    fmt = args.format or "generic"
    for p in paths:
        inc, rep = load_incidents(p, fmt, mapping=mapping, timezone=args.tz,
                                  categories=args.categories, time_format=args.time_format)
        parts.append(inc)
        reports.append(rep)
    return Incidents.concat(parts), reports


def grid_from_args(args: argparse.Namespace) -> Grid:
    """The grid of ``--config`` (its grid section), with ``--cell-size`` applied.

    Also fills ``args.format`` and ``args.mapping`` from the config's forecast section when not given.
    """
    from imminence.config import load_config
    from imminence.configfile import ConfigError

    if not getattr(args, "config", None):
        raise ConfigError("a grid is needed: give --config FILE with a 'grid' section (e.g. configs/toronto.yaml)")
    cfg, grid = load_config(args.config)
    if getattr(args, "format", "x") is None:
        args.format = cfg.forecast.incidents_format
    if getattr(args, "mapping", "x") is None and cfg.forecast.incidents_map:
        args.mapping = cfg.forecast.incidents_map
    if cfg.grid is None:
        raise ConfigError(f"{args.config}: no 'grid' section")
    if getattr(args, "cell_size", None):
        gc: GridConfig = cfg.grid.model_copy(update={"cell_size_m": float(args.cell_size)})
        grid = Grid.from_config(gc, base_dir=Path(args.config).parent)
    return grid


def format_report(d: dict) -> str:
    lines = [f"{d['source']}: {d['rows_read']:,} rows read, {d['rows_loaded']:,} loaded, "
             f"{d['rows_rejected']:,} rejected"]
    for reason, n in d["rejected"].items():
        if n:
            ex = ", ".join(str(x) for x in d["example_lines"].get(reason, []))
            lines.append(f"  rejected {reason}: {n:,} (e.g. lines {ex})")
    if d["unknown_categories"]:
        lines.append("  unknown categories: " + ", ".join(f"{k!r} x{v}" for k, v in d["unknown_categories"].items()))
    if d["rows_loaded"]:
        lines.append(f"  from {d['first']} to {d['last']}")
        lines.append("  by type: " + ", ".join(f"{k} {v:,}" for k, v in d["by_type"].items()))
    return "\n".join(lines)


def load(args: argparse.Namespace) -> int:
    try:
        grid = grid_from_args(args) if args.maps else None
        inc, reports = read_all([args.csv], args)
        summary = reports[0].as_dict()
        if grid is not None:
            im = aggregate(inc, grid, freq=args.freq)
            Path(args.maps).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.maps, counts=im.counts, periods=np.array([str(p) for p in im.periods]),
                                types=np.array(im.types), grid_id=grid.grid_id, mask=grid.mask)
            summary["maps"] = {"path": args.maps, "shape": list(im.counts.shape), "outside_grid": im.outside,
                               "grid_id": grid.grid_id}
    except (IncidentError, GridError) as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_report(summary))
        if "maps" in summary:
            m = summary["maps"]
            print(f"  maps {tuple(m['shape'])} (T, C, H, W) -> {m['path']}; {m['outside_grid']:,} incidents outside the grid")
    return 0
