"""`imminence anfis`: train the four crime-imminence ANFIS systems, and print a model's rules.

    imminence anfis train DATASET --out runs/anfis          # a dataset with ground truth
    imminence anfis train DATASET --incidents ../shared/data/toronto_mci_to2019.csv.gz  # rates from reports
    imminence anfis train --synthetic --out inference/models # generated clips (the bundled defaults)
    imminence anfis rules inference/models/robbery.json

``train`` builds (cell, window) input/output pairs from the per-clip ground
truth (concept labels and staged crimes), splits them 60/40 (earliest windows
train), trains one system per crime type with subtractive clustering and
hybrid learning, and writes ``{crime}.json``, ``report.json``,
``error_curves.png`` and ``membership_functions.png`` to ``--out``, then prints
the checking error of each system against a baseline that predicts the
training mean.  The ``rate`` input of each cell is learnt from the staged
crimes of the training windows, or, with ``--incidents``, counted from
historical incident reports placed in the dataset's grid (per 24 h by default);
``rates`` in the config override both.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imminence.configfile import load
from imminence.errors import USAGE, CommandError
from inference.anfis import ANFIS, ANFISError
from inference.config import CrimeModelsConfig
from inference.crime_models import (CrimeModelError, build_pairs, format_report, rates_from_incidents,
                                    records_from_dataset, train_models)

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "crime_models.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("anfis", help="train and inspect the crime-imminence ANFIS models",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="anfis_command", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train the four crime models from a dataset with ground truth")
    t.add_argument("dataset", nargs="?", help="dataset folder (manifest.json + ground truth)")
    t.add_argument("--out", default="runs/anfis", help="output folder (default runs/anfis)")
    t.add_argument("--config", default=str(DEFAULT_CONFIG), help="crime model inputs (configs/crime_models.yaml)")
    t.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    t.add_argument("--synthetic", action="store_true",
                   help="train on generated clip records (inference.synthetic) instead of a dataset")
    t.add_argument("--cells", type=int, default=8, help="--synthetic: cells (default 8)")
    t.add_argument("--hours", type=float, default=60.0,
                   help="--synthetic: hours per cell (default 60: the chronological split then sees every hour)")
    t.add_argument("--crimes-per-hour", type=float, default=2.0, help="--synthetic: crimes per hour in an average cell")
    t.add_argument("--seed", type=int, default=1, help="--synthetic: random seed (default 1)")
    t.add_argument("--incidents", default=None, metavar="CSV",
                   help="historical incident reports: the rate input per cell comes from them (cells of the "
                        "dataset's grid) instead of from the staged crimes; config 'rates' still override")
    t.add_argument("--incidents-format", default="toronto-mci", choices=["toronto-mci", "sf", "generic"],
                   help="format of --incidents (see mapping/incidents.py)")
    t.add_argument("--incidents-mapping", default=None, help="generic format: time=COL,category=COL,lon=COL,lat=COL")
    t.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    t.set_defaults(func=train)
    r = sub.add_parser("rules", help="print the rules of a model file")
    r.add_argument("model", help="model JSON written by 'anfis train'")
    r.set_defaults(func=rules)


def train(args: argparse.Namespace) -> int:
    cfg = load(CrimeModelsConfig, args.config)
    if args.epochs is not None:
        if args.epochs < 1:
            raise CommandError(f"--epochs must be >= 1, got {args.epochs}", code=USAGE)
        cfg = cfg.model_copy(update={"epochs": args.epochs})
    if not args.synthetic and not args.dataset:
        raise CommandError("give a DATASET folder or --synthetic", code=USAGE)
    if args.incidents and not args.dataset:
        raise CommandError("--incidents needs a DATASET (its grid places the incidents)", code=USAGE)
    try:
        if args.synthetic:
            from inference.synthetic import generate_records

            records = generate_records(args.cells, args.hours, seed=args.seed, crimes_per_hour=args.crimes_per_hour)
            source = (f"synthetic: cells={args.cells} hours={args.hours} crimes_per_hour={args.crimes_per_hour} "
                      f"seed={args.seed}")
        else:
            records = records_from_dataset(args.dataset)
            source = str(args.dataset)
            if args.incidents:
                cfg = _with_incident_rates(cfg, args)
                source += f" (rates from {args.incidents})"
        pairs = build_pairs(records, cfg)
        print(f"{len(records)} clips -> {pairs.windows} (cell, window) pairs in {pairs.cells} cells; "
              f"{pairs.train_windows} train, {pairs.windows - pairs.train_windows} check", file=sys.stderr)
        report = train_models(pairs, cfg, args.out, source=source, progress=sys.stderr.isatty(),
                              plots=not args.no_plots)
    except (CrimeModelError, ANFISError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(format_report(report))
    print(f"models and report written to {args.out}", file=sys.stderr)
    return 0


def _with_incident_rates(cfg: CrimeModelsConfig, args: argparse.Namespace) -> CrimeModelsConfig:
    """The config with per-cell rates counted from historical incidents (config rates win)."""
    from geo.grid import Grid, cells_of_points
    from mapping.incidents import load_incidents, parse_mapping
    from streamer.dataset import Dataset

    ds = Dataset(args.dataset)
    if ds.manifest.grid is None:
        raise CrimeModelError(f"{args.dataset}: the manifest has no grid to place --incidents in")
    grid = Grid.from_config(ds.manifest.grid, base_dir=Path(args.dataset))
    inc, report = load_incidents(args.incidents, args.incidents_format,
                                 mapping=parse_mapping(args.incidents_mapping) if args.incidents_mapping else None)
    if len(inc) == 0:
        raise CrimeModelError(f"{args.incidents}: no usable incident ({report.as_dict()})")
    # Reports of long-past occurrences stretch the span (Toronto's start in 1966): measure the
    # span from the 0.5th percentile of the occurrence times and count only incidents inside it.
    times = inc.df["time"]
    lo = times.quantile(0.005, interpolation="lower")
    keep = (times >= lo).to_numpy()
    span_h = max((times.max() - lo).total_seconds() / 3600.0, 1.0)
    x, y = inc.xy(grid)
    cells = cells_of_points(grid, x[keep], y[keep])
    rates = rates_from_incidents(cells, inc.df["crime_type"][keep].tolist(), span_h, grid.cell_ids(),
                                 cfg.rate_per_hours)
    inside = sum(c is not None for c in cells)
    print(f"rates from {len(inc)} incidents ({inside} inside the grid) over {span_h / 24:.0f} days", file=sys.stderr)
    for crime, override in cfg.rates.items():
        rates[crime].update(override)
    return cfg.model_copy(update={"rates": rates})


def rules(args: argparse.Namespace) -> int:
    try:
        m = ANFIS.load(args.model)
    except ANFISError as exc:
        raise CommandError(str(exc)) from exc
    print(json.dumps({"inputs": m.input_names, "rules": m.n_rules, "meta": {k: v for k, v in m.meta.items()
                                                                           if k != "rates"}}))
    for i, text in enumerate(m.rules()):
        print(f"{i + 1:3d}. {text}")
    return 0
