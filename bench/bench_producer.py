"""Events per second one producer publishes to the embedded broker: KafkaBus against raw kafka-python.

Messages are IndicatorEvents with concept scores, counts and tracks (about
1 KB of JSON each).  Rates count acknowledged records (acks=all): publish N,
then flush; "caller" is the rate at which ``publish`` returns, i.e. what a
frame loop sees.  Starts its own tansu broker unless ``--bootstrap`` is given.

    .venv/bin/python bench/bench_producer.py [--n 20000] [--repeat 3] [--bootstrap HOST:PORT]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaProducer  # noqa: E402

from streamer import schemas  # noqa: E402
from streamer.broker import EmbeddedBroker  # noqa: E402
from streamer.kafka_bus import KafkaBus  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_event(i: int) -> schemas.IndicatorEvent:
    start = T0 + timedelta(seconds=2 * i)
    scores = {c: round(0.1 + 0.08 * k, 3) for k, c in enumerate(schemas.CONCEPTS)}
    return schemas.IndicatorEvent(
        event_id=f"cam{i % 8}:{i}:{uuid.uuid4().hex[:8]}", camera_id=f"cam{i % 8}", cell_id=f"r{i % 40}c{i % 37}",
        clip_index=i, clip_start=start, clip_end=start + timedelta(seconds=2), stream_start_s=2.0 * i,
        stream_end_s=2.0 * i + 2, frame_first=10 * i, frame_last=10 * i + 9, captured_at=start,
        lon=-79.38, lat=43.65,
        detections=schemas.DetectionSummary(frames=10, counts={"person": 2.4, "car": 0.3, "backpack": 0.1},
                                            max_counts={"person": 4, "car": 1, "backpack": 1},
                                            tracks=[f"cam{i % 8}:{t}" for t in range(5)], motion=0.042,
                                            frames_with_person=9),
        concept=schemas.ConceptResult(label="loitering", score=0.81, scores=scores, gmcp_objective=12.5, window=8),
        models={"detector": "opencv-hog-4.14", "concepts": "none", "gmcp": "pulp-3.3.2"},
    )


def bench_bus(bootstrap: str, events: list, ns: str) -> tuple[float, float]:
    bus = KafkaBus(bootstrap, namespace=ns, outbox_size=len(events) + 1)
    bus.ensure_topics([schemas.TOPIC_INDICATORS])
    bus.publish(schemas.TOPIC_INDICATORS, events[0])  # connect before timing
    bus.flush(30)
    t = time.perf_counter()
    for e in events:
        bus.publish(schemas.TOPIC_INDICATORS, e)
    caller = time.perf_counter() - t
    assert bus.flush(300), bus.stats()
    total = time.perf_counter() - t
    s = bus.stats()
    assert s.sent == len(events) + 1 and s.dropped == 0, s
    bus.close()
    return len(events) / caller, len(events) / total


def bench_raw(bootstrap: str, events: list, topic: str, encode: bool) -> float:
    payloads = None if encode else [(e.camera_id.encode(), schemas.encode(e)) for e in events]
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    p.send(topic, b"warm-up").get(30)
    t = time.perf_counter()
    if encode:
        for e in events:
            p.send(topic, key=e.camera_id.encode(), value=schemas.encode(e))
    else:
        for k, v in payloads:
            p.send(topic, key=k, value=v)
    p.flush(300)
    rate = len(events) / (time.perf_counter() - t)
    p.close()
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="events per run")
    ap.add_argument("--bootstrap", default=None, help="an existing broker (default: start tansu)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each path (best and median shown)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    broker = None if args.bootstrap else EmbeddedBroker().start()
    bootstrap = args.bootstrap or broker.bootstrap
    try:
        events = [make_event(i) for i in range(args.n)]
        size = sum(len(schemas.encode(e)) for e in events[:100]) / 100
        runs = []
        for rep in range(args.repeat):
            ns = f"bench-{uuid.uuid4().hex[:6]}"
            bus_caller, bus_acked = bench_bus(bootstrap, events, ns)
            raw_pre = bench_raw(bootstrap, events, f"{ns}.raw", encode=False)
            raw_enc = bench_raw(bootstrap, events, f"{ns}.raw-enc", encode=True)
            runs.append((bus_caller, bus_acked, raw_enc, raw_pre))
            print(f"run {rep + 1}/{args.repeat}: " + ", ".join(f"{r:,.0f}" for r in runs[-1]), file=sys.stderr)
    finally:
        if broker is not None:
            broker.stop()
    print(f"\nproducer -> {'tansu (embedded)' if broker else bootstrap}, {args.n} IndicatorEvents "
          f"of ~{size:.0f} bytes, acks=all, linger 10 ms (KafkaBus), 5 ms (raw)\n")
    names = ["KafkaBus.publish, caller side (returns)", "KafkaBus.publish + flush (acknowledged)",
             "raw kafka-python send, encode included", "raw kafka-python send, pre-encoded bytes"]
    print(f"{'path':<44}{'best events/s':>14}{'median':>10}")
    print("-" * 68)
    for i, name in enumerate(names):
        rates = sorted(r[i] for r in runs)
        print(f"{name:<44}{rates[-1]:>14,.0f}{rates[len(rates) // 2]:>10,.0f}")
    print(f"\n{args.repeat} runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(a shared machine: figures are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
