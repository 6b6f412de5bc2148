"""Concept features, JSON classifiers, the per-camera concept stage and its fallbacks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.concepts.classifiers import ConceptModel, ConceptModelError, train_concept_model
from detectors.concepts.features import FEATURE_NAMES, ClipFeatures
from detectors.concepts.stage import ConceptStage
from detectors.config import DetectorsConfig, YOLODetectorConfig
from detectors.types import Detection

CONCEPTS = ["normal", "loitering", "violent_movement", "camera_tampering"]
FPS = 10.0


def _scene(rng: np.random.Generator, h: int = 120, w: int = 160) -> np.ndarray:
    img = np.full((h, w, 3), (90, 130, 100), np.uint8)
    img += rng.integers(0, 30, size=img.shape, dtype=np.uint8)  # texture, so blur and flow mean something
    return img


def _feed(cf: ClipFeatures, frames: list[np.ndarray], dets_per_frame, t0: float) -> np.ndarray:
    for i, f in enumerate(frames):
        cf.add(f, dets_per_frame(i), t0 + i / FPS)
    return cf.end_clip()


def _walker(i: int, speed: float, tid: int = 1, y: float = 40.0) -> Detection:
    x = 10 + speed * i
    return Detection((x, y, x + 12, y + 36), "person", 0.9, track_id=tid)


def _synthetic_training(rng: np.random.Generator, n: int = 40) -> tuple[np.ndarray, list[str]]:
    X, y = [], []
    d = len(FEATURE_NAMES)
    for c_i, c in enumerate(CONCEPTS):
        centre = np.zeros(d)
        centre[c_i * 3:(c_i + 1) * 3] = 4.0
        X.append(np.abs(centre + rng.normal(0, 0.7, size=(n, d))))
        y += [c] * n
    return np.vstack(X), y


def feature(vec: np.ndarray, name: str) -> float:
    return float(vec[FEATURE_NAMES.index(name)])


def test_tampering_signs_on_a_blacked_out_clip() -> None:
    rng = np.random.default_rng(1)
    cf = ClipFeatures(FPS)
    normal = [_scene(rng) for _ in range(20)]
    x_normal = _feed(cf, normal, lambda i: [_walker(i, 2.0)], 0.0)
    black = [np.zeros_like(normal[0]) for _ in range(20)]
    x_black = _feed(cf, black, lambda i: [], 2.0)
    assert feature(x_black, "brightness_jump_max") > 1.0 > 0.1 > feature(x_normal, "brightness_jump_max")
    assert feature(x_black, "brightness_drop_max") > 2.0 > 0.1 > feature(x_normal, "brightness_drop_max")
    assert feature(x_black, "contrast_drop_max") > 1.0 > 0.1 > feature(x_normal, "contrast_drop_max")
    assert feature(x_black, "hist_jump_max") > 0.5 > feature(x_normal, "hist_jump_max")
    assert feature(x_black, "blur_drop_max") > 1.0 > feature(x_normal, "blur_drop_max")
    assert feature(x_black, "people_vanish") == 0.0  # one person is not "everybody vanishing"


def test_a_dark_camera_is_not_a_tampered_one() -> None:
    """Tampering signs are changes against the camera's own baseline, not absolute darkness."""
    rng = np.random.default_rng(11)
    cf_bright, cf_dark = ClipFeatures(FPS), ClipFeatures(FPS)
    frames = [_scene(rng) for _ in range(40)]
    for k in range(2):
        xb = _feed(cf_bright, frames[20 * k:20 * (k + 1)], lambda i: [_walker(i, 2.0)], 2.0 * k)
        xd = _feed(cf_dark, [(f * 0.3).astype(np.uint8) for f in frames[20 * k:20 * (k + 1)]],
                   lambda i: [_walker(i, 2.0)], 2.0 * k)
    for name in ("brightness_drop_max", "contrast_drop_max", "brightness_jump_max"):
        assert feature(xd, name) == pytest.approx(feature(xb, name), abs=0.05), name


