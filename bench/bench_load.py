"""Load test: N simulated cameras through the whole pipeline on one machine.

    .venv/bin/python bench/bench_load.py [--cameras 1,2,4,8] [--seconds 30] [--size 320x180] [--speed 1]

For each N an embedded broker (tansu) carries a fresh namespace; ``imminence
score`` and ``imminence map`` run as real processes, and ``imminence replay``
plays N generated scene cameras (``imminence scene generate``) at ``--speed``
(1 = real time), as N camera workers would.  A reader thread collects every
IndicatorEvent, CellImminence and MapSnapshot; the scoring service's
``/metrics`` is scraped every second for its consumer lag.

Reported per N:

* ``keeps up``: the slowest camera's play time was no more than 10% longer
  than the recording span at this speed (the replay runs every camera on one
  recording clock, from the earliest start to the latest end; a worker that
  analyses slower than real time falls behind);
* events/s: indicator events per second of replay;
* lag: the largest scoring consumer lag seen (records, from its
  ``imminence_consumer_lag`` gauge, refreshed every 5 s; approximate, see
  DESIGN.md: tansu's end offsets can trail);
* backlog: the most indicator events seen on the topic but not yet in any
  cell message, sampled every second (an end-to-end lag in events);
* latency, clip end -> cell: the first CellImminence holding the event id,
  ``produced_at - captured_at`` (captured_at: wall time the clip's last frame
  was decoded);
* latency, clip end -> map: the first MapSnapshot created after that cell
  message (an upper bound on when the map service had it).

The largest N that keeps up is printed last.  Figures depend on the machine
and on what else runs on it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamer import schemas  # noqa: E402
from streamer.broker import EmbeddedBroker  # noqa: E402
from streamer.kafka_bus import KafkaBus  # noqa: E402


@dataclass
class Run:
    cameras: int
    footage_s: float
    elapsed_s: float = 0.0
    clips: int = 0
    events: dict = field(default_factory=dict)  # event id -> captured_at (unix s)
    cell_first: dict = field(default_factory=dict)  # event id -> produced_at of its first cell message
    snapshots: list = field(default_factory=list)  # created_at (unix s), sorted
    max_lag: float = 0.0
    max_backlog: int = 0  # events on the indicators topic not yet in any cell message (sampled each second)
    dropped: int = 0

    @property
    def keeps_up(self) -> bool:
        return self.elapsed_s <= self.footage_s * 1.10

    def latencies(self) -> tuple[np.ndarray, np.ndarray]:
        cell, snap = [], []
        snaps = np.asarray(sorted(self.snapshots))
        for eid, produced in self.cell_first.items():
            cap = self.events.get(eid)
            if cap is None:
                continue
            cell.append(produced - cap)
            i = int(np.searchsorted(snaps, produced))
            if i < len(snaps):
                snap.append(snaps[i] - cap)
        return np.asarray(cell), np.asarray(snap)


def _pct(a: np.ndarray, q: float) -> str:
    return f"{np.percentile(a, q):.2f}" if len(a) else "-"


class Collector(threading.Thread):
    """Read indicators, cells and maps of one namespace into a :class:`Run`."""

    def __init__(self, bootstrap: str, ns: str, run: Run) -> None:
        super().__init__(daemon=True)
        self.bus = KafkaBus(bootstrap, namespace=ns)
        self.sub = self.bus.subscribe([schemas.TOPIC_INDICATORS, schemas.TOPIC_CELLS, schemas.TOPIC_MAPS], None,
                                      from_beginning=True)
        self.run_ = run
        self.stop = threading.Event()
        self.last_msg = time.monotonic()

    def run(self) -> None:
        r = self.run_
        while not self.stop.is_set():
            for rec in self.sub.poll(timeout=0.3, max_records=1000):
                self.last_msg = time.monotonic()
                m = rec.event
                if isinstance(m, schemas.IndicatorEvent):
                    r.events.setdefault(m.event_id, m.captured_at.timestamp())
                elif isinstance(m, schemas.CellImminence):
                    t = m.produced_at.timestamp()
                    for eid in m.event_ids:
                        r.cell_first.setdefault(eid, t)
                elif isinstance(m, schemas.MapSnapshot):
                    r.snapshots.append(m.created_at.timestamp())
        self.sub.close()
        self.bus.close(5)


def _imminence(args: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "imminence.cli", "--metrics-port", "0", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=open(log.with_suffix(".out"), "w"), stderr=open(log, "w"),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)


def _metrics_url(log: Path, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"metrics: (http://[\d.]+:\d+)/metrics", log.read_text(errors="replace"))
        if m:
            return m.group(1) + "/metrics"
        time.sleep(0.2)
    raise RuntimeError(f"no metrics line in {log}: {log.read_text()[-2000:]}")


def _lag(url: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    vals = [float(m.group(1)) for m in re.finditer(r'^imminence_consumer_lag\{[^}]*topic="imminence\.indicators"[^}]*\} (\S+)',
                                                   text, re.M)]
    return sum(vals)


def _subset(dataset: Path, n: int, out: Path) -> Path:
    """A dataset folder with the first n cameras, all starting at once (files copied: manifest paths may not
    leave their folder)."""
    import json

    man = json.loads((dataset / "manifest.json").read_text())
    man["videos"] = man["videos"][:n]
    for v in man["videos"]:  # N cameras recording at the same time, as a live deployment has them
        v["start"] = man["videos"][0]["start"]
    out.mkdir(parents=True, exist_ok=True)
    for v in man["videos"]:
        for key in ("file", "annotations"):
            if v.get(key):
                shutil.copy(dataset / v[key], out / v[key])
    (out / "manifest.json").write_text(json.dumps(man, indent=1))
    return out


def _span(dataset: Path, seconds: float) -> float:
    """Recording time the replay covers: from the earliest camera start to the latest end (one shared clock)."""
    import json
    from datetime import datetime

    starts = [datetime.fromisoformat(v["start"].replace("Z", "+00:00")).timestamp()
              for v in json.loads((dataset / "manifest.json").read_text())["videos"]]
    return max(starts) - min(starts) + seconds


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def replay_clips(out: str) -> int:
    """Clips ``imminence replay`` analysed, from its summary table (0 when it printed none)."""
    m = re.search(r"total: \d+ camera\(s\), (\d+) clips", out)
    return int(m.group(1)) if m else 0


def drain(run: Run, collector: Collector, seconds: float, tick: Optional[Callable[[], None]] = None) -> None:
    """Wait up to ``seconds`` until every event is scored (and the topics quiet for 3 s), then stop ``collector``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if len(run.cell_first) >= len(run.events) >= run.clips and time.monotonic() - collector.last_msg > 3:
            break
        time.sleep(0.5)
    collector.stop.set()
    collector.join(10)


