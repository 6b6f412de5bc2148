"""Benchmark the durable outbox (issue 12 figures): append cost per fsync policy, worker fps durable vs memory.

1. Cost of one ``publish`` of a real encoded IndicatorEvent into the outbox, per
   policy: the in-memory outbox (KafkaBus without ``durable``), and the SQLite
   outbox with ``fsync`` = ``always`` (every record), ``interval`` (100 ms) and
   ``off``.  Measured as the time ``publish`` takes in the caller's thread (what
   the frame loop pays), with the broker away so no acknowledgement removes rows
   meanwhile: median and 99th percentile per event, and events/s.
2. Worker frames/s on one generated camera (every frame analysed, full decode
   speed, clips of 0.2 s so an event is published every few frames) through the
   embedded broker, with the in-memory outbox and with the durable one at each
   policy, on the same video in the same process run.

Run: .venv/bin/python bench/bench_outbox.py [--events 2000] [--seconds 20] [--dir /tmp]
``--dir`` is where the outbox files go (the disk whose fsync is measured).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer import schemas  # noqa: E402
from streamer.broker import free_port  # noqa: E402
from streamer.kafka_bus import KafkaBus  # noqa: E402
from streamer.outbox import DurableOutbox  # noqa: E402

POLICIES = ("memory", "off", "interval", "always")


def _event(i: int) -> schemas.IndicatorEvent:
    t = datetime(2026, 5, 1, 21, tzinfo=timezone.utc)
    return schemas.IndicatorEvent(
        event_id=f"bench-{i}", camera_id="cam-b", cell_id="c-2-2", clip_index=i, clip_start=t, clip_end=t,
        stream_start_s=2.0 * i, stream_end_s=2.0 * i + 2, frame_first=10 * i, frame_last=10 * i + 9,
        captured_at=t, published_at=t, detections=schemas.DetectionSummary(frames=10),
        concept=schemas.ConceptResult(label="loitering", score=0.9))


def _durable(policy: str, folder: Path, name: str):
    if policy == "memory":
        return None
    return DurableOutbox(folder / f"{name}-{policy}.sqlite", fsync=policy, fsync_ms=100)


def bench_append(n: int, folder: Path) -> dict[str, dict]:
    """publish() cost per event with the broker away (nothing acknowledged meanwhile)."""
    out = {}
    events = [_event(i) for i in range(n)]
    for policy in POLICIES:
        bus = KafkaBus(f"127.0.0.1:{free_port()}", namespace="bench", durable=_durable(policy, folder, "append"),
                       outbox_size=n + 10, idempotence="off")
        times = []
        t_all = time.perf_counter()
        for e in events:
            t0 = time.perf_counter()
            bus.publish(schemas.TOPIC_INDICATORS, e)
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - t_all
        bus.close(timeout=0)
        times.sort()
        out[policy] = {"median_us": statistics.median(times) * 1e6, "p99_us": times[int(0.99 * (n - 1))] * 1e6,
                       "per_s": n / total}
    return out


def bench_worker_fps(seconds: float, folder: Path) -> dict[str, dict]:
    """Worker frames/s through the embedded broker, in-memory outbox vs durable at each policy."""
    from detectors.config import DetectorsConfig
    from streamer.broker import EmbeddedBroker
    from streamer.config import CameraConfig, Position
    from scenes.generate import generate_dataset
    from streamer.sources import FileSource
    from streamer.worker import CameraWorker

    data = Path(generate_dataset(folder / "scene", cameras=1, minutes=seconds / 60, seed=3, fps=10,
                                 size=(320, 180)))
    video = str(next(data.glob("*.mp4")))
    out = {}
    with EmbeddedBroker() as broker:
        for policy in POLICIES:
            bus = KafkaBus(broker.bootstrap, namespace=f"bench-{policy}", durable=_durable(policy, folder, "worker"),
                           idempotence="off")
            cam = CameraConfig(id="bench", source=video, position=Position(lon=-79.38, lat=43.65), fps=10,
                               clip_seconds=0.2, live=False)
            src = FileSource(video, speed=None)
            src.open()
            w = CameraWorker(cam, DetectorsConfig(), bus, source=src)
            c0, t0 = time.process_time(), time.perf_counter()
            s = w.run()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            ok = bus.flush(60)
            bus.close()
            out[policy] = {"fps": s.frames_analysed / wall, "cpu_fps": s.frames_analysed / max(cpu, 1e-9),
                           "events": s.events, "sent": bus.stats().sent, "flushed": ok}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the generated video")
    ap.add_argument("--dir", default=None, help="folder of the outbox files (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; outbox files in {folder}", flush=True)
        print("1/2 publish cost per event ...", flush=True)
        app = bench_append(args.events, folder)
        print("2/2 worker frames/s, in-memory vs durable outbox ...", flush=True)
        fps = bench_worker_fps(args.seconds, folder)
    print()
    print(f"{'outbox':<12}{'publish median us':>18}{'p99 us':>10}{'events/s':>11}{'worker fps':>12}"
          f"{'fps/CPU-s':>11}{'events sent':>13}")
    for p in POLICIES:
        a, f = app[p], fps[p]
        print(f"{p:<12}{a['median_us']:>18.1f}{a['p99_us']:>10.1f}{a['per_s']:>11.0f}{f['fps']:>12.1f}"
              f"{f['cpu_fps']:>11.1f}{f['sent']:>8d}/{f['events']:<4d}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (worker fps moves with the load; "
          "fps per CPU-second barely does)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
