"""The forecaster zoo: known values of the classical scores, the learned ones on a planted pattern."""
from __future__ import annotations

import numpy as np
import pytest

from mapping.forecast import backtest, registry
from mapping.forecast.count365 import count_window
from mapping.forecast.prospective import prospective
from mapping.forecast.tabular import LagFeatures
from tests.test_forecast import planted_incidents

ZOO = ("count_365d", "prospective_hotspot", "logistic", "random_forest", "gradient_boosting")
#: small learned models, so that the tests stay fast
SMALL = {"logistic": {}, "random_forest": {"trees": 20, "n_jobs": 1}, "gradient_boosting": {"iterations": 40}}


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


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_evaluate_runs_any_subset_of_models(capsys):
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
