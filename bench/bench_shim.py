"""What the librdkafka shim in front of tansu costs: request latency and producer throughput, shim on and off.

Starts the embedded broker twice, with ``shim=False`` (clients on tansu
directly) and ``shim=True`` (clients through :mod:`streamer.kafka_shim`, the
default), and measures on each, with kafka-python:

* round trip of one acknowledged produce (acks=all), sent one at a time
  (median and p95 over ``--requests`` records): what the extra hop adds;
* records/s of a raw producer sending pre-encoded ~1 KB records (``--n``).

    .venv/bin/python bench/bench_shim.py [--requests 500] [--n 20000] [--repeat 2]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaProducer  # noqa: E402

from streamer.broker import EmbeddedBroker  # noqa: E402

VALUE = b'{"schema": "imminence.indicator/1", "pad": "' + b"x" * 1000 + b'"}'


def round_trips(bootstrap: str, topic: str, n: int) -> list[float]:
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    p.send(topic, b"warm-up").get(30)
    out = []
    for i in range(n):
        t = time.perf_counter()
        p.send(topic, key=b"k", value=VALUE).get(30)
        out.append(time.perf_counter() - t)
    p.close()
    return out


def throughput(bootstrap: str, topic: str, n: int) -> float:
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    p.send(topic, b"warm-up").get(30)
    t = time.perf_counter()
    for i in range(n):
        p.send(topic, key=b"cam%d" % (i % 8), value=VALUE)
    p.flush(300)
    rate = n / (time.perf_counter() - t)
    p.close()
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500, help="sequential acknowledged produces per run")
    ap.add_argument("--n", type=int, default=20_000, help="records per throughput run")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each setting (medians of the runs shown)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[bool, dict[str, list[float]]] = {}
    for rep in range(args.repeat):
        for shim in (False, True):  # alternate, so load changes hit both alike
            with EmbeddedBroker(shim=shim) as broker:
                rt = round_trips(broker.bootstrap, f"rt-{rep}", args.requests)
                rate = throughput(broker.bootstrap, f"tp-{rep}", args.n)
            r = results.setdefault(shim, {"p50": [], "p95": [], "rate": []})
            r["p50"].append(statistics.median(rt) * 1000)
            r["p95"].append(sorted(rt)[int(0.95 * len(rt)) - 1] * 1000)
            r["rate"].append(rate)
            print(f"run {rep + 1}/{args.repeat} shim={shim}: p50 {r['p50'][-1]:.2f} ms, p95 {r['p95'][-1]:.2f} ms, "
                  f"{rate:,.0f} records/s", file=sys.stderr)
    print(f"\nkafka-python -> embedded tansu, ~{len(VALUE)} byte records, acks=all; "
          f"{args.requests} sequential produces, {args.n} records for throughput\n")
    print(f"{'client path':<34}{'produce p50 ms':>16}{'p95 ms':>9}{'records/s':>12}")
    print("-" * 71)
    for shim, name in ((False, "tansu directly (no shim)"), (True, "through the shim (default)")):
        r = results[shim]
        print(f"{name:<34}{statistics.median(r['p50']):>16.2f}{statistics.median(r['p95']):>9.2f}"
              f"{statistics.median(r['rate']):>12,.0f}")
    d, s = results[False], results[True]
    print(f"\nshim adds {statistics.median(s['p50']) - statistics.median(d['p50']):+.2f} ms at the median; "
          f"throughput {100 * (statistics.median(s['rate']) / statistics.median(d['rate']) - 1):+.0f} %")
    print(f"{args.repeat} runs each; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(a shared machine: figures are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
