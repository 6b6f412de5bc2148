"""Concept features, JSON classifiers, the per-camera concept stage and its fallbacks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.concepts.classifiers import ConceptModel, ConceptModelError, train_concept_model
from detectors.concepts.features import FEATURE_NAMES, ClipFeatures
from detectors.concepts.stage import ConceptStage
from detectors.config import DetectorsConfig
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
    assert feature(x_black, "brightness_jump_max") > 0.3 > feature(x_normal, "brightness_jump_max")
    assert feature(x_black, "brightness_min") < 0.02 < feature(x_normal, "brightness_min")
    assert feature(x_black, "contrast_min") < 0.01 < feature(x_normal, "contrast_min")
    assert feature(x_black, "hist_jump_max") > 0.5 > feature(x_normal, "hist_jump_max")
    assert feature(x_black, "blur_drop_max") > 1.0 > feature(x_normal, "blur_drop_max")
    assert feature(x_black, "people_vanish") == 0.0  # one person is not "everybody vanishing"


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
    assert feature(x, "bag_near_person") == 1.0 and feature(x, "weapon_present") == 0.0


def test_concept_model_json_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(3)
    X, y = _synthetic_training(rng)
    model = train_concept_model(X, y, CONCEPTS)
    path = model.save(tmp_path / "concepts.json")
    doc = json.loads(path.read_text())  # plain JSON: numbers and names only
    assert doc["concepts"] == CONCEPTS and doc["feature_names"] == list(FEATURE_NAMES)
    loaded = ConceptModel.load(path)
    Xt, yt = _synthetic_training(np.random.default_rng(4), n=10)
    np.testing.assert_allclose(loaded.scores(Xt), model.scores(Xt))
    pred = [CONCEPTS[i] for i in loaded.scores(Xt).argmax(axis=1)]
    assert np.mean([p == t for p, t in zip(pred, yt)]) > 0.9
    assert loaded.scores(Xt).min() >= 0 and loaded.scores(Xt).max() <= 1


def test_concept_model_bad_files(tmp_path) -> None:
    with pytest.raises(ConceptModelError, match="cannot read"):
        ConceptModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConceptModelError, match="not JSON"):
        ConceptModel.load(bad)
    X, y = _synthetic_training(np.random.default_rng(5), n=8)
    doc = json.loads(train_concept_model(X, y, CONCEPTS).to_json())
    doc["feature_version"] = "someone-else/9"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    with pytest.raises(ConceptModelError, match="retrain"):
        ConceptModel.load(other)
    doc["feature_version"] = json.loads(train_concept_model(X, y, CONCEPTS).to_json())["feature_version"]
    doc["classifiers"]["normal"]["weights"] = [1.0]
    other.write_text(json.dumps(doc))
    with pytest.raises(ConceptModelError, match="normal"):
        ConceptModel.load(other)
    with pytest.raises(ConceptModelError, match="not in the concept vocabulary"):
        train_concept_model(X, ["robbery"] * len(X), CONCEPTS)


def _stage(tmp_path, *, cooc: bool = True, time_limit: float = 1.0, h: int = 4) -> ConceptStage:
    X, y = _synthetic_training(np.random.default_rng(6), n=10)
    model = train_concept_model(X, y, CONCEPTS)
    cfg = DetectorsConfig()
    cfg.gmcp.window = h
    cfg.gmcp.time_limit_s = time_limit
    P = np.full((4, 4), 0.1) + np.eye(4) * 0.6 if cooc else None
    return ConceptStage(cfg, FPS, model=model, cooccurrence=P)


def _clip(stage: ConceptStage, rng, people: bool = True) -> tuple:
    for i in range(10):
        stage.add(_scene(rng), [_walker(i, 1.0)] if people else [], i / FPS)
    return stage.end_clip(had_detections=people)


def test_stage_labels_and_fallbacks(tmp_path) -> None:
    rng = np.random.default_rng(7)
    # no concept model configured: no concept stage, features still computed
    stage = ConceptStage(DetectorsConfig(), FPS, collect_features=True)
    label, x = _clip(stage, rng)
    assert label is None and x.shape == (len(FEATURE_NAMES),)
    # model without co-occurrence: plain arg-max
    label, _ = _clip(_stage(tmp_path, cooc=False), rng)
    assert label.method == "argmax" and label.label == max(label.scores, key=label.scores.get)
    stage = _stage(tmp_path)
    # first clip: a window of one clip has no edges -> flagged arg-max
    first, _ = _clip(stage, rng)
    assert first.method == "argmax-fallback" and first.window == 1 and first.fallback_reason
    # fewer clips than h: GMCP over the clips there are
    second, _ = _clip(stage, rng)
    assert second.method == "gmcp" and second.window == 2 and second.objective is not None
    # a clip with no detections is labelled by arg-max and stays out of the window
    empty, _ = _clip(stage, rng, people=False)
    assert empty.method == "argmax-fallback" and "no detections" in empty.fallback_reason
    third, _ = _clip(stage, rng)
    assert third.window == 3
    for _ in range(3):
        full, _ = _clip(stage, rng)
    assert full.window == 4 and full.method == "gmcp"


def test_stage_solver_time_limit_falls_back_to_argmax(tmp_path) -> None:
    rng = np.random.default_rng(8)
    stage = _stage(tmp_path, time_limit=1e-4, h=8)
    labels = [_clip(stage, rng)[0] for _ in range(4)]
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


def test_softmax_link_round_trip_and_scores_sum_to_one(tmp_path) -> None:
    X, y = _synthetic_training(np.random.default_rng(5))
    model = train_concept_model(X, y, CONCEPTS + ["sneaking"], link="softmax")  # "sneaking" never seen
    loaded = ConceptModel.load(model.save(tmp_path / "softmax.json"))
    assert loaded.spec.link == "softmax" and not loaded.spec.classifiers["sneaking"].trained
    Xt, yt = _synthetic_training(np.random.default_rng(6), n=10)
    S = loaded.scores(Xt)
    np.testing.assert_allclose(S.sum(axis=1), 1.0)
    np.testing.assert_allclose(S, model.scores(Xt))
    assert S[:, -1].max() < 0.05  # an unseen concept is (almost) never chosen
    assert np.mean([CONCEPTS[i] == t for i, t in zip(S.argmax(axis=1), yt)]) > 0.9
    with pytest.raises(ConceptModelError, match="link"):
        train_concept_model(X, y, CONCEPTS, link="tanh")


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
    from imminence.commands.concepts import VideoClips, classify_episodes, episode_sequences

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
