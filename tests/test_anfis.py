"""ANFIS: hybrid learning on known functions, Mackey-Glass, clustering, explanations, persistence, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from skfuzzy import gaussmf

from inference.anfis import ANFIS, ANFISError, VERSION
from inference.mackey_glass import jang_dataset, mackey_glass, ndei
from inference.subclust import subtractive_clustering


def _sin_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-1, 1, n)])
    return X, np.sin(X[:, 0]) * X[:, 1]


def test_hybrid_learning_fits_known_function_better_than_mean_baseline() -> None:
    X, y = _sin_data(400, 0)
    Xc, yc = _sin_data(300, 1)
    m = ANFIS(n_mfs=[4, 2]).fit(X, y, epochs=60, X_check=Xc, y_check=yc)
    rmse = np.sqrt(np.mean((m.predict(Xc) - yc) ** 2))
    baseline = np.sqrt(np.mean((y.mean() - yc) ** 2))
    assert rmse < 0.05 * baseline
    assert len(m.history_["train"]) == 60 and len(m.history_["check"]) == 60
    # the premise updates improved on the first epoch (pure least squares on the initial MFs)
    assert min(m.history_["check"]) < m.history_["check"][0]
    # the returned model is the one scored: its check error equals the best recorded epoch's
    assert m.check_rmse_ == pytest.approx(min(m.history_["check"]), rel=1e-6)


def test_premise_gradient_matches_finite_differences() -> None:
    """The backward pass uses gaussmf's exp(-(x-c)^2/(2 sigma^2)) convention."""
    X, y = _sin_data(80, 2)
    m = ANFIS(n_mfs=2, ridge=0.0).fit(X, y, epochs=1)
    Xs = m._scale(X)

    def loss() -> float:
        return 0.5 * float(np.sum((m._predict_scaled(Xs) - y) ** 2))

    wbar = m._normalised_firing(Xs)
    Y = m._rule_outputs(Xs)
    f = (wbar * Y).sum(1)
    c0 = [c.copy() for c in m.centres]
    s0 = [s.copy() for s in m.sigmas]
    eps = 1e-6
    num = []
    for params in (m.centres, m.sigmas):  # central differences of the loss
        for i in range(2):
            for k in range(2):
                params[i][k] += eps
                up = loss()
                params[i][k] -= 2 * eps
                down = loss()
                params[i][k] += eps
                num.append((up - down) / (2 * eps))
    num = np.array(num)
    step = 1e-7
    m._premise_step(Xs, wbar, Y, f, f - y, step)
    moved = np.concatenate([c0[i] - m.centres[i] for i in range(2)] + [s0[i] - m.sigmas[i] for i in range(2)])
    # the step is -eta * gradient with eta = step / ||gradient||
    analytic = moved / step * np.linalg.norm(num)
    np.testing.assert_allclose(analytic, num, rtol=2e-3, atol=1e-6)


def test_memberships_are_skfuzzy_gaussmf() -> None:
    X, y = _sin_data(100, 3)
    m = ANFIS(n_mfs=3).fit(X, y, epochs=3)
    Xs = m._scale(X[:5])
    w = np.ones((5, m.n_rules))
    for i in range(2):
        w *= np.stack([gaussmf(Xs[:, i], m.centres[i][k], m.sigmas[i][k]) for k in m.rule_mfs[:, i]], 1)
    np.testing.assert_allclose(m._normalised_firing(Xs), w / w.sum(1, keepdims=True), rtol=1e-12)


def test_mackey_glass_reference_fast() -> None:
    Xt, yt, Xc, yc = jang_dataset()
    m = ANFIS(n_mfs=2).fit(Xt, yt, epochs=40, X_check=Xc, y_check=yc)
    assert m.n_rules == 16
    assert ndei(m.predict(Xc), yc) < 0.0085  # Jang: ~0.007 after many more epochs (bench/bench_anfis.py)
    assert ndei(m.predict(Xt), yt) < 0.0085


def test_mackey_glass_series_is_the_chaotic_attractor() -> None:
    x = mackey_glass(600)
    assert x[0] == 1.2
    assert x[17] == pytest.approx(1.2 * np.exp(-1.7), abs=1e-9)  # zero history: pure decay up to t = tau
    assert 0.2 < x[200:].min() < 0.5 and 1.2 < x[200:].max() < 1.4