def test_features_do_not_depend_on_frame_size_or_crowd_size() -> None:
    """The same motion at twice the resolution, and the same people in a crowd of strangers, give the
    same motion features (body heights per second) and shares, not counts."""
    rng = np.random.default_rng(12)
    frames = [_scene(rng) for _ in range(20)]

    def walker2(i: int) -> list[Detection]:  # the same walker at 2x scale
        d = _walker(i, 3.0)
        return [Detection(tuple(2 * v for v in d.xyxy), "person", 0.9, track_id=1)]

    x1 = _feed(ClipFeatures(FPS), frames, lambda i: [_walker(i, 3.0)], 0.0)
    big = [np.kron(f, np.ones((2, 2, 1), np.uint8)) for f in frames]
    x2 = _feed(ClipFeatures(FPS), big, walker2, 0.0)
    for name in ("speed_mean", "speed_p95", "accel_p95", "dwell_max_s", "person_share", "fast_share"):
        assert feature(x2, name) == pytest.approx(feature(x1, name), rel=0.05, abs=1e-6), name
    assert feature(x2, "flow_mean") == pytest.approx(feature(x1, "flow_mean"), rel=0.35)
    crowd = _feed(ClipFeatures(FPS, flow=False), frames,
                  lambda i: [_walker(i, 3.0)] + [_walker(i, 3.0, tid=10 + k, y=40.0 + 50 * k) for k in range(1, 4)],
                  0.0)
    assert "people_mean" not in FEATURE_NAMES and "tracks_in_clip" not in FEATURE_NAMES
    assert feature(crowd, "speed_mean") == pytest.approx(feature(x1, "speed_mean"), rel=0.05)
    assert feature(crowd, "person_share") == feature(x1, "person_share") == 1.0


def test_kinematics_pairs_and_objects() -> None:
    rng = np.random.default_rng(2)
    frame = _scene(rng)
    cf = ClipFeatures(FPS, flow=False)
    slow = _feed(cf, [frame] * 20, lambda i: [_walker(i, 0.3)], 0.0)
    cf = ClipFeatures(FPS, flow=False)
    fast = _feed(cf, [frame] * 20, lambda i: [_walker(i, 6.0)], 0.0)
    # body heights per second: 6 px/frame * 10 fps / 36 px
    assert feature(fast, "speed_mean") == pytest.approx(6 * FPS / 36, rel=0.05)
    assert feature(slow, "dwell_slow_max_s") > 1.5 and feature(fast, "dwell_slow_max_s") == 0.0
    assert feature(slow, "slow_share") == 1.0 and feature(fast, "fast_share") == 1.0
    # two people walking into each other, then one running off: approach, contact, fleeing
    cf = ClipFeatures(FPS, flow=False)

    def pair(i: int) -> list[Detection]:
        a = Detection((20 + 4 * min(i, 10), 40, 32 + 4 * min(i, 10), 76), "person", 0.9, track_id=1)
        bx = 100 - 4 * min(i, 10) + (12 * (i - 12) if i > 12 else 0)
        b = Detection((bx, 40, bx + 12, 76), "person", 0.9, track_id=2)
        bag = Detection((bx + 2, 60, bx + 8, 70), "handbag", 0.8, track_id=3)
        return [a, b, bag]

    x = _feed(cf, [frame] * 20, pair, 0.0)
    assert feature(x, "approach_rate_max") > 1.0
    assert feature(x, "contact_share") > 0.0
    assert feature(x, "flee_speed_diff_max") > 1.0
    assert feature(x, "separation_rate_max") > 1.0
    assert feature(x, "pair_share") == 1.0
    assert feature(x, "bag_near_person") == 1.0 and feature(x, "weapon_present") == 0.0


ANALYSIS = {"fps": FPS, "clip_seconds": 2.0, "detector": "opencv"}


def test_concept_model_json_round_trip_matches_scikit_learn(tmp_path) -> None:
    rng = np.random.default_rng(3)
    X, y = _synthetic_training(rng)
    model = train_concept_model(X, y, CONCEPTS + ["sneaking"], analysis=ANALYSIS)  # "sneaking" never seen
    path = model.save(tmp_path / "concepts.json")
    doc = json.loads(path.read_text())  # plain JSON: numbers and names only
    assert doc["feature_names"] == list(FEATURE_NAMES) and doc["classes"] == CONCEPTS
    assert doc["analysis"] == ANALYSIS and doc["positives"]["sneaking"] == 0
    loaded = ConceptModel.load(path)
    Xt, yt = _synthetic_training(np.random.default_rng(4), n=10)
    S = loaded.scores(Xt)
    # the JSON trees evaluated with numpy give scikit-learn's own probabilities
    np.testing.assert_allclose(S[:, :4], model.sklearn.predict_proba(Xt), atol=1e-9)
    np.testing.assert_allclose(S.sum(axis=1), 1.0)
    assert S[:, 4].max() == 0.0  # a concept never seen is never scored
    pred = [CONCEPTS[i] for i in S.argmax(axis=1)]
    assert np.mean([p == t for p, t in zip(pred, yt)]) > 0.9


