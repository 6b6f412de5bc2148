"""The forecaster zoo: known values of the classical scores, the learned ones on a planted pattern."""
from __future__ import annotations

import numpy as np
import pytest

from mapping.forecast import backtest, registry
from mapping.forecast.count365 import count_window
from mapping.forecast.prospective import prospective
from mapping.forecast.tabular import LagFeatures
from tests.test_forecast import planted_incidents

ZOO = ("count_365d", "prospective_hotspot", "logistic", "random_forest", "gradient_boosting", "sepp")
#: small learned models, so that the tests stay fast
SMALL = {"logistic": {}, "random_forest": {"trees": 20, "n_jobs": 1}, "gradient_boosting": {"iterations": 25}}


def test_every_zoo_forecaster_is_registered():
    assert set(ZOO) <= set(registry.names())


def test_count_365d_counts_the_last_year_only():
    counts = np.zeros((400, 1, 1, 2))
    counts[0, 0, 0, 0] = 5          # 399 days before day 399: forgotten
    counts[100, 0, 0, 0] = 1
    counts[398, 0, 0, 1] = 2
    s = count_window(counts, np.array([399, 101, 100]), 0)
    assert s[:, 0].tolist() == [[1.0, 2.0], [6.0, 0.0], [5.0, 0.0]]


def test_prospective_hotspot_weights_are_open_cps_classic_weight():
    counts = np.zeros((100, 1, 21, 21))
    counts[40, 0, 10, 10] = 1       # one incident in the middle cell on day 40
    p = prospective(counts, np.array([41, 47, 48, 55, 96, 97]), 0)
    # same cell, lag 1..7 days = week 0: weight 1; lag 8 = week 1: 1/2; lag 15: 1/3
    assert p[:, 10, 10].tolist() == pytest.approx([1, 1, 1 / 2, 1 / 3, 1 / 8, 0])   # lag 57 = week 8: gone
    # space: Chebyshev distance in cells, 1/(1+d), nothing from 8 cells on
    assert p[0, 11, 11] == pytest.approx(1 / 2) and p[0, 10, 13] == pytest.approx(1 / 4)
    assert p[0, 3, 10] == pytest.approx(1 / 8) and p[0, 2, 10] == 0 and p[0, 10, 18] == 0
    assert p[2, 17, 3] == pytest.approx(1 / 2 * 1 / 8)


def test_sepp_recovers_the_parameters_of_a_simulated_process():
    from mapping.forecast.sepp import fit_sepp

    rng = np.random.default_rng(0)
    D, N, theta, q = 500, 120, 0.5, 0.6
    mu = rng.gamma(0.5, 0.1, N)
    c = np.zeros((D, N))
    for d in range(D):            # background, then each incident's Poisson(theta) follow-ups at geometric lags
        c[d] += rng.poisson(mu)
        for n in np.nonzero(c[d])[0]:
            for lag in rng.geometric(1 - q, rng.poisson(theta * c[d, n])):
                if d + lag < D:
                    c[d + lag, n] += 1
    m, th, qq = fit_sepp(c, iterations=60)
    assert th == pytest.approx(theta, abs=0.08) and qq == pytest.approx(q, abs=0.08)
    assert np.corrcoef(m, mu)[0, 1] > 0.9


def test_lag_features_read_only_earlier_days():
    g, inc, _ = planted_incidents(days=60)
    maps, _, _ = backtest.prepare(inc, g, "2020-02-15")
    d = 40
    before = LagFeatures(maps).days(np.array([d, d - 10]), 0)
    maps.counts[d:] += 9.0
    assert np.array_equal(LagFeatures(maps).days(np.array([d, d - 10]), 0), before)
    f = LagFeatures(maps)
    assert f.days(np.array([d]), 0).shape == (1, len(f.names), int(maps.mask.sum()))


@pytest.fixture(scope="module")
def planted():
    return planted_incidents()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_learned_forecasters_find_the_planted_pattern(planted, name):
    g, inc, _ = planted
    fc = registry.create(name, targets=["robbery"], **SMALL[name])
    res, fitted = backtest.run(inc, g, "2021-01-01", targets=["robbery"], progress=False,
                               forecasters=[fc, "historical_average", "count_365d", "prospective_hotspot"])
    sc = res.scores["robbery"]
    assert fitted is fc and res.model_name == name
    # the lags see "hot every third day"; the long-run maps cannot
    for b in ("historical_average", "count_365d", "prospective_hotspot"):
        assert sc["model"]["ap"] > sc[b]["ap"] + 0.2, (b, sc)
        assert sc["model"]["brier"] < sc[b]["brier"], (b, sc)
    pred = fc.predict(*_maps_days(inc, g), ["robbery"])
    assert 0 <= pred.probs.min() and pred.probs.max() <= 1 and np.array_equal(pred.scores, pred.probs)
    with pytest.raises(ValueError, match="not fitted for"):
        fc.predict(*_maps_days(inc, g), ["burglary"])