def _mackey_glass_scipy(t_max: int = 1200, tau: float = 17.0, x0: float = 1.2) -> np.ndarray:
    """Jang's series built independently of inference.mackey_glass: scipy's DOP853 by the method of steps.

    On [k tau, (k+1) tau] the delayed term is the previous interval's dense
    output (0 on the first interval: x(t) = 0 for t < 0), so every interval is
    a plain ODE; sampled at integer t.
    """
    out = np.empty(t_max + 1)
    prev, t0, start = None, 0.0, x0
    while t0 < t_max:
        t1 = min(t0 + tau, float(t_max))

        def rhs(t: float, x: np.ndarray, prev=prev) -> list[float]:
            xd = 0.0 if prev is None else float(prev(t - tau)[0])
            return [0.2 * xd / (1.0 + xd ** 10) - 0.1 * x[0]]

        sol = solve_ivp(rhs, (t0, t1), [start], method="DOP853", rtol=1e-9, atol=1e-11, dense_output=True)
        ts = np.arange(np.ceil(t0), np.floor(t1) + 1)
        out[ts.astype(int)] = sol.sol(ts)[0]
        prev, t0, start = sol.sol, t1, float(sol.y[0, -1])
    return out


def test_mackey_glass_matches_jang_on_an_independently_integrated_series() -> None:
    """Issue 15: Jang's setup integrated by scipy, not by the project; checking NDEI <= 0.007 (Jang: ~0.007)."""
    ref = _mackey_glass_scipy()
    # the project's RK4 (dt 0.1) is the same series: a chaotic DDE amplifies any O(dt) slip
    # (e.g. reading x(0) = 1.2 inside the step that ends at t = tau) to O(0.1) by t ~ 600
    assert np.abs(mackey_glass()[:1124] - ref[:1124]).max() < 1e-5
    Xt, yt, Xc, yc = jang_dataset(ref)
    m = ANFIS(n_mfs=2).fit(Xt, yt, epochs=500, X_check=Xc, y_check=yc)
    assert (m.n_rules, m.n_params) == (16, 96)  # Jang: 16 rules, 104 parameters with 3-parameter bell MFs
    check, train = ndei(m.predict(Xc), yc), ndei(m.predict(Xt), yt)
    assert check <= 0.007
    assert train <= 0.007
    assert check < 1.2 * train  # no train/check gap on this series (the issue saw 0.0052 / 0.0110 on another)
    assert len(m.history_["check"]) == 500
    assert m.check_rmse_ == pytest.approx(min(m.history_["check"]), rel=1e-9)


def test_subtractive_clustering_finds_well_separated_blobs() -> None:
    rng = np.random.default_rng(4)
    centres = np.array([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9], [0.1, 0.9]])
    X = np.vstack([c + rng.normal(0, 0.02, (100, 2)) for c in centres])
    found = subtractive_clustering(X, 0.3)
    assert len(found) == 4
    for c in centres:
        assert np.min(np.linalg.norm(found - c, axis=1)) < 0.06


def test_clustered_structure_and_per_input_radii() -> None:
    X, y = _sin_data(400, 5)
    m = ANFIS(radii=[0.3, 0.6]).fit(X, y, epochs=20)
    assert 2 <= m.n_rules < 40
    assert all(len(c) == m.n_rules for c in m.centres)
    first = ANFIS(radii=[0.3, 0.6]).fit(X, y, epochs=1)  # one epoch: the premises are the initial ones
    np.testing.assert_allclose(first.sigmas[0], 0.3 / np.sqrt(8))
    np.testing.assert_allclose(first.sigmas[1], 0.6 / np.sqrt(8))
    assert ANFIS(radii=0.15).fit(X, y, epochs=1).n_rules > first.n_rules  # smaller radius, more rules


def test_explain_adds_up_to_prediction_and_rules_are_readable() -> None:
    X, y = _sin_data(300, 6)
    m = ANFIS(n_mfs=3, input_names=["angle", "gain"]).fit(X, y, epochs=10)
    x = X[7]
    ex = m.explain(x)
    assert len(ex) == m.n_rules
    assert sum(e.strength * e.output for e in ex) == pytest.approx(float(m.predict(x)[0]), abs=1e-9)
    assert sum(e.strength for e in ex) == pytest.approx(1.0)
    assert [e.strength for e in ex] == sorted((e.strength for e in ex), reverse=True)
    rules = m.rules()
    assert len(rules) == 9
    assert rules[0].startswith("IF angle is low") and "gain is" in rules[0] and "THEN y =" in rules[0]
    assert {"low", "medium", "high"} <= {w for r in rules for w in ("low", "medium", "high") if f"is {w} " in r}
    assert len(m.explain(x, top=2)) == 2