def test_concept_model_bad_files(tmp_path) -> None:
    with pytest.raises(ConceptModelError, match="cannot read"):
        ConceptModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConceptModelError, match="not JSON"):
        ConceptModel.load(bad)
    X, y = _synthetic_training(np.random.default_rng(5), n=8)
    good = json.loads(train_concept_model(X, y, CONCEPTS, analysis=ANALYSIS).to_json())
    other = tmp_path / "other.json"
    for change, message in ((("format", "imminence.concept-classifiers/1"), "retrain"),
                            (("feature_version", "someone-else/9"), "retrain")):
        doc = dict(good)
        doc[change[0]] = change[1]
        other.write_text(json.dumps(doc))
        with pytest.raises(ConceptModelError, match=message):
            ConceptModel.load(other)
    doc = json.loads(json.dumps(good))
    doc["trees"]["left"][0] = 10 ** 6  # a node pointing nowhere
    other.write_text(json.dumps(doc))
    with pytest.raises(ConceptModelError, match="trees"):
        ConceptModel.load(other)
    with pytest.raises(ConceptModelError, match="not in the concept vocabulary"):
        train_concept_model(X, ["robbery"] * len(X), CONCEPTS, analysis=ANALYSIS)


def test_model_refuses_a_camera_analysed_otherwise(tmp_path) -> None:
    from detectors.analyzer import ClipAnalyzer

    X, y = _synthetic_training(np.random.default_rng(5), n=8)
    path = train_concept_model(X, y, CONCEPTS, analysis=ANALYSIS).save(tmp_path / "m.json")
    cfg = DetectorsConfig()
    cfg.concepts.model = str(path)
    ClipAnalyzer(cfg, "cam", FPS, clip_seconds=2.0)  # as trained: fine
    with pytest.raises(ConceptModelError, match=r"analysis rate 5 fps \(trained at 10\)"):
        ClipAnalyzer(cfg, "cam", 5.0, clip_seconds=2.0)
    with pytest.raises(ConceptModelError, match=r"clips of 3 s"):
        ClipAnalyzer(cfg, "cam", FPS, clip_seconds=3.0)
    cfg.detector = YOLODetectorConfig(weights="elsewhere.pt")
    with pytest.raises(ConceptModelError, match="detector 'yolo:elsewhere.pt:320'"):
        ConceptStage(cfg, FPS, clip_seconds=2.0, detector_id="yolo:elsewhere.pt:320")


def _stage(tmp_path, *, cooc: bool = True, time_limit: float = 1.0, h: int = 4, **cfg_kw) -> ConceptStage:
    X, y = _synthetic_training(np.random.default_rng(6), n=10)
    X[:, FEATURE_NAMES.index("person_share")] = 1.0  # every training clip saw people
    model = train_concept_model(X, y, CONCEPTS, analysis=ANALYSIS)
    cfg = DetectorsConfig()
    cfg.gmcp.window = h
    cfg.gmcp.time_limit_s = time_limit
    for k, v in cfg_kw.items():
        section, key = k.split("__")
        setattr(getattr(cfg, section), key, v)
    P = np.full((4, 4), 0.1) + np.eye(4) * 0.6 if cooc else None
    return ConceptStage(cfg, FPS, model=model, cooccurrence=P)


def _clip(stage: ConceptStage, rng, people: bool = True) -> tuple:
    for i in range(10):
        stage.add(_scene(rng), [_walker(i, 1.0)] if people else [], i / FPS)
    return stage.end_clip(had_detections=people)


def _typical(concept: str, rng=None) -> np.ndarray:
    """A feature vector like the synthetic training clips of ``concept``, with people in view."""
    x = np.zeros(len(FEATURE_NAMES))
    i = CONCEPTS.index(concept)
    x[i * 3:(i + 1) * 3] = 4.0
    x[FEATURE_NAMES.index("person_share")] = 1.0
    return x


