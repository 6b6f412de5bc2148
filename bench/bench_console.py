"""Benchmark of the web console: live latency, first map of a 10,000-cell grid, upload analysis time.

* MapSnapshot published on Kafka (real embedded broker) -> colour change in an
  open page (headless Chromium): median and 95th percentile over N snapshots.
* Page load -> first map drawn for a 100 x 100 grid (canvas renderer).
* Analysis time of an uploaded 10-second generated clip (640x360, 10 fps,
  analysed at 5 fps) through the camera workers' detectors path (OpenCV
  detector, tracker, concept classifiers trained on a generated scene, GMCP), on 2 cores.

    .venv/bin/python bench/bench_console.py [--snapshots 30] [--loads 5]

Prints a table. Figures on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console import samples  # noqa: E402
from console.config import WebConfig  # noqa: E402
from console.server import ServerThread, build_console, default_analyzer_factory  # noqa: E402
from streamer import schemas  # noqa: E402
from streamer.broker import EmbeddedBroker  # noqa: E402
from streamer.kafka_bus import KafkaBus  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snapshots", type=int, default=30)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
    import cv2
    import httpx
    from playwright.sync_api import sync_playwright

    cv2.setNumThreads(args.cores)
    grid = samples.small_grid(rows=100, cols=100, cell_size_m=100.0)
    n_cells = len(grid.cell_ids())
    rng = np.random.default_rng(0)
    ids = grid.cell_ids()

    def random_snapshot() -> "schemas.MapSnapshot":
        hot = rng.choice(len(ids), size=2000, replace=False)
        values = {ids[i]: float(rng.gamma(2.0, 1.0)) for i in hot}
        return samples.snapshot(grid, values, snapshot_id=uuid.uuid4().hex[:16], created_at=datetime.now(timezone.utc))

    rows = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_file=Path(tmp) / "tansu.log") as broker:
        ns = f"bench{uuid.uuid4().hex[:6]}"
        bus = KafkaBus(broker.bootstrap, namespace=ns)
        pub = KafkaBus(broker.bootstrap, namespace=ns)
        # Uploads run the full worker path: OpenCV detector, tracker, concept classifiers and GMCP,
        # with concept models trained here on a small generated scene (as a deployment would ship them).
        from console.pipeline import train_concept_models
        from detectors.config import DetectorsConfig
        from scenes.generate import generate_dataset

        train_ds = generate_dataset(Path(tmp) / "train", cameras=2, minutes=0.5, fps=10.0, size=(320, 180), seed=1)
        detectors = train_concept_models(train_ds, Path(tmp) / "concepts", DetectorsConfig())
        console = build_console(WebConfig(group=f"{ns}-web", upload_max_seconds=30), grid=grid, bus=bus,
                                bootstrap=broker.bootstrap, analyzer_factory=default_analyzer_factory(detectors),
                                close_bus=True)
        first = random_snapshot()
        pub.publish(schemas.TOPIC_MAPS, first)
        pub.flush(30)
        deadline = time.monotonic() + 60
        while console.state.snapshot is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with ServerThread(console.app) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            # page load -> first map
            loads = []
            for _ in range(args.loads):
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                t0 = time.perf_counter()
                page.goto(server.url)
                page.wait_for_selector("#map[data-snapshot-id]:not([data-snapshot-id=''])", timeout=30_000)
                loads.append(time.perf_counter() - t0)
                page.close()
            rows.append(("page load -> first map, %d cells (s)" % n_cells, statistics.median(loads), pct(loads, 95),
                         len(loads)))
            # snapshot on Kafka -> change in the open page
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url)
            page.wait_for_selector("#map[data-snapshot-id]:not([data-snapshot-id=''])", timeout=30_000)
            lat = []
            for _ in range(args.snapshots):
                snap = random_snapshot()
                t0 = time.perf_counter()
                pub.publish(schemas.TOPIC_MAPS, snap)
                page.wait_for_selector(f"#map[data-snapshot-id='{snap.snapshot_id}']", timeout=30_000)
                lat.append(time.perf_counter() - t0)
                time.sleep(0.2)
            rows.append(("Kafka MapSnapshot -> page updated (s)", statistics.median(lat), pct(lat, 95), len(lat)))
            browser.close()
            # upload analysis of a 10-second clip
            ds = generate_dataset(Path(tmp) / "scene", cameras=1, minutes=10 / 60, fps=10.0, size=(640, 360))
            video = next(Path(ds).glob("*.mp4"))
            times, analysis = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                r = httpx.post(server.url + "/api/uploads", files={"file": (video.name, video.read_bytes())},
                               timeout=300)
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
                analysis.append(r.json()["analysis_s"])
                labels = r.json()["labels"]
            print(f"upload: {r.json()['frames_analysed']} frames analysed, clip labels {labels}")
            rows.append((f"upload of a 10 s clip, request (s, {args.cores} cores)", statistics.median(times),
                         pct(times, 95), len(times)))
            rows.append(("  of which detectors pipeline (s)", statistics.median(analysis), pct(analysis, 95),
                         len(analysis)))
        console.close()
        pub.close(5)
    print(f"\n{'measure':<48} {'median':>8} {'p95':>8} {'n':>4}")
    for name, med, p95, n in rows:
        print(f"{name:<48} {med:>8.3f} {p95:>8.3f} {n:>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