def run_one(n: int, dataset: Path, work: Path, bootstrap: str, footage_s: float, speed: float) -> Run:
    ns = f"load{n}-{os.getpid()}"
    cfg = work / f"cfg{n}.yaml"
    cfg.write_text(f"bus: {{bootstrap: '{bootstrap}', namespace: '{ns}'}}\n"
                   "grid: {bbox: [-79.405, 43.64, -79.37, 43.662], crs: lonlat, cell_size_m: 250}\n"
                   f"scoring: {{group: '{ns}-score', restore: false}}\n"
                   f"map: {{group: '{ns}-map', interval_s: 5, out_dir: '{work / f'map{n}'}'}}\n")
    ds = _subset(dataset, n, work / f"ds{n}")
    run = Run(n, _span(ds, footage_s) / speed)
    procs = [_imminence(["score", "--config", str(cfg)], work / f"score{n}.log"),
             _imminence(["map", "--config", str(cfg)], work / f"map{n}.log")]
    try:
        score_url = _metrics_url(work / f"score{n}.log")
        _metrics_url(work / f"map{n}.log")
        collector = Collector(bootstrap, ns, run)
        collector.start()
        time.sleep(4.0)  # group joins take a few seconds on tansu
        t0 = time.monotonic()
        replay = _imminence(["replay", str(ds), "--config", str(cfg), "--speed", f"{speed:g}"], work / f"replay{n}.log")
        while replay.poll() is None:
            run.max_lag = max(run.max_lag, _lag(score_url))
            run.max_backlog = max(run.max_backlog, len(run.events) - len(run.cell_first))
            time.sleep(1.0)
        out = (work / f"replay{n}.out").read_text()
        run.clips = replay_clips(out)
        b = re.search(r"bus: \d+ records acknowledged, (\d+) dropped", out)
        run.dropped = int(b.group(1)) if b else -1
        # elapsed: the slowest camera's own play time (process and detector start-up excluded)
        per_cam = [float(x) for x in re.findall(r"^\S+\s+\d+\s+\d+\s+\d+\s+\d+\s+([\d.]+)$", out, re.M)]
        run.elapsed_s = max(per_cam) if per_cam else time.monotonic() - t0
        drain(run, collector, 30, tick=lambda: setattr(run, "max_lag", max(run.max_lag, _lag(score_url))))
    finally:
        for p in procs:
            _stop(p)
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", default="1,2,4,8", help="comma-separated camera counts")
    ap.add_argument("--seconds", type=float, default=30.0, help="footage per camera (bounds each run)")
    ap.add_argument("--size", default="320x180", help="frame size of the generated cameras")
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = real time)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, maps)")
    args = ap.parse_args()
    counts = [int(x) for x in args.cameras.split(",")]
    from scenes.generate import generate_dataset, parse_size

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    print(f"generating {max(counts)} cameras x {args.seconds:g} s ({args.size}) in {work} ...", flush=True)
    dataset = Path(generate_dataset(work / "scene", cameras=max(counts), minutes=args.seconds / 60.0, seed=11,
                                    fps=10, size=parse_size(args.size)))
    broker = EmbeddedBroker(log_file=work / "tansu.log").start()
    runs = []
    try:
        for n in counts:
            print(f"N={n}: replaying {n} camera(s) at speed {args.speed:g} ...", flush=True)
            runs.append(run_one(n, dataset, work, broker.bootstrap, args.seconds, args.speed))
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'N':>3} {'keeps up':>9} {'elapsed/footage':>16} {'clips':>6} {'events':>7} {'ev/s':>6} {'scored':>7} "
          f"{'lag max':>8} {'backlog':>8} {'cell p50/p95/p99 s':>20} {'map p50/p95 s':>15} {'dropped':>8}")
    for r in runs:
        cell, snap = r.latencies()
        print(f"{r.cameras:>3} {('yes' if r.keeps_up else 'NO'):>9} {r.elapsed_s:7.1f}/{r.footage_s:<7.1f} "
              f"{r.clips:>6} {len(r.events):>7} {len(r.events) / max(r.elapsed_s, 1e-9):>6.2f} "
              f"{len(r.cell_first):>7} {r.max_lag:>8.0f} {r.max_backlog:>8} "
              f"{_pct(cell, 50):>6}/{_pct(cell, 95)}/{_pct(cell, 99):<6} {_pct(snap, 50):>7}/{_pct(snap, 95):<6} "
              f"{r.dropped:>8}")
    ok = [r.cameras for r in runs if r.keeps_up and r.dropped == 0 and len(r.cell_first) >= r.clips]
    print(f"\nlargest N that keeps up in real time (speed {args.speed:g}): {max(ok) if ok else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