def _maps_days(inc, g):
    maps, t0, t1 = backtest.prepare(inc, g, "2021-01-01")
    return maps, np.arange(t0, t0 + 3)


def test_classical_zoo_forecasters_run_by_name(planted):
    g, inc, hot = planted
    res, _ = backtest.run(inc, g, "2021-01-01", targets=["robbery"], progress=False,
                          forecasters=["prospective_hotspot", "count_365d", "historical_average"])
    sc = res.scores["robbery"]
    assert set(sc) == {"model", "count_365d", "historical_average"}
    # the planted cells are hot in the long run: every map ranks them high
    assert all(s["pai@10%"] > 3 for s in sc.values()), sc


# -- metrics added for the rolling backtest ------------------------------------------------------------
def test_pei_and_poisson_log_score_known_values():
    from mapping.forecast import evaluate as ev

    mask = np.ones((1, 4), dtype=bool)
    counts = np.array([[[0, 3, 1, 0]], [[2, 0, 0, 0]]], dtype=float)
    scores = np.array([[[1, 0, 0.5, 0]], [[1, 0, 0, 0]]])
    # top 1 cell: day 1 catches 0 of the best 3, day 2 catches 2 of the best 2
    assert ev.pei(scores, counts, mask, 0.25) == pytest.approx(2 / 5)
    assert ev.hit_rate(scores, counts, mask, 0.25) == pytest.approx(2 / 6)
    p = np.full((1, 1, 1), 1 - np.exp(-2.0))                       # lambda = 2
    y = np.array([[[3.0]]])
    assert ev.log_score(p, y, np.ones((1, 1), bool)) == pytest.approx(-(3 * np.log(2) - 2 - np.log(6)))
    # AUROC over the cells that saw crime: the never-busy cell 3 is left out
    assert ev.auroc(scores, counts, ev.active_cells(counts, mask[0][None])) == pytest.approx(
        ev.score_all(scores, counts, mask)["auroc_active"])
    assert set(ev.score_all(scores, counts, mask, probs=scores)) >= {
        "hit@0.5%", "pai@2%", "pei@10%", "logscore", "auroc_active"}


def test_bootstrap_statistics_reproduce_the_exact_scores():
    from mapping.forecast import evaluate as ev

    rng = np.random.default_rng(2)
    lam = rng.gamma(0.3, 0.3, (12, 15))
    counts = rng.poisson(lam, (40, 12, 15)).astype(float)
    scores = np.round(lam * 5)[None].repeat(40, 0)                   # ties, as the count maps have
    mask = np.ones((12, 15), dtype=bool)
    mask[:2, :3] = False
    probs = scores / scores.max()
    exact = ev.score_all(scores, counts, mask, probs=probs)
    st = ev.day_stats(scores, counts, mask, probs=probs)
    ones = ev.pooled(st, np.ones(40))
    assert {k: float(v[0]) for k, v in ones.items()} == pytest.approx({k: exact[k] for k in ones})
    # a resample that counts day 0 twice and drops day 1 = the exact scores of that day list
    w = np.ones(40)
    w[0], w[1] = 2, 0
    days = [0, 0] + list(range(2, 40))
    again = ev.score_all(scores[days], counts[days], mask, probs=probs[days])
    assert {k: float(v[0]) for k, v in ev.pooled(st, w[None]).items()} == pytest.approx(
        {k: again[k] for k in ones})


