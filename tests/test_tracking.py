"""Per-camera tracking: stable ids along a generated clip, camera-scoped ids, capped state, validated settings."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from detectors.config import TrackerConfig
from detectors.tracking import CameraTracker, build_args
from detectors.types import Detection
from detectors.yolo import DetectorError


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from streamer.dataset import Dataset
    from scenes import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("scene"), cameras=1, minutes=0.5, seed=11)
    ds = Dataset(root)
    return ds.ground_truth(ds.videos[0])


def _frame_detections(gt, f: int) -> list[tuple[Detection, int]]:
    out = []
    for cls_id, x1, y1, x2, y2, tid in gt.frames.get(str(f), []):
        out.append((Detection((x1, y1, x2, y2), gt.classes[int(cls_id)], 0.9), int(tid)))
    return out


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])  # "iou" has no motion model: crossings swap ids
def test_ids_stable_along_a_generated_clip(scene, kind: str) -> None:
    tracker = CameraTracker("cam1", TrackerConfig(type=kind), fps=scene.fps)
    assigned: dict[int, Counter] = defaultdict(Counter)
    n_frames = max(int(k) for k in scene.frames) + 1
    for f in range(n_frames):
        pairs = _frame_detections(scene, f)
        tracker.update([d for d, _ in pairs])
        for d, truth in pairs:
            if d.cls == "person" and d.track_id is not None:
                assigned[truth][d.track_id] += 1
    long_tracks = {t: c for t, c in assigned.items() if sum(c.values()) >= 20}
    assert len(long_tracks) >= 2, "the scene should hold several people walking"
    for truth, counts in long_tracks.items():
        main_id, n = counts.most_common(1)[0]
        assert n / sum(counts.values()) >= 0.9, f"person {truth}: ids {dict(counts)}"
    # different people never share an id
    mains = [c.most_common(1)[0][0] for c in long_tracks.values()]
    assert len(set(mains)) == len(mains)


def test_ids_are_camera_scoped(scene) -> None:
    a = CameraTracker("cam1", TrackerConfig(), fps=scene.fps)
    b = CameraTracker("cam2", TrackerConfig(), fps=scene.fps)
    for f in range(60):
        a.update([d for d, _ in _frame_detections(scene, f)])
    dets = [d for d, _ in _frame_detections(scene, 60)]
    dets_b = [Detection(d.xyxy, d.cls, d.score) for d in dets]
    a.update(dets)
    b.update(dets_b)
    # b's numbering is its own: it starts at 1 whatever a has handed out
    assert sorted(d.track_id for d in dets_b if d.track_id) == list(range(1, len(dets_b) + 1))
    keys_a = {a.key(d.track_id) for d in dets if d.track_id}
    keys_b = {b.key(d.track_id) for d in dets_b if d.track_id}
    assert all(k.startswith("cam1:") for k in keys_a) and all(k.startswith("cam2:") for k in keys_b)
    assert not keys_a & keys_b


@pytest.mark.parametrize("kind", ["bytetrack", "iou"])
def test_state_stays_capped_in_a_long_run(kind: str) -> None:
    rng = np.random.default_rng(0)
    tracker = CameraTracker("cam1", TrackerConfig(type=kind, max_tracks=20, max_age_s=1.0), fps=10)
    peak = 0
    for f in range(1500):  # people appear everywhere and vanish: ids pile up without a cap
        dets = []
        for _ in range(rng.integers(0, 8)):
            x, y = rng.uniform(0, 600), rng.uniform(0, 300)
            dets.append(Detection((x, y, x + 20, y + 50), "person", float(rng.uniform(0.5, 1.0))))
        tracker.update(dets)
        peak = max(peak, tracker.live_tracks())
    assert peak <= 20 + 8  # cap applies after each frame's new tracks
    assert tracker.live_tracks() <= 20


def test_tracker_settings_are_validated() -> None:
    assert build_args("bytetrack", fps=25, max_age_s=2.0).track_buffer == 50  # the real rate, not 30
    assert build_args("bytetrack", fps=5, max_age_s=2.0).track_buffer == 10
    with pytest.raises(DetectorError, match="frame rate"):
        build_args("bytetrack", fps=0, max_age_s=2.0)
    with pytest.raises(DetectorError, match="track_high_thresh"):
        build_args("bytetrack", fps=10, max_age_s=1.0, track_high_thresh=1.5)
    with pytest.raises(DetectorError, match="bogus"):
        build_args("botsort", fps=10, max_age_s=1.0, bogus=1)


@pytest.mark.parametrize("kind", ["bytetrack", "iou"])
def test_lost_tracks_are_pruned_after_max_age(kind: str) -> None:
    tracker = CameraTracker("cam1", TrackerConfig(type=kind, max_age_s=1.0), fps=10)  # 10 frames lost buffer
    for f in range(5):  # two people walking
        tracker.update([Detection((100 + 2 * f, 50, 140 + 2 * f, 150), "person", 0.9),
                        Detection((300 - 2 * f, 60, 340 - 2 * f, 160), "person", 0.9)])
    assert tracker.state_size() == {"tracked": 2, "lost": 0}
    tracker.update([])
    assert tracker.state_size() == {"tracked": 0, "lost": 2}  # kept for re-identification...
    for _ in range(15):
        tracker.update([])
    assert tracker.state_size() == {"tracked": 0, "lost": 0}  # ...and forgotten after max_age_s
    assert tracker.live_tracks() == 0


def test_worker_exports_its_tracker_state() -> None:
    """imminence_tracker_tracks{camera,state} follows the camera's tracker (the soak bench reads its slope)."""
    from prometheus_client import REGISTRY

    from streamer.bus import InMemoryBus
    from tests.test_worker import run_file_worker

    def gauge() -> dict:
        return {s: REGISTRY.get_sample_value("imminence_tracker_tracks", {"camera": "plaza", "state": s})
                for s in ("tracked", "lost")}

    during: list[dict] = []
    w = run_file_worker(InMemoryBus(), on_clip=lambda *a: during.append(gauge()))
    state = w.analyzer.tracker.state_size()
    assert gauge() == {k: float(v) for k, v in state.items()}
    assert state["tracked"] > 0  # people on the plaza in the last frame
    # exported while running too (set when the first status and each clip are published)
    assert during and all(g["tracked"] is not None for g in during)
