"""`imminence demo`: the main job end to end, on an embedded broker it starts itself.

    imminence demo [--config configs/demo.yaml] [--out demo-out] [--cameras 4] [--minutes 2]

1. generates (or reuses) a scene dataset with ground truth (``OUT/dataset``);
2. starts the embedded tansu broker on loopback;
3. trains a small CNN-LSTM forecast for the demo grid from the committed sample of
   real Toronto incidents, and starts ``imminence score`` and ``imminence map``
   (which merges that forecast) as processes of their own;
4. replays the dataset through the camera workers onto ``imminence.indicators``;
5. waits, by content, until every published event is counted in a cell's
   imminence and the map reflects every cell; then stops the services (they
   publish, commit and write their files on SIGTERM);
6. prints what arrived on each topic, the hottest cells, and where the map is,
   and the one command that opens the web console on the results.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import yaml

from imminence.config import load_config
from imminence.configfile import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
SAMPLE_INCIDENTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "toronto_mci_sample.csv.gz"
QUIET_S = 15.0  # scorer silent this long after the last event: it has skipped the rest on purpose


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="replay generated scenes through workers, Kafka, ANFIS and the mapper",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--out", default="demo-out", help="output folder (dataset, map, logs)")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--speed", default="max", help="replay speed: 1, 4 or max")
    p.add_argument("--bootstrap", default=None, help="use this broker instead of starting one")
    p.add_argument("--timeout", type=float, default=240.0, help="give up waiting for the services after this long")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    exe = [sys.executable, "-m", "imminence.cli"]
    log = open(log_path, "ab")
    return subprocess.Popen(exe + args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, name: str, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _say(f"{name} did not stop within {timeout:.0f}s; killing it")
            proc.kill()
            proc.wait(5)
    return proc.returncode


def _train_forecast(out: Path, config: Path, logs: Path) -> Path | None:
    """A small CNN-LSTM forecast for the demo grid from the committed Toronto incident sample (~10 s).

    The sample ends on 2019-12-30, so the forecast is for 2019-12-31; a deployment trains on its
    own incident history (`imminence forecast train`) and predicts tomorrow.
    """
    sample = SAMPLE_INCIDENTS
    ckpt, pred = out / "forecast.pt", out / "forecast.json"
    common = ["--incidents", str(sample), "--format", "toronto-mci", "--config", str(config)]
    _say(f"training a small CNN-LSTM forecast on {sample.name} (real Toronto incidents) for the demo grid")
    with open(logs / "forecast.log", "ab") as log:
        for step in (["forecast", "train", *common, "--epochs", "1", "--max-steps", "4", "--width", "0.125",
                      "--warmup-days", "60", "--val-days", "30", "--threads", "1", "--out", str(ckpt)],
                     ["forecast", "predict", *common, "--checkpoint", str(ckpt), "--out", str(pred)]):
            code = subprocess.run([sys.executable, "-m", "imminence.cli", *step], stdout=log,
                                  stderr=subprocess.STDOUT).returncode
            if code != 0:
                _say(f"forecast {step[1]} failed (status {code}, see {logs / 'forecast.log'}); "
                     "the map runs on live imminence alone")
                return None
    return pred


def run(args: argparse.Namespace) -> int:
    from streamer.broker import EmbeddedBroker
    from streamer.kafka_bus import KafkaBus
    from streamer.replay import replay_dataset
    from streamer.revisions import keep_latest
    from scenes.generate import generate_dataset
    from streamer.schemas import (TOPIC_CAMERAS, TOPIC_CELLS, TOPIC_INDICATORS, TOPIC_MAPS, TOPIC_SITUATIONS,
                                  CellImminence, MapSnapshot, encode)

    t_start = time.monotonic()
    out = Path(args.out).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cfg, grid = load_config(args.config)
    if grid is None:
        raise ConfigError(f"{args.config}: the demo needs a 'grid' section (the study area of the scenes)")

    dataset = out / "dataset"
    if (dataset / "manifest.json").exists():
        _say(f"reusing the scene dataset in {dataset}")
    else:
        _say(f"generating {args.cameras} cameras x {args.minutes:g} min of scenes (seed {args.seed}) into {dataset}")
        generate_dataset(dataset, cameras=args.cameras, minutes=args.minutes, seed=args.seed, progress=True,
                         jobs=min(args.cameras, os.cpu_count() or 1))

    broker = None
    bootstrap = args.bootstrap or cfg.bus.bootstrap
    if not bootstrap:
        broker = EmbeddedBroker(log_file=logs / "broker.log").start()
        bootstrap = broker.bootstrap
        _say(f"embedded Kafka-protocol broker (tansu) on {bootstrap}")
    namespace = f"demo{int(time.time())}"  # fresh topics each run, so old runs never mix in
    env_cfg = out / "demo-config.yaml"
    raw = yaml.safe_load(Path(args.config).read_text())
    raw.setdefault("bus", {})
    raw["bus"].update({"bootstrap": bootstrap, "namespace": namespace})
    raw.setdefault("map", {})["out_dir"] = str(out / "map")
    # The dataset's cameras, so the map service and the console place their markers.
    from streamer.dataset import Dataset

    ds = Dataset(dataset)
    raw["cameras"] = [{"id": v.camera_id, "source": str(ds.video_path(v)),
                       "position": v.position.model_dump(exclude_none=True)} for v in ds.videos]
    env_cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg, grid = load_config(env_cfg)

    forecast = _train_forecast(out, env_cfg, logs)

    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["score"] = _spawn(["score", "--config", str(env_cfg)], logs / "score.log")
        map_args = ["map", "--config", str(env_cfg), "--out", str(out / "map")]
        procs["map"] = _spawn(map_args + (["--forecast", str(forecast)] if forecast else []), logs / "map.log")
        _say(f"started imminence score (pid {procs['score'].pid}) and imminence map (pid {procs['map'].pid}); "
             f"logs in {logs}")

        watch_bus = KafkaBus(cfg.bus)
        watcher = watch_bus.subscribe([TOPIC_INDICATORS, TOPIC_CELLS, TOPIC_MAPS, TOPIC_CAMERAS, TOPIC_SITUATIONS],
                                      group=None,
                                      from_beginning=True)
        # Every message seen is also logged, so `imminence web --from` can explain cells afterwards.
        (out / "map").mkdir(parents=True, exist_ok=True)
        message_log = open(out / "map" / "messages.jsonl", "wb")
        bus = KafkaBus(cfg.bus)
        speed = None if args.speed == "max" else float(args.speed)
        _say(f"replaying {dataset.name} at speed {args.speed} through the camera workers")
        summary = replay_dataset(dataset, bus, cfg, grid, speed)
        bus.close(60)
        print(summary.table(), flush=True)
        if summary.failed:
            _say(f"cameras that failed: {summary.failed}")

        # Wait by content: every published event counted in a cell window (or the scorer quiet for
        # QUIET_S after the last one, for events it skips on purpose), then a map newer than every cell update.
        published: set[str] = set()
        cell_latest: dict[tuple[str, datetime], CellImminence] = {}  # the highest revision per (cell, window)
        last_map: MapSnapshot | None = None
        situations: dict[str, str] = {}  # situation id -> its latest type (new, update, end)
        counts: Counter = Counter()
        deadline = time.monotonic() + args.timeout
        last_cell_at = time.monotonic()
        while time.monotonic() < deadline:
            for rec in watcher.poll(timeout=0.5, max_records=1000):
                counts[rec.topic] += 1
                ev = rec.event
                if rec.topic != TOPIC_MAPS:  # snapshots are on disk already, as map.geojson
                    message_log.write(encode(ev) + b"\n")
                if rec.topic == TOPIC_INDICATORS:
                    published.add(ev.event_id)
                elif rec.topic == TOPIC_CELLS:
                    last_cell_at = time.monotonic()
                    keep_latest(cell_latest, ev)
                elif rec.topic == TOPIC_MAPS:
                    last_map = ev
                elif rec.topic == TOPIC_SITUATIONS:
                    situations[ev.situation_id] = ev.type
            counted = {e for c in cell_latest.values() for e in c.event_ids}
            scored = len(published) >= summary.events and (
                published <= counted or time.monotonic() - last_cell_at > QUIET_S)
            newest_cell = max((c.produced_at for c in cell_latest.values()), default=None)
            if scored and last_map is not None and newest_cell is not None and last_map.created_at > newest_cell:
                break
            for name, p in procs.items():
                if p.poll() is not None:
                    _say(f"imminence {name} exited early with status {p.returncode}; see {logs / (name + '.log')}")
                    return 1
        else:
            _say(f"timed out after {args.timeout:.0f}s: {len(published)}/{summary.events} events seen, "
                 f"{len(cell_latest)} cell windows, last map {'yes' if last_map else 'none'}")
        message_log.close()
        watcher.close()
        watch_bus.close(5)
    finally:
        for name, p in procs.items():
            _stop(p, name)
        if broker is not None:
            broker.stop()

    counted = {e for c in cell_latest.values() for e in c.event_ids}
    print()
    _say("what arrived on the topics (namespace %s):" % namespace)
    for topic in (TOPIC_INDICATORS, TOPIC_CELLS, TOPIC_MAPS, TOPIC_CAMERAS, TOPIC_SITUATIONS):
        print(f"    {topic:<24}{counts[topic]:>8} messages")
    ended = sum(t == "end" for t in situations.values())
    print(f"    situations: {len(situations)} followed, {ended} ended")
    concepts: Counter = Counter()
    for c in cell_latest.values():
        concepts.update(c.concept_counts)
    print(f"    indicator events counted in cell imminence: {len(published & counted)}/{len(published)}")
    print(f"    concepts in the cell windows: {dict(concepts.most_common())}")
    flagged = [(c.cell_id, t, v) for c in cell_latest.values() for t, v in c.imminence.items() if c.flags.get(t)]
    print(f"    cell windows flagged imminent (>= threshold): {len(flagged)}")
    if last_map is not None:
        print()
        _say("hottest cells of the merged map (live imminence x forecast):")
        for crime, layer in last_map.layers.items():
            tops = ", ".join(f"{t.cell_id}={t.value:.3f}(class {t.cls})" for t in layer.top_cells[:3])
            print(f"    {crime:<9} {tops}")
    map_dir = out / "map"
    files = sorted(p.name for p in map_dir.glob("*")) if map_dir.exists() else []
    print()
    _say(f"map files in {map_dir}: {', '.join(files) or 'none'}")
    _say(f"done in {time.monotonic() - t_start:.0f}s. Open the console on these results with:")
    print(f"    .venv/bin/imminence web --from {map_dir} --config {env_cfg}")
    ok = last_map is not None and any(f.endswith(".png") for f in files) and any(f.endswith(".geojson") for f in files)
    return 0 if ok else 1