def test_stage_labels_and_fallbacks(tmp_path) -> None:
    rng = np.random.default_rng(7)
    # no concept model configured: no concept stage, features still computed
    stage = ConceptStage(DetectorsConfig(), FPS, collect_features=True)
    label, x = _clip(stage, rng)
    assert label is None and x.shape == (len(FEATURE_NAMES),)
    # model without co-occurrence: plain arg-max
    label = _stage(tmp_path, cooc=False).label(_typical("normal"), True)
    assert label.method == "argmax" and label.label == max(label.scores, key=label.scores.get) == "normal"
    stage = _stage(tmp_path)
    # first clip: a window of one clip has no edges -> flagged arg-max
    first = stage.label(_typical("normal"), True)
    assert first.method == "argmax-fallback" and first.window == 1 and first.fallback_reason
    # fewer clips than h: GMCP over the clips there are
    second = stage.label(_typical("normal"), True)
    assert second.method == "gmcp" and second.window == 2 and second.objective is not None
    # a clip with no detections: abstain (normal, uncertain, reason) and stay out of the window
    empty = stage.label(_typical("normal"), False)
    assert (empty.label, empty.method, empty.uncertain) == ("normal", "abstain", True)
    assert "no detections" in empty.fallback_reason
    third = stage.label(_typical("normal"), True)
    assert third.window == 3 and not third.uncertain
    for _ in range(3):
        full = stage.label(_typical("normal"), True)
    assert full.window == 4 and full.method == "gmcp"
    # a real clip fed frame by frame goes the same way
    label, x = _clip(stage, rng)
    assert label.label in CONCEPTS and x.shape == (len(FEATURE_NAMES),)


def test_stage_abstains_outside_the_training_range(tmp_path) -> None:
    stage = _stage(tmp_path)
    far = _typical("loitering")
    far[[FEATURE_NAMES.index(n) for n in ("speed_mean", "accel_p95", "flow_mean", "hist_jump_max")]] = 1e3
    label = stage.label(far, True)
    assert (label.label, label.method, label.uncertain) == ("normal", "abstain", True)
    assert "4 features outside the training range" in label.fallback_reason and "speed_mean" in label.fallback_reason
    assert len(stage.window) == 0  # an abstained clip never enters GMCP


def test_evidence_before_accusation(tmp_path) -> None:
    """A concept whose evidence the clip lacks can be chosen neither by the arg-max nor by GMCP."""
    stage = _stage(tmp_path, cooc=False)
    x = _typical("camera_tampering")
    assert stage.model.score_dict(x)["camera_tampering"] > 0.9  # the model alone would accuse
    label = stage.label(x, True)  # no global change of the frame in x: no tampering evidence
    assert label.label != "camera_tampering" and label.scores["camera_tampering"] == 0.0
    x[FEATURE_NAMES.index("hist_baseline_max")] = 0.6  # the frame changed against the camera's baseline
    assert stage.label(x, True).label == "camera_tampering"
    # switched off by the deployment: never chosen, even with evidence
    off = _stage(tmp_path, cooc=False, concepts__disabled=["camera_tampering"])
    assert off.label(x, True).label != "camera_tampering" and "camera_tampering" in off.off
    with pytest.raises(ConceptModelError, match="not concepts of the model"):
        _stage(tmp_path, concepts__disabled=["telepathy"])


def test_detector_without_the_class_switches_the_concept_off() -> None:
    from detectors.concepts.evidence import unseeable

    off = unseeable(["normal", "lethal_object", "item_seizure", "traffic_violation", "loitering"], ["person"])
    assert off == {"lethal_object": "the detector has no weapon class", "item_seizure": "the detector has no bag class",
                   "traffic_violation": "the detector has no vehicle class"}
    assert unseeable(["lethal_object"], ["person", "knife"]) == {}


def test_gmcp_moves_a_clip_only_to_a_concept_above_the_floor(tmp_path) -> None:
    """GMCP may relabel a clip only to a concept that clip itself scores at least ``gmcp.floor`` for."""
    x = _typical("loitering")
    x[FEATURE_NAMES.index("dwell_slow_max_s")] = 5.0  # loitering's evidence
    labels = {}
    for floor in (0.0, 0.5):
        stage = _stage(tmp_path, h=4, gmcp__beta=50.0, gmcp__floor=floor)  # a co-occurrence term that dominates
        for _ in range(3):
            stage.label(_typical("normal"), True)
        labels[floor] = stage.label(x, True)
    assert labels[0.0].label == "normal" and labels[0.0].method == "gmcp"  # pulled to its neighbours' concept
    assert labels[0.5].label == "loitering" and labels[0.5].method == "argmax-fallback"
    assert "below the floor 0.5" in labels[0.5].fallback_reason


