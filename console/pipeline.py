"""Fill a broker's topics with a generated scene run through the real services (tests, benchmark, demos).

:func:`run_scene_pipeline` renders a small scene dataset, replays it through the
camera workers (``streamer.replay``: indicator events and camera states),
scores it with the ANFIS service (``inference.service``: cell imminence) and
maps it with the map service (``mapping.service``: snapshots, plus the GeoJSON
and snapshot files of a finished run).  Everything goes through the real Kafka
bus under a topic namespace of its own, so the console sees what it would see
in production.  It also writes a short clip of the scene for upload tests.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import cv2

from geo.grid import Grid

log = logging.getLogger(__name__)


@dataclass
class SceneRun:
    """What a scene pipeline produced."""

    namespace: str
    grid: Grid
    dataset: Path
    run_dir: Path  # the map service's output folder (GeoJSON, snapshots)
    clip: Path  # a short clip cut from one camera, for uploads
    detectors: Any
    events: int
    cells: int
    snapshots: int
    seconds: float
    concepts_error: Optional[str] = None  # why no concept model was trained, if it was not


def cut_clip(video: Path, out: Path, seconds: float) -> Path:
    """The first ``seconds`` of ``video`` as an MJPG AVI (what an operator would upload)."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    writer = None
    try:
        for _ in range(int(round(seconds * fps))):
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                                         (frame.shape[1], frame.shape[0]))
            writer.write(frame)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError(f"{video}: no frame could be read")
    return out


def train_concept_models(dataset: Path, out: Path, detectors: Any) -> Any:
    """Train the concept classifiers and co-occurrence on the scene (``imminence concepts train``).

    Returns a copy of ``detectors`` that uses them, so workers and uploads label
    clips with concepts and GMCP as a deployment with trained models would.
    """
    # The command itself, as its own process: the console sits beside the command layer and
    # does not import it (imports run one way).
    res = subprocess.run([sys.executable, "-m", "imminence.cli", "concepts", "train", str(dataset),
                          "--out", str(out)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"imminence concepts train {dataset} failed with exit code {res.returncode}: "
                           f"{res.stderr[-2000:]}")
    d = detectors.model_copy(deep=True)
    d.concepts.model = str(out / "concepts.json")
    d.gmcp.cooccurrence = str(out / "cooccurrence.json")
    return d


def run_scene_pipeline(bootstrap: str, namespace: str, workdir: str | Path, *, cameras: int = 2,
                       minutes: float = 0.5, fps: float = 5.0, seed: int = 0,
                       detectors: Optional[Any] = None, train_concepts: bool = True) -> SceneRun:
    """Generate, replay, score and map a scene on ``bootstrap`` under ``namespace``; returns what it made."""
    from detectors.config import DetectorsConfig
    from inference.config import ScoringConfig
    from inference.crime_models import default_models_dir, load_models
    from inference.service import ScoringService
    from mapping.config import MapConfig
    from mapping.service import MapService
    from streamer.kafka_bus import KafkaBus
    from streamer.replay import dataset_videos, replay_videos
    from scenes.generate import generate_dataset

    t0 = time.monotonic()
    workdir = Path(workdir)
    detectors = detectors or DetectorsConfig()
    # recorded at midday: the bundled crime models score by hour too, and a scene of a few clips, whose
    # freshly trained concept model abstains on much, must still light its cells
    ds = generate_dataset(workdir / "scene", cameras=cameras, minutes=minutes, seed=seed, fps=fps * 2,
                          size=(320, 180), start=datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc))
    concepts_error = None
    if train_concepts:
        try:
            detectors = train_concept_models(ds, workdir / "concepts", detectors)
        except Exception as exc:  # the rest of the pipeline still runs; the caller sees why labels are missing
            concepts_error = f"{type(exc).__name__}: {exc}"
            log.warning("concept training on the scene failed, clips will have no concept labels: %s",
                        concepts_error)
    videos, grid_cfg = dataset_videos(ds, fps=fps)
    grid = Grid.from_config(grid_cfg)
    clip = cut_clip(videos[0].path, workdir / "upload-clip.avi", 6.0)
    bus = KafkaBus(bootstrap, namespace=namespace)
    try:
        replay = replay_videos(videos, bus, detectors, grid)
        bus.flush(30)
        log.info("scene replayed: %s", replay)
        scoring = ScoringService(bus, load_models(default_models_dir()),
                                 ScoringConfig(group=f"{namespace}-score", restore=False),
                                 cells=set(grid.cell_ids()), client_id=f"{namespace}-score")
        run_dir = workdir / "map"
        # Replayed footage is old, and its cell messages say so (replay: true): the map's default clock
        # ages them in the recording's time, as `imminence map` does with its default settings.
        mapper = MapService(bus, grid, MapConfig(out_dir=str(run_dir), group=f"{namespace}-map"),
                            out_dir=run_dir, client_id=f"{namespace}-map",
                            cameras=[{"id": v.camera.id, "lon": v.camera.position.lon, "lat": v.camera.position.lat}
                                     for v in videos])
        # Both services run at once, as deployed; the map stops once it has read every cell message.
        map_result: dict[str, Any] = {}
        map_thread = threading.Thread(target=lambda: map_result.update(stats=mapper.run()), name="scene-map",
                                      daemon=True)
        map_thread.start()
        score_stats = scoring.run(idle_exit_s=6.0)
        bus.flush(30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and mapper.stats.received < score_stats.get("cells_published", 0):
            time.sleep(0.1)
        mapper.stop()
        map_thread.join(60)
        map_stats = map_result["stats"]
        bus.flush(30)
    finally:
        bus.close(10)
    events = int(replay.events)
    return SceneRun(namespace=namespace, grid=grid, dataset=Path(ds), run_dir=run_dir, clip=clip,
                    detectors=detectors, events=events, cells=int(score_stats.get("cells_published", 0)),
                    snapshots=int(map_stats.snapshots), seconds=time.monotonic() - t0,
                    concepts_error=concepts_error)
