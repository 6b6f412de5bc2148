"""GMCP clip labelling and co-occurrence learning: exactness against brute force, fallbacks, bad input."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from detectors.cooccurrence import learn_cooccurrence, learn_per_class, load_matrices, save_matrices
from detectors.gmcp import (GMCPWindow, classify_video, clip_edge_weights, edge_objective, icm_labelling,
                            label_clips, solve_edges)

SOLVERS = ["highs", "cbc"]
# (solver, lp_first): HiGHS with the LP relaxation tried first, HiGHS branch and bound only, CBC.
MODES = [("highs", True), ("highs", False), ("cbc", False)]


def brute_force(W, unary=None):
    """Best objective over all k^h labellings (vectorised over labellings)."""
    h, k = W.shape[:2]
    L = np.array(list(itertools.product(range(k), repeat=h)))
    total = np.zeros(len(L))
    for i, j in itertools.combinations(range(h), 2):
        total += W[i, L[:, i], j, L[:, j]]
    if unary is not None:
        total += unary[np.arange(h), L].sum(axis=1)
    return float(total.max())


# -- exactness ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver,lp_first", MODES)
@pytest.mark.parametrize("h,k", [(4, 3), (3, 4), (2, 5)])
def test_random_dense_weights_match_brute_force(solver, lp_first, h, k):
    rng = np.random.default_rng(100 * h + k)
    for _ in range(12):
        W = rng.normal(size=(h, k, h, k))  # dense, half negative
        res = solve_edges(W, solver=solver, lp_first=lp_first)
        assert res.optimal and res.method == "gmcp"
        assert res.stage in (("lp", "mip") if lp_first else ("mip",))
        assert res.objective == pytest.approx(brute_force(W), abs=1e-8)
        assert res.objective == pytest.approx(edge_objective(W, res.labels), abs=1e-12)
        assert res.labels.shape == (h,) and res.labels.min() >= 0 and res.labels.max() < k


@pytest.mark.parametrize("solver,lp_first", MODES)
def test_with_unary_and_bad_warm_start_matches_brute_force(solver, lp_first):
    rng = np.random.default_rng(7)
    for _ in range(8):
        W = rng.normal(size=(4, 3, 4, 3))
        U = rng.normal(size=(4, 3)) * 2
        worst = np.array(min(itertools.product(range(3), repeat=4), key=lambda l: edge_objective(W, l, U)))
        res = solve_edges(W, unary=U, solver=solver, warm_start=worst, lp_first=lp_first)
        assert res.optimal
        assert res.objective == pytest.approx(brute_force(W, U), abs=1e-8)


@pytest.mark.parametrize("solver,lp_first", MODES)
def test_structured_windows_match_brute_force_where_icm_is_not_optimal(solver, lp_first):
    """Log-weighted windows from confidences and co-occurrence, where the ICM start is suboptimal.

    Such windows once exposed a CBC bug (a MIP start on a maximisation declared
    optimal), so the instances are picked for a warm start worse than the optimum.
    """
    rng = np.random.default_rng(11)
    h, k = 5, 4
    checked = 0
    for _ in range(200):
        P = rng.dirichlet(np.ones(k) * 0.5, size=k)
        conf = rng.uniform(0.05, 1.0, size=(h, k))
        W = clip_edge_weights(conf, P, beta=1.5)
        best = brute_force(W)
        if edge_objective(W, icm_labelling(W)) >= best - 1e-9:
            continue
        res = label_clips(conf, P, beta=1.5, solver=solver, lp_first=lp_first)
        assert res.optimal and res.objective == pytest.approx(best, abs=1e-8)
        checked += 1
        if checked == 4:
            break
    assert checked == 4, "the generator should produce windows where ICM is not optimal"


def test_highs_and_cbc_agree_on_full_size_windows():
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.ones(10), size=10)
    for _ in range(3):
        conf = rng.beta(1.2, 5.0, size=(8, 10))
        conf[np.arange(8), rng.integers(10, size=8)] = rng.uniform(0.5, 0.9, size=8)
        a = label_clips(conf, P, solver="highs", time_limit=10)
        m = label_clips(conf, P, solver="highs", time_limit=10, lp_first=False)
        b = label_clips(conf, P, solver="cbc", time_limit=10)
        assert a.optimal and b.optimal and m.optimal and m.stage == "mip"
        assert a.objective == pytest.approx(b.objective, abs=1e-7)
        assert m.objective == pytest.approx(b.objective, abs=1e-7)
        assert a.bound == pytest.approx(a.objective, abs=1e-6)


def test_model_is_reused_per_window_shape():
    rng = np.random.default_rng(5)
    solve_edges(rng.normal(size=(3, 5, 3, 5)))
    res = solve_edges(rng.normal(size=(3, 5, 3, 5)))
    assert res.build_ms == 0.0 and res.optimal


# -- fallbacks -----------------------------------------------------------------------------
@pytest.mark.parametrize("solver", SOLVERS)
def test_time_limit_falls_back_to_best_of_icm_and_incumbent(solver):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(8, 10, 8, 10))  # random dense h=8, k=10 takes seconds to prove
    res = solve_edges(W, solver=solver, time_limit=0.05)
    assert not res.optimal
    assert res.method in ("gmcp", "greedy-fallback")
    assert "stopped without proving optimality" in res.fallback_reason or "time limit" in res.fallback_reason
    assert res.objective >= edge_objective(W, icm_labelling(W)) - 1e-12
    assert res.objective == pytest.approx(edge_objective(W, res.labels))
    assert res.solve_ms < 5000


def test_single_clip_is_argmax_of_unary():
    res = label_clips(np.array([[0.1, 0.7, 0.2]]), np.full((3, 3), 1 / 3))
    assert res.method == "argmax-fallback" and list(res.labels) == [1] and res.fallback_reason
    res = solve_edges(np.zeros((1, 3, 1, 3)))
    assert res.method == "argmax-fallback" and list(res.labels) == [0]


def test_one_concept_is_trivial():
    res = solve_edges(np.ones((3, 1, 3, 1)))
    assert list(res.labels) == [0, 0, 0] and res.objective == 3.0 and res.optimal


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("W,match", [
    (np.zeros((3, 2, 3)), r"shape \(h, k, h, k\)"),
    (np.zeros((3, 2, 4, 2)), r"shape \(h, k, h, k\)"),
    (np.zeros((3, 2, 3, 3)), r"shape \(h, k, h, k\)"),
    (np.zeros((0, 2, 0, 2)), "no clips"),
    (np.zeros((3, 0, 3, 0)), "no concepts"),
])
def test_bad_shapes_raise(W, match):
    with pytest.raises(ValueError, match=match):
        solve_edges(W)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_is_named(bad):
    W = np.zeros((3, 2, 3, 2))
    W[0, 1, 2, 0] = bad
    with pytest.raises(ValueError, match=r"W\[0, 1, 2, 0\] is"):
        solve_edges(W)


def test_lower_triangle_is_ignored():
    W = np.random.default_rng(1).normal(size=(3, 2, 3, 2))
    ref = solve_edges(W)
    W[2, :, 0, :] = np.nan  # i > j: never read
    assert solve_edges(W).objective == pytest.approx(ref.objective)


def test_bad_arguments_raise():
    W = np.zeros((3, 2, 3, 2))
    with pytest.raises(ValueError, match="solver"):
        solve_edges(W, solver="gurobi")
    with pytest.raises(ValueError, match="time_limit"):
        solve_edges(W, time_limit=0)
    with pytest.raises(ValueError, match="warm_start"):
        solve_edges(W, warm_start=[0, 1])
    with pytest.raises(ValueError, match="warm_start"):
        solve_edges(W, warm_start=[0, 1, 2])
    with pytest.raises(ValueError, match="unary"):
        solve_edges(W, unary=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"confidences\[1, 0\] is nan"):
        label_clips([[0.5, 0.5], [np.nan, 0.5]], np.eye(2))
    with pytest.raises(ValueError, match="negative"):
        label_clips([[0.5, -0.1]], np.eye(2))
    with pytest.raises(ValueError, match="2 concepts but the co-occurrence matrix has 3"):
        label_clips([[0.5, 0.5]], np.eye(3))
    with pytest.raises(ValueError, match="square"):
        label_clips([[0.5, 0.5]], np.ones((2, 3)))
    with pytest.raises(ValueError, match="weighting"):
        label_clips([[0.5, 0.5], [0.5, 0.5]], np.eye(2), weighting="sum")
    with pytest.raises(ValueError, match="decay"):
        label_clips([[0.5, 0.5], [0.5, 0.5]], np.eye(2), decay=0)


# -- labelling from confidences ---------------------------------------------------------------
CONCEPTS = ["normal", "loitering", "violent_movement"]


def _cooc():
    seqs = [["loitering"] * 8, ["normal"] * 8, ["violent_movement"] * 8, ["normal"] * 4 + ["loitering"] * 4]
    return learn_cooccurrence(seqs, CONCEPTS, window=8).matrix


@pytest.mark.parametrize("weighting", ["log", "product"])
def test_isolated_noisy_clip_is_corrected(weighting):
    conf = np.array([[0.1, 0.8, 0.1]] * 6)
    conf[3] = [0.1, 0.40, 0.55]  # a weak false "violent movement" amid loitering
    assert np.argmax(conf, axis=1)[3] == 2
    res = label_clips(conf, _cooc(), weighting=weighting)
    assert res.optimal and list(res.labels) == [1] * 6


def test_confident_sustained_change_is_kept():
    conf = np.array([[0.9, 0.1, 0.05]] * 4 + [[0.1, 0.9, 0.05]] * 4)  # normal, then loitering
    res = label_clips(conf, _cooc())
    assert list(res.labels) == [0] * 4 + [1] * 4


def test_classify_video_picks_the_class_whose_cooccurrence_fits():
    mats = learn_per_class({
        "stable": [["normal"] * 8, ["loitering"] * 8, ["violent_movement"] * 8],
        "escalation": [["loitering"] * 4 + ["violent_movement"] * 4] * 3,
    }, CONCEPTS, window=8)
    conf = np.array([[0.05, 0.85, 0.1]] * 4 + [[0.05, 0.1, 0.85]] * 4)
    best, objs = classify_video(conf, {n: m.matrix for n, m in mats.items()})
    assert best == "escalation" and objs["escalation"] > objs["stable"]
    conf = np.array([[0.05, 0.85, 0.1]] * 8)
    assert classify_video(conf, {n: m.matrix for n, m in mats.items()})[0] == "stable"
    # a longer video in windows of 4 clips: the objective is the sum over the windows
    long_conf = np.vstack([conf, conf[:2]])
    best, objs = classify_video(long_conf, {"stable": mats["stable"].matrix}, window=4)
    parts = [label_clips(c, mats["stable"].matrix).objective for c in (long_conf[:4], long_conf[4:8], long_conf[8:])]
    assert objs["stable"] == pytest.approx(sum(parts))
    with pytest.raises(ValueError, match="at least one class"):
        classify_video(conf, {})
    with pytest.raises(ValueError, match="window"):
        classify_video(conf, {"stable": mats["stable"].matrix}, window=1)


def test_window_grows_then_slides_and_labels_newest_clip():
    win = GMCPWindow(_cooc(), h=4)
    first = win.push([0.1, 0.8, 0.1])
    assert first.method == "argmax-fallback" and first.window == 1 and first.label == 1
    out = [win.push([0.1, 0.8, 0.1]) for _ in range(4)]
    assert [o.window for o in out] == [2, 3, 4, 4] and len(win) == 4
    assert all(o.method == "gmcp" and o.optimal for o in out)
    noisy = win.push([0.1, 0.40, 0.55])  # newest clip weakly "violent": context says loitering
    assert noisy.label == 1 and noisy.score == pytest.approx(0.40)
    assert len(noisy.window_labels) == 4
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        win.push([0.5, 0.5])
    with pytest.raises(ValueError, match="window h"):
        GMCPWindow(_cooc(), h=0)


# -- co-occurrence learning ------------------------------------------------------------------
def test_cooccurrence_counts_and_smoothing_on_known_sequence():
    m = learn_cooccurrence([[0, 0, 1, 1]], ["a", "b", "c"], window=3, alpha=1.0)
    # lag 1: (a,a) (a,b) (b,b); lag 2: (a,b) (a,b)
    assert m.counts.tolist() == [[1, 3, 0], [0, 1, 0], [0, 0, 0]]
    np.testing.assert_allclose(m.matrix[0], [2 / 7, 4 / 7, 1 / 7])
    np.testing.assert_allclose(m.matrix[1], [1 / 4, 2 / 4, 1 / 4])
    np.testing.assert_allclose(m.matrix[2], [1 / 3] * 3)
    m0 = learn_cooccurrence([["a", "a", "b", "b"]], ["a", "b", "c"], window=3, alpha=0.0)
    np.testing.assert_allclose(m0.matrix[0], [0.25, 0.75, 0.0])
    np.testing.assert_allclose(m0.matrix[2], [1 / 3] * 3)  # no counts: uniform


def test_cooccurrence_save_load_roundtrip_and_errors(tmp_path):
    mats = learn_per_class({"x": [[0, 1, 1]], "y": [[2, 2, 0]]}, ["a", "b", "c"], window=2)
    path = tmp_path / "cooc.json"
    save_matrices(path, mats)
    back = load_matrices(path, concepts=["a", "b", "c"])
    assert set(back) == {"x", "y"}
    np.testing.assert_allclose(back["y"].matrix, mats["y"].matrix)
    assert back["x"].counts.tolist() == mats["x"].counts.tolist() and back["x"].window == 2
    with pytest.raises(ValueError, match="vocabulary"):
        load_matrices(path, concepts=["a", "b"])
    doc = json.loads(path.read_text())
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="version 99"):
        load_matrices(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_matrices(tmp_path / "missing.json")


def test_cooccurrence_bad_labels_are_located():
    with pytest.raises(ValueError, match=r"sequence 1, clip 2: unknown concept 'robbery'"):
        learn_cooccurrence([["a"], ["a", "b", "robbery"]], ["a", "b"])
    with pytest.raises(ValueError, match=r"sequence 0, clip 0: concept index 5"):
        learn_cooccurrence([[5]], ["a", "b"])
    with pytest.raises(ValueError, match="window"):
        learn_cooccurrence([[0]], ["a", "b"], window=1)
    with pytest.raises(ValueError, match="distinct"):
        learn_cooccurrence([[0]], ["a", "a"])