def test_stage_solver_time_limit_falls_back_to_argmax(tmp_path) -> None:
    stage = _stage(tmp_path, time_limit=1e-4, h=8)
    labels = [stage.label(_typical("normal"), True) for _ in range(4)]
    later = labels[1:]
    assert all(lab.method == "argmax-fallback" for lab in later)
    assert all("time limit" in lab.fallback_reason for lab in later)
    assert all(lab.label == max(lab.scores, key=lab.scores.get) for lab in later)


def test_stage_refuses_mismatched_files(tmp_path) -> None:
    from detectors.concepts.stage import load_cooccurrence
    from detectors.cooccurrence import learn_cooccurrence, save_matrices

    path = tmp_path / "cooc.json"
    save_matrices(path, {"default": learn_cooccurrence([["a", "b", "a"]], ["a", "b"], window=2)})
    with pytest.raises(ConceptModelError, match="vocabulary"):
        load_cooccurrence(path, CONCEPTS)
    cfg = DetectorsConfig()
    cfg.concepts.model = str(tmp_path / "nope.json")
    with pytest.raises(ConceptModelError, match="nope.json"):
        ConceptStage(cfg, FPS)


def test_offline_evaluation_and_confusion_png(tmp_path) -> None:
    from detectors.evaluate import evaluate, format_table, plot_confusion

    concepts = ["normal", "loitering", "sneaking"]
    truth = [0, 0, 0, 1, 1, 1, 1, 2, 2, 0]
    scores = np.full((len(truth), 3), 0.1)
    scores[np.arange(len(truth)), truth] = 0.8
    scores[5] = [0.6, 0.55, 0.1]  # one clip the detector gets wrong, inside a run of loitering
    P = np.full((3, 3), 0.05) + np.eye(3) * 0.85
    res = evaluate([(scores, truth)], concepts, P, h=4)
    assert res["argmax"].accuracy == pytest.approx(0.9)
    assert res["argmax"].per_concept["loitering"] == pytest.approx(0.75)
    assert res["gmcp"].per_concept["loitering"] == pytest.approx(1.0)  # the neighbours fix it
    assert res["gmcp"].confusion.sum() == len(truth)
    assert "average (balanced)" in format_table(res, concepts)
    png = plot_confusion(res["gmcp"], concepts, tmp_path / "cm.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_lift_weighting_removes_the_base_rate_of_the_later_concept() -> None:
    from detectors.gmcp import clip_edge_weights, stationary

    P = np.array([[0.8, 0.1, 0.1], [0.5, 0.4, 0.1], [0.5, 0.1, 0.4]])
    pi = stationary(P)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-9)
    assert pi.sum() == pytest.approx(1.0) and pi[0] > pi[1]
    conf = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    W_log = clip_edge_weights(conf, P, weighting="log", beta=0.7, decay=0.3)
    W_lift = clip_edge_weights(conf, P, weighting="lift", beta=0.7, decay=0.3)
    from detectors.gmcp import pair_weights

    omega = pair_weights(3, 0.3)
    expected = -0.7 * np.einsum("ij,b->ijb", omega, np.log(pi))  # the only difference: - beta*omega*log pi(b)
    np.testing.assert_allclose((W_lift - W_log)[:, 0, :, :], expected, atol=1e-12)
    with pytest.raises(ValueError, match="'lift'"):
        clip_edge_weights(conf, P, weighting="pmi")


def test_lookahead_labels_a_clip_with_its_future_clips() -> None:
    from detectors.evaluate import evaluate, gmcp_labels

    # A run of loitering whose FIRST clip the detector gets wrong: the causal window has only the past
    # (normal) to go on; with two future clips in the window GMCP sees the run and fixes it.
    concepts = ["normal", "loitering"]
    truth = [0, 0, 0, 1, 1, 1, 1]
    scores = np.array([[0.9, 0.1]] * 3 + [[0.55, 0.45]] + [[0.1, 0.9]] * 3)
    P = np.array([[0.9, 0.1], [0.1, 0.9]])
    causal, _ = gmcp_labels(scores, P, h=4, beta=1.0, lookahead=0, weighting="lift")
    ahead, methods = gmcp_labels(scores, P, h=4, beta=1.0, lookahead=2, weighting="lift")
    assert causal[3] == 0 and ahead[3] == 1
    assert ahead == truth and len(methods) == len(truth)
    res = evaluate([(scores, truth)], concepts, P, h=4, beta=1.0, lookahead=2, weighting="lift")
    assert res["gmcp"].accuracy == 1.0 and res["argmax"].accuracy == pytest.approx(6 / 7)
    with pytest.raises(ValueError, match="lookahead"):
        gmcp_labels(scores, P, h=4, lookahead=4)


