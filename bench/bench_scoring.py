"""Scoring-service figures on the embedded broker (tansu) and checking error of the crime models.

1. Throughput: N indicator events are published first, then one ScoringService
   (KafkaBus, consumer group) consumes, aggregates, scores the four ANFIS
   systems and publishes CellImminence; events per second from its first
   received record to the last flush+commit (group join excluded).
2. Lag: events published live at a fixed rate; a separate consumer of
   imminence.cells notes, per event id, when the first cell message counting
   it arrives; lag = that time - the event's publication time (median, p95).
   The service publishes changed windows every ``emit_interval_s`` (0.5 s).
3. Crime models: trained on generated ground truth (inference.synthetic, the
   bundled-defaults settings); checking RMSE of each against a baseline that
   predicts the training mean.

    .venv/bin/python bench/bench_scoring.py [--events 20000] [--rate 1000] [--seconds 10]

Everything (broker, producer, service, cell reader) shares the machine's cores,
so the figures are a lower bound for a dedicated service.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.config import ScoringConfig  # noqa: E402
from inference.crime_models import default_models_dir, load_models  # noqa: E402
from inference.service import ScoringService  # noqa: E402
from inference.synthetic import generate_records, to_events  # noqa: E402
from streamer.broker import EmbeddedBroker  # noqa: E402
from streamer.kafka_bus import KafkaBus  # noqa: E402
from streamer.schemas import TOPIC_CELLS, TOPIC_INDICATORS, utcnow  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def throughput(bootstrap: str, models, n: int) -> dict:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    hours = n / 16 / 1800
    events = sorted(to_events(generate_records(cells=16, hours=hours, seed=5)), key=lambda e: e.clip_start)[:n]
    prod = KafkaBus(bootstrap, namespace=ns, outbox_size=2 * n + 100)
    t = time.perf_counter()
    for e in events:
        prod.publish(TOPIC_INDICATORS, e)
    prod.flush(120)
    pub_s = time.perf_counter() - t
    prod.close(5)
    bus = KafkaBus(bootstrap, namespace=ns, max_poll_records=2000)
    cfg = ScoringConfig(allowed_lateness_s=1e7, restore_idle_s=1.0, max_poll_records=2000, emit_interval_s=0.5,
                        group=f"{ns}-score")
    svc = ScoringService(bus, models, cfg)
    sub = svc.open()
    first = None
    deadline = time.monotonic() + 300
    while svc.stats()["events"]["in"] < len(events) and time.monotonic() < deadline:
        recs = sub.poll(timeout=0.5, max_records=2000)
        if recs and first is None:
            first = time.perf_counter()
        svc.process(recs)
        svc.follow()  # the service reads its own output back too (restart and multi-instance merging)
        if time.monotonic() - svc._last_emit >= cfg.emit_interval_s:
            svc.emit()
    svc.emit()
    elapsed = time.perf_counter() - first
    stats = svc.stats()
    sub.close()
    bus.close(5)
    return {"events": len(events), "seconds": elapsed, "rate": len(events) / elapsed,
            "cells_published": stats["cells_published"], "publish_rate": len(events) / pub_s,
            "counted": stats["events"]["added"] + stats["events"]["late"]}


def lag(bootstrap: str, models, rate: float, seconds: float) -> dict:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    n = int(rate * seconds)
    hours = n / 16 / 1800 + 0.01
    start = datetime.now(timezone.utc) - timedelta(hours=hours, minutes=1)  # a replay: all in the past
    events = sorted(to_events(generate_records(cells=16, hours=hours, seed=6, start=start)),
                    key=lambda e: e.clip_start)[:n]
    bus = KafkaBus(bootstrap, namespace=ns)
    cfg = ScoringConfig(allowed_lateness_s=1e7, restore_idle_s=1.0, emit_interval_s=0.5, group=f"{ns}-score")
    svc = ScoringService(bus, models, cfg)
    svc.open()
    worker = threading.Thread(target=svc.run, kwargs={"poll_timeout_s": 0.05}, daemon=True)
    worker.start()
    reader_bus = KafkaBus(bootstrap, namespace=ns)
    cells = reader_bus.subscribe([TOPIC_CELLS], None, from_beginning=True)
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for r in cells.poll(timeout=0.2, max_records=1000):
                now = time.time()
                for i in r.event.event_ids:
                    seen.setdefault(i, now)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    prod = KafkaBus(bootstrap, namespace=ns, outbox_size=2 * n + 100)
    # wait for the group join: one probe event must come through before timing starts
    probe = events[0]
    prod.publish(TOPIC_INDICATORS, probe.model_copy(update={"published_at": utcnow()}))
    deadline = time.monotonic() + 60
    while probe.event_id not in seen and time.monotonic() < deadline:
        time.sleep(0.1)
    t0 = time.perf_counter()
    for k, e in enumerate(events[1:], 1):
        target = t0 + k / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = utcnow()
        published[e.event_id] = now.timestamp()
        prod.publish(TOPIC_INDICATORS, e.model_copy(update={"published_at": now}))
    prod.flush(60)
    deadline = time.monotonic() + 30
    while len([i for i in published if i in seen]) < len(published) and time.monotonic() < deadline:
        time.sleep(0.2)
    done.set()
    svc.stop()
    worker.join(30)
    lags = [seen[i] - t for i, t in published.items() if i in seen]
    for b in (prod, reader_bus, bus):
        b.close(5)
    return {"events": len(published), "delivered": len(lags), "median": statistics.median(lags) if lags else None,
            "p95": pct(lags, 0.95), "max": max(lags) if lags else None}


def model_errors() -> dict:
    from imminence.configfile import load
    from inference.config import CrimeModelsConfig
    from inference.crime_models import build_pairs, train_models
    import tempfile

    cfg = load(CrimeModelsConfig, Path(__file__).resolve().parents[1] / "configs" / "crime_models.yaml")
    pairs = build_pairs(generate_records(cells=8, hours=60, seed=1, crimes_per_hour=2), cfg)
    with tempfile.TemporaryDirectory() as d:
        return train_models(pairs, cfg, d, source="bench", plots=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000, help="events for the throughput run")
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second for the lag run")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the lag run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    models = load_models(default_models_dir())
    with EmbeddedBroker() as broker:
        tp = throughput(broker.bootstrap, models, args.events)
        lg = lag(broker.bootstrap, models, args.rate, args.seconds)
    print("\n== scoring throughput (consume -> aggregate -> score 4 ANFIS -> publish -> commit), embedded tansu")
    print(f"{'events':>8} {'seconds':>8} {'events/s':>9} {'cell msgs':>9} {'counted':>8} {'producer ev/s':>13}")
    print(f"{tp['events']:>8} {tp['seconds']:>8.2f} {tp['rate']:>9.0f} {tp['cells_published']:>9} "
          f"{tp['counted']:>8} {tp['publish_rate']:>13.0f}")
    print(f"\n== lag from event publication to the cell update that counts it ({args.rate:g} events/s live)")
    print(f"{'events':>8} {'delivered':>9} {'median s':>9} {'p95 s':>7} {'max s':>7}")
    print(f"{lg['events']:>8} {lg['delivered']:>9} {lg['median']:>9.3f} {lg['p95']:>7.3f} {lg['max']:>7.3f}")
    rep = model_errors()
    print("\n== crime models: checking RMSE against the training-mean baseline (generated ground truth)")
    print(f"{'crime':<9} {'rules':>5} {'check RMSE':>10} {'baseline':>9} {'flag recall':>11} {'flag prec':>9}")
    for crime, r in rep["crimes"].items():
        rec = "-" if r["flag_recall"] is None else f"{r['flag_recall']:.3f}"
        prec = "-" if r["flag_precision"] is None else f"{r['flag_precision']:.3f}"
        print(f"{crime:<9} {r['rules']:>5} {r['check_rmse']:>10.3f} {r['baseline_check_rmse']:>9.3f} "
              f"{rec:>11} {prec:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
