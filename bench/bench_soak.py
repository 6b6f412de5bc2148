"""Soak: N replayed cameras through workers, scoring and the map for M minutes; memory and time slopes per hour.

    .venv/bin/python bench/bench_soak.py [--cameras 8] [--minutes 20] [--size 320x180]

``imminence replay`` plays N generated cameras in real time (one camera worker
each, in one process), ``imminence score`` and ``imminence map`` run as their
own processes on an embedded broker, and a reader collects every indicator,
cell and map message (the machinery of ``bench/bench_load.py``).  Every 10 s it
samples each process's resident memory (with its children) and, from the
replay's ``/metrics``, the tracks every camera's tracker holds (tracked + lost,
``imminence_tracker_tracks``), the mean per-frame time of the inference stage (detect,
track, features) and of decode (which, for a file played in real time,
includes waiting for the next frame's time) over the interval; the scoring
consumer lag too.  After a warm-up
(``--warmup`` minutes, excluded), least-squares slopes per hour are reported:
a flat pipeline has memory and per-frame time slopes near zero.  At the end
every clip is accounted for: clips the replay analysed, indicator events on the
topic, events counted in a cell window.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_load import (Collector, Run, _imminence, _lag, _metrics_url, _span, _stop, _subset,  # noqa: E402
                        drain, replay_clips)
from streamer.broker import EmbeddedBroker  # noqa: E402


def _rss_mb(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20
    except psutil.Error:
        return float("nan")


def _scrape(url: str) -> str:
    """A /metrics page ("" when the process does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def _stage_totals(text: str) -> dict[str, tuple[float, float]]:
    """(sum of seconds, calls) per stage from a /metrics page."""
    out: dict[str, list[float]] = {}
    for kind, stage, val in re.findall(r'^imminence_stage_seconds_(sum|count)\{stage="([^"]+)"\} (\S+)', text, re.M):
        out.setdefault(stage, [0.0, 0.0])[0 if kind == "sum" else 1] = float(val)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _tracker_tracks(text: str) -> float:
    """Tracks held by every camera's tracker (tracked + lost), from ``imminence_tracker_tracks``."""
    vals = re.findall(r'^imminence_tracker_tracks\{[^}]*\} (\S+)', text, re.M)
    return sum(float(v) for v in vals) if vals else float("nan")


def _slope_per_hour(t_s: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(t_s[ok] / 3600.0, y[ok], 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=20.0, help="footage per camera, played in real time")
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--warmup", type=float, default=2.0, help="minutes excluded from the slopes")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = ap.parse_args()
    from scenes.generate import generate_dataset, parse_size

    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    n = args.cameras
    print(f"generating {n} cameras x {args.minutes:g} min ({args.size}) in {work} ...", flush=True)
    dataset = Path(generate_dataset(work / "scene", cameras=n, minutes=args.minutes, seed=13, fps=10,
                                    size=parse_size(args.size)))
    broker = EmbeddedBroker(log_file=work / "tansu.log").start()
    ns = "soak"
    cfg = work / "cfg.yaml"
    cfg.write_text(f"bus: {{bootstrap: '{broker.bootstrap}', namespace: '{ns}'}}\n"
                   "grid: {bbox: [-79.405, 43.64, -79.37, 43.662], crs: lonlat, cell_size_m: 250}\n"
                   f"scoring: {{group: '{ns}-score', restore: false}}\n"
                   f"map: {{group: '{ns}-map', interval_s: 5, out_dir: '{work / 'map'}'}}\n")
    ds = _subset(dataset, n, work / "ds")
    run = Run(n, _span(ds, args.minutes * 60))
    procs = {"score": _imminence(["score", "--config", str(cfg)], work / "score.log"),
             "map": _imminence(["map", "--config", str(cfg)], work / "map.log")}
    samples: list[dict] = []
    try:
        score_url = _metrics_url(work / "score.log")
        _metrics_url(work / "map.log")
        collector = Collector(broker.bootstrap, ns, run)
        collector.start()
        time.sleep(4.0)
        procs["replay"] = _imminence(["replay", str(ds), "--config", str(cfg), "--speed", "1"], work / "replay.log")
        replay_url = _metrics_url(work / "replay.log")
        t0 = time.monotonic()
        last = _stage_totals(_scrape(replay_url))
        while procs["replay"].poll() is None:
            time.sleep(args.every)
            if procs["replay"].poll() is not None:
                break  # a sample of an exited process would read as a drop in memory
            page = _scrape(replay_url)
            now = _stage_totals(page)
            s = {"t": time.monotonic() - t0, "lag": _lag(score_url), "tracks": _tracker_tracks(page)}
            for name, p in procs.items():
                s[f"rss_{name}"] = _rss_mb(p.pid)
            for stage in ("decode", "inference"):
                d_sum = now.get(stage, (0, 0))[0] - last.get(stage, (0, 0))[0]
                d_cnt = now.get(stage, (0, 0))[1] - last.get(stage, (0, 0))[1]
                s[f"ms_{stage}"] = 1000 * d_sum / d_cnt if d_cnt > 0 else float("nan")
            if now:
                last = now
            samples.append(s)
            print(f"  {s['t'] / 60:5.1f} min  rss replay {s['rss_replay']:6.0f} MB score {s['rss_score']:5.0f} "
                  f"map {s['rss_map']:5.0f}  inference {s['ms_inference']:6.2f} ms/frame  tracks {s['tracks']:4.0f}  "
                  f"lag {s['lag']:.0f}",
                  flush=True)
        run.clips = replay_clips((work / "replay.out").read_text())
        drain(run, collector, 60)
    finally:
        for p in procs.values():
            _stop(p)
        broker.stop()
    t = np.array([s["t"] for s in samples])
    keep = t >= args.warmup * 60
    print(f"\n{n} cameras x {args.minutes:g} min in real time ({args.size}, 10 fps, analysed at 5 fps); "
          f"{len(samples)} samples, slopes after the first {args.warmup:g} min")
    print(f"{'quantity':<40}{'start':>10}{'end':>10}{'slope per hour':>16}")
    for key, unit in (("rss_replay", "MB"), ("rss_score", "MB"), ("rss_map", "MB"),
                      ("ms_decode", "ms/frame, incl. pacing"), ("ms_inference", "ms/frame"),
                      ("tracks", f"tracker state, {n} cameras"), ("lag", "records")):
        y = np.array([s[key] for s in samples], dtype=float)[keep]
        if not len(y):
            continue
        print(f"{key + ' (' + unit + ')':<40}{np.nanmean(y[:3]):>10.2f}{np.nanmean(y[-3:]):>10.2f}"
              f"{_slope_per_hour(t[keep], y):>16.2f}")
    lag = np.array([s["lag"] for s in samples])
    print(f"consumer lag max {np.nanmax(lag) if len(lag) else float('nan'):.0f} records")
    print(f"clips analysed {run.clips}, indicator events {len(run.events)}, counted in cell windows "
          f"{len(run.cell_first)}; unaccounted {run.clips - len(set(run.events) & set(run.cell_first))}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