def test_save_load_round_trip(tmp_path) -> None:
    X, y = _sin_data(300, 7)
    m = ANFIS(radii=0.4, input_names=["a", "b"], output_name="z").fit(X, y, epochs=5)
    m.meta = {"crime": "robbery"}
    path = tmp_path / "m.json"
    m.save(path)
    m2 = ANFIS.load(path)
    np.testing.assert_array_equal(m2.predict(X), m.predict(X))
    assert m2.rules() == m.rules()
    assert m2.meta == {"crime": "robbery"} and m2.input_names == ["a", "b"]


def test_load_rejects_other_versions_and_missing_fields(tmp_path) -> None:
    X, y = _sin_data(100, 8)
    d = ANFIS(n_mfs=2).fit(X, y, epochs=2).to_dict()
    p = tmp_path / "m.json"
    p.write_text(json.dumps({**d, "version": VERSION + 1}))
    with pytest.raises(ANFISError, match=r"m\.json: model format version 2 is not supported"):
        ANFIS.load(p)
    p.write_text(json.dumps({k: v for k, v in d.items() if k != "consequents"}))
    with pytest.raises(ANFISError, match="missing field.*consequents"):
        ANFIS.load(p)
    p.write_text(json.dumps({**d, "format": "something.else"}))
    with pytest.raises(ANFISError, match="not an ANFIS model file"):
        ANFIS.load(p)
    p.write_text(json.dumps({**d, "consequents": [[1.0, 2.0]]}))
    with pytest.raises(ANFISError, match="invalid model.*consequents"):
        ANFIS.load(p)
    p.write_text("{not json")
    with pytest.raises(ANFISError, match="not JSON"):
        ANFIS.load(p)
    with pytest.raises(ANFISError, match="cannot read"):
        ANFIS.load(tmp_path / "absent.json")


def test_constant_and_far_out_inputs_give_no_nan() -> None:
    rng = np.random.default_rng(9)
    X = np.column_stack([rng.uniform(0, 1, 200), np.full(200, 3.0)])  # second input constant
    y = 2 * X[:, 0] + 1
    m = ANFIS(n_mfs=2).fit(X, y, epochs=10)
    assert np.all(np.isfinite(m.predict(X)))
    far = np.array([[1e6, -1e6], [-5e3, 3.0], [0.5, 1e9]])
    out = m.predict(far)
    assert np.all(np.isfinite(out))
    ex = m.explain(far[0])
    assert sum(e.strength for e in ex) == pytest.approx(1.0)
    mc = ANFIS(radii=0.5).fit(X, y, epochs=5)
    assert np.all(np.isfinite(mc.predict(far)))


def test_bad_inputs_raise_clear_errors() -> None:
    X, y = _sin_data(200, 10)
    Xn = X.copy()
    Xn[17, 1] = np.nan
    with pytest.raises(ANFISError, match=r"column 1 \('gain'\) at row 17"):
        ANFIS(n_mfs=2, input_names=["angle", "gain"]).fit(Xn, y)
    Xi = X.copy()
    Xi[3, 0] = np.inf
    with pytest.raises(ANFISError, match=r"column 0 \('x1'\) at row 3"):
        ANFIS(n_mfs=2).fit(Xi, y)
    yn = y.copy()
    yn[5] = np.nan
    with pytest.raises(ANFISError, match="y: 1 NaN/infinite value.*row 5"):
        ANFIS(n_mfs=2).fit(X, yn)
    with pytest.raises(ANFISError, match="empty training set"):
        ANFIS(n_mfs=2).fit(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ANFISError, match=r"10 training samples for 39 parameters"):
        ANFIS(n_mfs=3).fit(X[:10], y[:10])
    with pytest.raises(ANFISError, match="y has 5 values for 200 rows"):
        ANFIS(n_mfs=2).fit(X, y[:5])
    m = ANFIS(n_mfs=2).fit(X, y, epochs=2)
    with pytest.raises(ANFISError, match="x: 1 NaN"):
        m.explain([np.nan, 0.0])
    with pytest.raises(ANFISError, match="3 columns, the model has 2 inputs"):
        m.predict(np.zeros((4, 3)))
    with pytest.raises(ANFISError, match="not trained"):
        ANFIS(n_mfs=2).predict(X)
    with pytest.raises(ANFISError, match="not both"):
        ANFIS(n_mfs=2, radii=0.5)