def test_episode_classification_with_one_matrix_per_event_class() -> None:
    from detectors.cooccurrence import learn_per_class
    from streamer.concept_runs import classify_episodes, episode_sequences
    from streamer.offline import VideoClips

    concepts = ["normal", "sneaking", "suspicious_exit", "loitering"]
    truth = ["normal", "sneaking", "sneaking", "suspicious_exit", "normal", "loitering", "loitering", "loitering",
             "normal"]
    v = VideoClips(camera_id="cam", truth=truth, indices=list(range(len(truth))),
                   episodes=[("burglary", 1, 4), ("loiter", 5, 8), ("blip", 8, 9)])  # a 1-clip episode is skipped
    seqs = episode_sequences([v])
    assert seqs == {"burglary": [["sneaking", "sneaking", "suspicious_exit"]],
                    "loiter": [["loitering"] * 3]}
    mats = {k: m.matrix for k, m in learn_per_class(seqs, concepts, window=8).items()}
    # noisy detector scores: the true concept at 0.5, the rest at 0.5/3
    v.scores = [{c: (0.5 if c == t else 0.5 / 3) for c in concepts} for t in truth]
    res = classify_episodes([v], concepts, mats, decay=0.3)
    assert res["episodes"] == 2 and res["correct"] == 2 and res["per_class"] == {"burglary": "1/1", "loiter": "1/1"}


def test_frames_of_another_size_mid_stream_do_not_stop_the_features() -> None:
    """A camera that switches resolution (a reconfigured stream) keeps producing clip features."""
    rng = np.random.default_rng(13)
    cf = ClipFeatures(FPS)
    small = [_scene(rng) for _ in range(10)]
    big = [_scene(rng, h=240, w=320) for _ in range(10)]
    x = _feed(cf, small + big, lambda i: [_walker(i, 2.0)], 0.0)
    assert x.shape == (len(FEATURE_NAMES),) and np.all(np.isfinite(x))


def test_uploads_sample_by_stream_time_like_a_worker() -> None:
    """analyze_frames with the source's rate analyses the same instants a worker would (analysis_slot)."""
    from detectors.clip import analysis_slot, analyze_frames

    rng = np.random.default_rng(14)
    frames = [_scene(rng) for _ in range(50)]  # 2 s at 25 fps
    clips = analyze_frames(frames, DetectorsConfig(), 5.0, clip_seconds=1.0, source_fps=25.0)
    assert [c.frames for c in clips] == [5, 5]  # 5 analysed frames per second, whatever the source rate
    kept = [i for i in range(50) if analysis_slot(i / 25, 5.0) != analysis_slot((i - 1) / 25, 5.0) or i == 0]
    assert kept == list(range(0, 50, 5))
    clips12 = analyze_frames(frames[:24], DetectorsConfig(), 5.0, clip_seconds=2.0, source_fps=12.0)
    assert [c.frames for c in clips12] == [10]  # 12 fps: still exactly one frame per 0.2 s slot


def test_a_person_box_that_never_moves_is_a_fixture_not_a_person() -> None:
    """The detector boxing a bollard as a person for minutes must not look like someone loitering."""
    rng = np.random.default_rng(15)
    frame = _scene(rng)
    cf = ClipFeatures(FPS, flow=False)
    post = Detection((100, 40, 112, 76), "person", 0.6, track_id=7)
    xs = [_feed(cf, [frame] * 20, lambda i: [post, _walker(i + 20 * k, 1.0)], 2.0 * k) for k in range(4)]
    assert ("person", 7) in cf.static and ("person", 1) not in cf.static
    assert feature(xs[0], "pair_share") == 1.0  # before 6 s it still counted
    assert feature(xs[-1], "pair_share") == 0.0  # now it is nobody's companion
    alone = _feed(cf, [frame] * 20, lambda i: [post], 8.0)  # the walker has gone: nobody is there
    assert feature(alone, "person_share") == 0.0 and feature(alone, "dwell_max_s") == 0.0