# -- rolling origins -------------------------------------------------------------------------------
def test_no_forecaster_reads_the_origin_day_or_later():
    """The one no-leakage check of every backtest: ``forecast_from`` with garbage from the origin on."""
    import dataclasses

    from tests.test_forecast import TINY

    g, inc, _ = planted_incidents(days=150)
    maps, t0, _ = backtest.prepare(inc, g, "2020-04-15")
    garbage = dataclasses.replace(maps, counts=maps.counts.copy())
    garbage.counts[t0:] = np.random.default_rng(5).poisson(4.0, garbage.counts[t0:].shape)
    # the smallest of each (the check is about what they read, not how well they forecast)
    cfg = dataclasses.replace(TINY, epochs=1, max_steps=1, history=7, val_days=8, warmup_days=14, block=8,
                              lstm=(8, 8), lstm3_max=8)
    opts = dict(grid=g, cfg=cfg, progress=False, targets=["robbery"])
    lean = {"random_forest": {"trees": 5, "n_jobs": 1}, "gradient_boosting": {"iterations": 5}}
    for name in registry.names():
        a = backtest.forecast_from(registry.create(name, **opts, **lean.get(name, {})), maps, t0, np.array([t0]),
                                   ["robbery"])[0]
        b = backtest.forecast_from(registry.create(name, **opts, **lean.get(name, {})), garbage, t0,
                                   np.array([t0]), ["robbery"])[0]
        assert np.array_equal(a.scores, b.scores), name
        assert (a.probs is None) == (b.probs is None) and (a.probs is None or np.array_equal(a.probs, b.probs)), name
    # ... and the check itself can fail: a forecaster reading the origin day is caught
    with pytest.raises(ValueError, match="must not precede"):
        backtest.forecast_from(registry.create("yesterday"), maps, t0, np.array([t0 - 1]), ["robbery"])


def test_rolling_backtest_pools_months_with_intervals_and_pairs(planted):
    from mapping.forecast.train import ForecastError

    g, inc, _ = planted
    fc = registry.create("logistic", rows=6000, targets=["robbery"])
    res = backtest.rolling(inc, g, origins=3, targets=["robbery"], boot=300,
                           forecasters=[fc, "historical_average", "count_365d", "prospective_hotspot"])
    assert res.origins == ["2020-11-01", "2020-12-01", "2021-01-01"] and res.test_days == 30 * 3
    assert res.baselines == ["historical_average", "count_365d", "prospective_hotspot"]
    assert [len(v) for v in res.per_origin["robbery"].values()] == [3] * 4
    for m, by_metric in res.scores["robbery"].items():
        assert {"auroc", "auroc_active", "ap", "hit@0.5%", "pai@10%", "pei@5%", "brier", "logscore"} <= set(by_metric)
        for k, v in by_metric.items():
            assert v["lo"] - 2e-3 <= v["value"] <= v["hi"] + 2e-3, (m, k, v)
    ap = res.paired["robbery"]["logistic"]["ap"]
    assert ap["baseline"] == "historical_average" and ap["lo"] > 0.1, ap   # the lags see the period-3 pattern
    assert set(res.paired["robbery"]) == {"logistic"}
    # explicit origins, and origins outside the data
    res2 = backtest.rolling(inc, g, origins=["2021-01-15"], targets=["robbery"], boot=50, horizon_days=10,
                            forecasters=["count_365d", "historical_average"])
    assert res2.test_days == 10 and res2.paired["robbery"] == {}
    with pytest.raises(ForecastError, match="before the data"):
        backtest.rolling(inc, g, origins=30, forecasters=["count_365d"])


# -- CLI ----------------------------------------------------------------------------------------------
def test_cli_evaluate_any_subset_of_models_and_rolling(capsys):
    import json

    from imminence.cli import main
    from tests.test_forecast import CONFIGS, DATA

    common = ["--incidents", str(DATA / "toronto_mci_sample.csv.gz"), "--format", "toronto-mci",
              "--config", str(CONFIGS / "toronto.yaml"), "--cell-size", "3000"]
    assert main(["forecast", "evaluate", *common, "--test-from", "2019-10-01", "--crime-type", "all", "--json",
                 "--models", "logistic,count_365d,prospective_hotspot"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model_name"] == "logistic" and set(res["scores"]["all"]) == {"model", "count_365d",
                                                                              "prospective_hotspot"}
    with pytest.raises(SystemExit):
        main(["forecast", "evaluate", *common, "--test-from", "2019-10-01", "--models", "logistic,arima"])
    assert "unknown forecaster(s) ['arima']; known: cnn_lstm" in capsys.readouterr().err
    assert main(["forecast", "evaluate", *common, "--rolling", "2", "--crime-type", "all", "--boot", "100",
                 "--models", "logistic,historical_average,count_365d"]) == 0
    out = capsys.readouterr().out
    assert "rolling origins" in out and "2 origins" in out and "pei@0.5%" in out and "logscore" in out
    assert "logistic minus the best baseline" in out and " [" in out
    assert main(["forecast", "evaluate", *common, "--models", "count_365d"]) == 1
    assert "--rolling N" in capsys.readouterr().err
