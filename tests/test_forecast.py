"""Forecast: score functions on known inputs, a tiny end-to-end model on a planted pattern, bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from imminence.cli import main
from mapping.forecast import baselines, evaluate as ev
from mapping.forecast.backtest import prepare, run
from mapping.forecast.data import CellFeatures, daily_maps
from mapping.forecast.output import ForecastFileError, read as read_forecast
from mapping.forecast.train import ForecastError, Forecaster, TrainConfig
from geo.grid import Grid
from mapping.incidents import Incidents

DATA = Path(__file__).resolve().parent / "data"
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


# -- metrics --------------------------------------------------------------------------------
def test_hit_rate_and_pai_known_values():
    mask = np.ones((1, 10), dtype=bool)
    scores = np.array([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]], dtype=float)
    counts = np.array([[2, 0, 1, 0, 0, 0, 0, 0, 0, 1]], dtype=float)
    assert ev.hit_rate(scores, counts, mask, 0.10) == pytest.approx(0.5)      # top 1 cell holds 2 of 4
    assert ev.pai(scores, counts, mask, 0.10) == pytest.approx(5.0)          # 0.5 / 0.1
    assert ev.hit_rate(scores, counts, mask, 0.30) == pytest.approx(0.75)
    assert ev.hit_rate(scores, counts, mask, 0.05) == pytest.approx(0.5)     # at least one cell is flagged


def test_hit_rate_ties_are_broken_by_lower_cell_index():
    mask = np.ones((1, 4), dtype=bool)
    scores = np.zeros((1, 1, 4))
    a = np.array([[[1, 0, 0, 0]]], dtype=float)
    b = np.array([[[0, 0, 0, 1]]], dtype=float)
    assert ev.hit_rate(scores, a, mask, 0.25) == 1.0
    assert ev.hit_rate(scores, b, mask, 0.25) == 0.0
    assert ev.flagged(np.zeros((1, 4)), 0.5).tolist() == [[True, True, False, False]]


def test_masked_scores_do_not_move_when_the_grid_is_padded():
    rng = np.random.default_rng(1)
    counts = rng.poisson(0.3, size=(20, 6, 6)).astype(float)
    scores = counts.mean(0, keepdims=True).repeat(20, 0) + rng.normal(0, 0.1, (20, 6, 6))
    mask = np.ones((6, 6), dtype=bool)
    mask[0, 0] = False
    base = ev.score_all(scores, counts, mask, probs=np.clip(scores / 3, 0, 1))
    # pad with a ring of empty cells outside the city, scored low and high
    for fill in (-5.0, 5.0):
        pc = np.pad(counts, ((0, 0), (3, 3), (3, 3)))
        ps = np.pad(scores, ((0, 0), (3, 3), (3, 3)), constant_values=fill)
        pm = np.pad(mask, 3)
        padded = ev.score_all(ps, pc, pm, probs=np.clip(ps / 3, 0, 1))
        assert padded == pytest.approx(base)
    # ... whereas unmasked padding with low scores inflates AUROC
    full = np.ones((12, 12), dtype=bool)
    pc = np.pad(counts, ((0, 0), (3, 3), (3, 3)))
    ps = np.pad(scores, ((0, 0), (3, 3), (3, 3)), constant_values=-5.0)
    assert ev.auroc(ps, pc, full) > base["auroc"] + 0.02


def test_auroc_ap_brier_known_values():
    mask = np.ones((1, 4), dtype=bool)
    scores = np.array([[[0.9, 0.8, 0.2, 0.1]]])
    counts = np.array([[[1, 0, 1, 0]]], dtype=float)
    assert ev.auroc(scores, counts, mask) == pytest.approx(0.75)
    assert ev.average_precision(scores, counts, mask) == pytest.approx((1 + 2 / 3) / 2)
    assert ev.brier(scores, counts, mask) == pytest.approx((0.01 + 0.64 + 0.64 + 0.01) / 4)
    with pytest.raises(ValueError, match="probabilities"):
        ev.brier(scores * 2, counts, mask)


def test_yesterday_baseline_breaks_ties_by_history():
    counts = np.zeros((5, 1, 1, 3))
    counts[:3, 0, 0, 2] = 1           # cell 2 busy early, then quiet
    counts[4, 0, 0, 0] = 1
    s = baselines.yesterday(counts, np.array([4]), 0)
    assert s[0, 0, 2] > s[0, 0, 1]    # all zero yesterday: history decides
    s5 = baselines.yesterday(np.concatenate([counts, counts[:1]]), np.array([5]), 0)
    assert s5[0, 0, 0] > s5[0, 0, 2]  # an incident yesterday outranks any tiebreak


# -- synthetic data with a planted pattern -------------------------------------------------------
def planted_incidents(days: int = 420, seed: int = 0) -> tuple[Grid, Incidents, list[tuple[int, int]]]:
    """8x8 cells of 100 m; background Poisson(0.03); four cells hot exactly every third day."""
    rng = np.random.default_rng(seed)
    g = Grid(box(0, 0, 800, 800), 100.0)
    counts = rng.poisson(0.03, size=(days, 2, 8, 8))
    hot = [(1, 1), (2, 5), (6, 3), (5, 6)]
    for d in range(days):
        if d % 3 == 0:
            for r, c in hot:
                counts[d, 0, r, c] += 1 + rng.poisson(0.5)
    rows = []
    t0 = pd.Timestamp("2020-01-01", tz="UTC")
    xs, ys = g.cell_centres()
    for d, k, r, c in zip(*np.nonzero(counts)):
        for _ in range(counts[d, k, r, c]):
            rows.append({"time": t0 + pd.Timedelta(days=int(d), hours=12), "category": f"T{k}",
                         "x": xs[r, c], "y": ys[r, c], "premises": "", "crime_type": ("robbery", "burglary")[k]})
    df = pd.DataFrame(rows)
    return g, Incidents(df, "UTC", ("robbery", "burglary"), metric=True), hot


TINY = TrainConfig(epochs=12, block=16, lr=5e-3, width=0.125, history=14, lstm=(32, 32), lstm3_max=64,
                   warmup_days=30, val_days=30, dropout=0.1, seed=3, threads=1, max_steps=None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    g, inc, hot = planted_incidents()
    res, fc = run(inc, g, "2021-01-01", targets=["robbery", "all"], cfg=TINY, progress=False,
                  curve_png=tmp_path_factory.mktemp("curve") / "curve.png")
    return g, inc, res, fc


@pytest.mark.slow
def test_tiny_forecast_beats_baselines_on_planted_pattern(trained):
    g, inc, res, fc = trained
    sc = res.scores["robbery"]
    for b in baselines.BASELINES:
        # the background is unpredictable noise, so AUROC moves little; precision on the planted cells a lot
        assert sc["model"]["auroc"] > sc[b]["auroc"], (b, sc)
        assert sc["model"]["ap"] > sc[b]["ap"] + 0.2, (b, sc)
        assert sc["model"]["brier"] < sc[b]["brier"], (b, sc)
    assert res.test_days == 420 - 366 and res.train_days == 366
    assert fc.history_log["best_epoch"][0] >= 1


@pytest.mark.slow
def test_checkpoint_round_trip_and_wrong_grid(trained, tmp_path):
    g, inc, res, fc = trained
    maps, t0, t1 = prepare(inc, g, "2021-01-01")
    days = np.arange(t0, t1)
    p1, _ = fc.predict(maps, days)
    path = fc.save(tmp_path / "f.pt")
    again = Forecaster.load(path, grid_id=g.grid_id)
    p2, _ = again.predict(maps, days)
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    assert 0 <= p1.min() and p1.max() <= 1
    # another grid: clear error, at load and at predict time
    other = Grid(box(0, 0, 900, 800), 100.0)
    with pytest.raises(ForecastError, match="checkpoint is for grid"):
        Forecaster.load(path, grid_id=other.grid_id)
    omaps = daily_maps(inc, other, start="2020-01-01")
    with pytest.raises(ForecastError, match="checkpoint is for grid"):
        again.predict(omaps, np.array([100]))
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ForecastError, match="not a forecast checkpoint"):
        Forecaster.load(bad)


def test_training_is_seeded_and_repeatable():
    import dataclasses

    g, inc, _ = planted_incidents(days=200)
    maps, t0, t1 = prepare(inc, g, "2020-06-01")
    cfg = dataclasses.replace(TINY, epochs=1)
    from mapping.forecast.train import fit

    a = fit(maps, t0, cfg, progress=False).predict(maps, np.arange(t0, t1))[0]
    b = fit(maps, t0, cfg, progress=False).predict(maps, np.arange(t0, t1))[0]
    np.testing.assert_array_equal(a, b)
    c = fit(maps, t0, dataclasses.replace(cfg, seed=99), progress=False).predict(maps, np.arange(t0, t1))[0]
    assert not np.array_equal(a, c)


def test_test_date_outside_the_data():
    g, inc, _ = planted_incidents(days=120)
    with pytest.raises(ForecastError, match="outside the data"):
        prepare(inc, g, "2030-01-01")
    with pytest.raises(ForecastError, match="outside the data"):
        prepare(inc, g, "2019-06-01")
    with pytest.raises(ForecastError, match="training days; need at least"):
        run(inc, g, "2020-02-01", cfg=TINY, progress=False)


def test_features_use_only_earlier_days():
    g, inc, _ = planted_incidents(days=60)
    maps = daily_maps(inc, g, start="2020-01-01")
    f = CellFeatures(maps)
    d = 40
    before = f.days([d])
    maps.counts[d:] += 7.0               # change the future
    assert np.array_equal(CellFeatures(maps).days([d]), before)


# -- CLI ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_train_predict_evaluate_on_toronto_sample(tmp_path, capsys):
    common = ["--incidents", str(DATA / "toronto_mci_sample.csv.gz"), "--format", "toronto-mci",
              "--config", str(CONFIGS / "toronto.yaml"), "--cell-size", "3000"]
    tiny = ["--epochs", "1", "--max-steps", "2", "--width", "0.125", "--history", "14", "--warmup-days", "60",
            "--val-days", "30", "--threads", "1"]
    ck = tmp_path / "t.pt"
    assert main(["forecast", "train", *common, *tiny, "--until", "2019-07-01", "--out", str(ck)]) == 0
    assert ck.exists() and ck.with_suffix(".curve.png").exists()
    out = tmp_path / "next.json"
    assert main(["forecast", "predict", *common, "--checkpoint", str(ck), "--out", str(out)]) == 0
    obj = json.loads(out.read_text())
    last = pd.read_csv(DATA / "toronto_mci_sample.csv.gz")["occurrencedate"].max()      # local midnight in UTC
    next_day = (pd.Timestamp(last.replace("+00", "+0000")).tz_convert("America/Toronto").normalize()
                + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    assert obj["date"] == next_day and "all" in obj["targets"]
    assert all(0 <= v <= 1 for v in obj["cells"]["all"].values())
    capsys.readouterr()
    assert main(["forecast", "evaluate", *common, *tiny, "--test-from", "2019-10-01", "--crime-type", "all",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["scores"]["all"]) == {"model", "yesterday", "historical_average", "kde_30d"}
    assert {"auroc", "ap", "hit@1%", "pai@10%", "brier"} <= set(res["scores"]["all"]["model"])
    # bad inputs through the CLI
    assert main(["forecast", "evaluate", *common, *tiny, "--test-from", "2031-01-01"]) == 1
    assert "outside the data" in capsys.readouterr().err
    assert main(["forecast", "predict", "--incidents", str(DATA / "toronto_mci_sample.csv.gz"), "--format",
                 "toronto-mci", "--config", str(CONFIGS / "toronto.yaml"), "--cell-size", "2000",
                 "--checkpoint", str(ck), "--out", str(out)]) == 1
    assert "checkpoint is for grid" in capsys.readouterr().err
    assert main(["forecast", "train", "--config", str(CONFIGS / "toronto.yaml"), "--out", str(tmp_path / "x.pt")]) == 1
    assert "no incident files" in capsys.readouterr().err
    g = Grid(box(0, 0, 500, 500), 100.0)
    with pytest.raises(ForecastFileError, match="forecast is for grid"):
        read_forecast(out, g)
