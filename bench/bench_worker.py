"""Benchmark the camera worker (issue 2 figures): speed, cameras per machine, latency, people found.

1. frames/s of one worker on vtest.avi with the default OpenCV detector, every
   frame analysed, decode included (FileSource at full speed, InMemoryBus), in
   wall time and per CPU-second (the latter barely depends on what else the
   machine runs, so it is the figure to compare on a shared machine);
2. share of vtest.avi frames in which the detector found at least one person
   (same run);
3. cameras at 5 analysed frames/s one machine sustains: N worker processes, each
   a camera paced in real time (vtest.avi at its 10 fps), for ``--seconds``; a
   camera keeps up when its analysed rate is >= 95% of 5 fps and its stream is
   less than 1 s behind the wall clock at the end; the largest N where every
   camera keeps up is reported (N = 1, 2, 3, 4, 6, 8 tried, stopping at the
   first failure).  On a machine shared with other work this figure is
   unreliable (more processes win a larger share of the CPU), so a projection
   from CPU time is printed beside it;
4. latency from a frame's capture (decode of a clip's last frame: the event's
   ``captured_at``) to the event being read by a subscriber, through the
   embedded broker (tansu) with the KafkaBus: median and 95th percentile, clips
   of 1 s.

Run: .venv/bin/python bench/bench_worker.py [--video PATH] [--seconds 15] [--max-cameras 8]
Numbers depend on the machine and its load; the table says how many cores it had.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.config import DetectorsConfig  # noqa: E402
from streamer import schemas  # noqa: E402
from streamer.bus import InMemoryBus  # noqa: E402
from streamer.config import CameraConfig, Position  # noqa: E402
from streamer.sources import FileSource  # noqa: E402
from streamer.worker import CameraWorker  # noqa: E402

DEFAULT_VIDEO = "/work/shared/data/vtest.avi"


def camera(video: str, fps: float, clip_seconds: float = 2.0, cid: str = "bench") -> CameraConfig:
    return CameraConfig(id=cid, source=video, position=Position(lon=-79.38, lat=43.65), fps=fps,
                        clip_seconds=clip_seconds, live=False)


def bench_speed(video: str) -> dict:
    """One worker, every frame analysed, as fast as it decodes."""
    src = FileSource(video, speed=None)
    src.open()
    fps = src.native_fps or 10.0
    bus = InMemoryBus()
    w = CameraWorker(camera(video, fps), DetectorsConfig(), bus, source=src)
    t0, c0 = time.perf_counter(), time.process_time()
    s = w.run()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    events = bus.records(schemas.TOPIC_INDICATORS)
    with_person = sum(e.detections.frames_with_person for e in events)
    analysed = sum(e.detections.frames for e in events)
    return {"frames": s.frames_read, "analysed": s.frames_analysed, "seconds": dt, "fps": s.frames_analysed / dt,
            "cpu_fps": s.frames_analysed / cpu,
            "person_share": with_person / analysed if analysed else 0.0,
            "mean_people": (sum(e.detections.counts.get("person", 0) * e.detections.frames for e in events)
                            / analysed if analysed else 0.0)}


def bench_decode(video: str) -> float:
    """Frames decoded per CPU-second (no analysis): the cost of the frames a camera skips."""
    import cv2

    cap = cv2.VideoCapture(video)
    n, c0 = 0, time.process_time()
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / max(1e-9, time.process_time() - c0)


def _paced_camera(video: str, seconds: float, idx: int, out: "mp.Queue") -> None:
    src = FileSource(video, speed=1.0)
    w = CameraWorker(camera(video, 5.0, cid=f"cam{idx}"), DetectorsConfig(), InMemoryBus(), source=src)
    last = {"t": 0.0}
    orig = src.read

    def read(timeout: float = 1.0):
        f = orig(timeout)
        if f is not None:
            last["t"] = f.t
        return f

    src.read = read  # type: ignore[method-assign]  # observe stream time as the worker reads it
    timer = threading.Timer(seconds, w.stop)
    t0 = time.monotonic()
    timer.start()
    s = w.run()
    elapsed = time.monotonic() - t0
    out.put({"analysed_fps": s.frames_analysed / elapsed, "behind_s": elapsed - last["t"]})


def bench_cameras(video: str, seconds: float, max_cameras: int) -> tuple[int, list[tuple[int, float, float]]]:
    ctx = mp.get_context("spawn")
    best, rows = 0, []
    for n in [k for k in (1, 2, 3, 4, 6, 8, 12, 16) if k <= max_cameras]:
        q = ctx.Queue()
        procs = [ctx.Process(target=_paced_camera, args=(video, seconds, i, q), name=f"bench:cam{i}")
                 for i in range(n)]
        for p in procs:
            p.start()
        results = [q.get(timeout=seconds + 120) for _ in procs]
        for p in procs:
            p.join(30)
        worst_fps = min(r["analysed_fps"] for r in results)
        worst_behind = max(r["behind_s"] for r in results)
        rows.append((n, worst_fps, worst_behind))
        print(f"  {n} camera(s): slowest {worst_fps:.2f} analysed fps, furthest {worst_behind:.2f} s behind",
              flush=True)
        if worst_fps >= 0.95 * 5.0 * (seconds - 1) / seconds and worst_behind < 1.0:
            best = n
        else:
            break
    return best, rows


def bench_latency(video: str, seconds: float) -> dict:
    from streamer.broker import EmbeddedBroker
    from streamer.kafka_bus import KafkaBus

    with EmbeddedBroker() as broker:
        bus = KafkaBus(broker.bootstrap, namespace="bench")
        bus.ensure_topics(schemas.TOPICS)
        sub_bus = KafkaBus(broker.bootstrap, namespace="bench", create_topics=False)
        sub = sub_bus.subscribe([schemas.TOPIC_INDICATORS], from_beginning=True)
        sub.poll(timeout=3.0)  # join before the first event
        lat: list[float] = []
        stop = threading.Event()

        def consume() -> None:
            while not stop.is_set():
                for r in sub.poll(timeout=0.2):
                    lat.append((datetime.now(timezone.utc) - r.event.captured_at).total_seconds())

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        w = CameraWorker(camera(video, 5.0, clip_seconds=1.0), DetectorsConfig(), bus,
                         source=FileSource(video, speed=1.0))
        threading.Timer(seconds, w.stop).start()
        s = w.run()
        time.sleep(2.0)
        stop.set()
        reader.join(5)
        sub.close()
        bus.close()
        sub_bus.close()
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else float("nan")
    return {"events": s.events, "received": len(lat), "median": statistics.median(lat) if lat else float("nan"),
            "p95": p95}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=DEFAULT_VIDEO)
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each paced trial")
    ap.add_argument("--max-cameras", type=int, default=8)
    args = ap.parse_args()
    if not Path(args.video).exists():
        print(f"bench_worker: {args.video}: no such video", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} cores; video {args.video}", flush=True)
    print("1/3 one worker, every frame ...", flush=True)
    speed = bench_speed(args.video)
    decode_cpu_fps = bench_decode(args.video)
    print("2/3 paced cameras at 5 analysed fps ...", flush=True)
    cams, _rows = bench_cameras(args.video, args.seconds, args.max_cameras)
    print("3/3 capture -> subscriber latency through the embedded broker ...", flush=True)
    lat = bench_latency(args.video, args.seconds * 2)
    print()
    print(f"{'figure':<62}{'value':>14}")
    print(f"{'worker frames/s on vtest.avi (default detector, decode incl.)':<62}{speed['fps']:>14.1f}")
    print(f"{'  frames analysed / seconds':<62}{speed['analysed']:>7d} / {speed['seconds']:<5.1f}")
    print(f"{'  frames per CPU-second (all threads; load-independent)':<62}{speed['cpu_fps']:>14.1f}")
    print(f"{'  load average (1 min) during the run':<62}{os.getloadavg()[0]:>14.1f}")
    print(f"{'share of vtest.avi frames with >= 1 person':<62}{speed['person_share']:>14.1%}")
    print(f"{'  mean people per frame':<62}{speed['mean_people']:>14.2f}")
    print(f"{'cameras at 5 analysed fps sustained (this machine, as loaded)':<62}{cams:>14d}")
    # a paced camera decodes every frame (10 fps for vtest) and analyses 5 of them per second
    native = 10.0
    per_camera_cpu = 5.0 / speed["cpu_fps"] + (native - 5.0) / decode_cpu_fps
    print(f"{'  projected for 2 idle cores from CPU time':<62}{2 / per_camera_cpu:>14.0f}")
    print(f"{'capture -> subscriber latency, median (s)':<62}{lat['median']:>14.3f}")
    print(f"{'capture -> subscriber latency, p95 (s)':<62}{lat['p95']:>14.3f}")
    print(f"{'  events published / received':<62}{lat['events']:>7d} / {lat['received']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
