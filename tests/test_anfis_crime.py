"""Crime-imminence models: training pairs and targets, training report, model folders, dataset reader, CLI."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml

from geo.vocabulary import crime_concepts
from imminence.cli import main
from imminence.configfile import ConfigError, load
from inference.config import CrimeModelsConfig
from inference.crime_models import (ClipRecord, CrimeModelError, build_pairs, default_models_dir, load_models,
                                    records_from_dataset, train_models)
from inference.synthetic import generate_records
from streamer.schemas import CRIME_TYPES

CONFIG = "configs/crime_models.yaml"
T0 = datetime(2026, 5, 1, 20, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def cfg() -> CrimeModelsConfig:
    return load(CrimeModelsConfig, CONFIG)


def _records(minutes: int, crimes: dict[int, str], concepts: dict[int, str] | None = None,
             cell: str = "r0c0") -> list[ClipRecord]:
    """30 clips of 2 s per minute; crimes/concepts by minute."""
    out = []
    for m in range(minutes):
        for k in range(30):
            t = T0 + timedelta(seconds=60 * m + 2 * k)
            concept = (concepts or {}).get(m, "normal") if k < 3 else "normal"
            staged = (crimes[m],) if m in crimes and k == 10 else ()
            out.append(ClipRecord(cell, t, concept, staged, "cam"))
    return out


def test_pairs_targets_inputs_and_chronological_split(cfg) -> None:
    recs = _records(10, {4: "robbery", 8: "larceny"}, {3: "sneaking", 4: "violent_movement", 8: "item_seizure"})
    ps = build_pairs(recs, cfg)
    assert ps.windows == 10 and ps.train_windows == 6
    rob = ps.crimes["robbery"]
    y = np.concatenate([rob.y_train, rob.y_check])
    # robbery staged in minute 4: 3 two windows ahead, 7 one window ahead, 10 during
    assert y.tolist() == [0, 0, 3, 7, 10, 0, 0, 0, 0, 0]
    lar = np.concatenate([ps.crimes["larceny"].y_train, ps.crimes["larceny"].y_check])
    assert lar.tolist() == [0, 0, 0, 0, 0, 0, 3, 7, 10, 0]
    X = np.vstack([rob.X_train, rob.X_check])
    assert rob.input_names == ["rate", "hour", "violent_movement", "item_seizure", "sneaking", "lethal_object",
                               "traffic_violation"]
    assert X[3, 1] == pytest.approx(20 + 3 / 60)
    assert X[4, 2] == 3 and X[3, 4] == 3 and X[8, 3] == 3  # counts of the concepts in their window
    # rate: 1 robbery window in the 6 training minutes, per 24 h; larceny's crime lies in the checking part
    assert rob.rates["r0c0"] == pytest.approx(1 / 0.1 * 24)
    assert ps.crimes["larceny"].rates["r0c0"] == 0.0
    assert np.all(X[:, 0] == rob.rates["r0c0"])


def test_sliding_training_windows(cfg) -> None:
    recs = _records(10, {4: "robbery"}, {4: "violent_movement"})
    ps = build_pairs(recs, cfg.model_copy(update={"slide_s": 30.0}))
    rob = ps.crimes["robbery"]
    # 21 windows of 60 s every 30 s hold clips of the 10 minutes; the one straddling the split is dropped
    assert ps.windows == len(rob.y_train) + len(rob.y_check) == 20
    X = np.vstack([rob.X_train, rob.X_check])
    y = np.concatenate([rob.y_train, rob.y_check])
    assert X[:, 2].max() == 3 and y.max() == 10
    with pytest.raises(ValueError, match="must divide window_s"):
        CrimeModelsConfig.model_validate({**cfg.model_dump(), "slide_s": 25})


def test_rates_from_config_override(cfg) -> None:
    c = cfg.model_copy(update={"rates": {"robbery": {"r0c0": 1.5}}})
    ps = build_pairs(_records(10, {4: "robbery"}), c)
    assert np.all(ps.crimes["robbery"].X_train[:, 0] == 1.5)


def test_pairs_bad_input(cfg) -> None:
    with pytest.raises(CrimeModelError, match="training set is empty"):
        build_pairs([], cfg)
    with pytest.raises(CrimeModelError, match="unknown concept 'dancing'"):
        build_pairs([ClipRecord("r0c0", T0, "dancing")], cfg)
    with pytest.raises(CrimeModelError, match="has no time zone"):
        build_pairs([ClipRecord("r0c0", T0.replace(tzinfo=None), "normal")], cfg)
    with pytest.raises(CrimeModelError, match="unknown crime 'arson'"):
        build_pairs([ClipRecord("r0c0", T0, "normal", ("arson",))], cfg)
    with pytest.raises(CrimeModelError, match="cannot be split"):
        build_pairs(_records(1, {}), cfg)


def test_config_errors_name_file_and_key(tmp_path) -> None:
    p = tmp_path / "cm.yaml"
    table = crime_concepts()  # the shipped config takes the table from geo.vocabulary: override it, with a typo
    table["robbery"]["sneaking"] = ["sneakin"]
    text = open(CONFIG).read() + yaml.safe_dump({"crimes": {c: {"concepts": t} for c, t in table.items()}})
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"cm\.yaml:\d+: crimes -> robbery -> concepts: .*unknown concept"):
        load(CrimeModelsConfig, p)
    p.write_text(open(CONFIG).read().replace("radii: 0.35", "radius: 0.35"))
    with pytest.raises(ConfigError, match="radius: unknown key .*did you mean 'radii'"):
        load(CrimeModelsConfig, p)


@pytest.mark.slow
def test_train_writes_models_report_and_beats_mean_baseline(cfg, tmp_path) -> None:
    recs = generate_records(cells=8, hours=3, seed=3, crimes_per_hour=3)
    ps = build_pairs(recs, cfg)
    c = cfg.model_copy(update={"epochs": 8})
    report = train_models(ps, c, tmp_path, source="test")
    for name in [f"{t}.json" for t in CRIME_TYPES] + ["report.json", "error_curves.png", "membership_functions.png"]:
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["crimes"].keys() == set(CRIME_TYPES)
    better = [t for t, r in report["crimes"].items() if r["check_rmse"] < r["baseline_check_rmse"]]
    assert len(better) >= 3, report["crimes"]
    for r in report["crimes"].values():
        assert 1 <= r["rules"] and r["train_samples"] > r["check_samples"]
    models = load_models(tmp_path)
    m = models["robbery"]
    hot = m.inputs("r0c0", T0.timestamp(), {"violent_movement": 8, "forceful_seizure": 6, "lethal_object": 3})
    calm = m.inputs("r0c0", T0.timestamp(), {"normal": 30})
    assert m.score(np.vstack([hot, calm]))[0] > m.score(np.vstack([hot, calm]))[1]


def test_bundled_models_load_and_score() -> None:
    models = load_models(default_models_dir())
    assert set(models) == set(CRIME_TYPES)
    for crime, m in models.items():
        assert m.anfis.input_names[:2] == ["rate", "hour"] and len(m.anfis.input_names) == 7
        x = m.inputs("r9c9", T0.timestamp(), {"loitering": 1})  # unknown cell: the default rate
        assert x[0] == m.rates["default"]
        assert 0 <= m.score(x[None, :])[0] <= 10
        assert m.anfis.rules()[0].startswith("IF rate is")


def test_model_folder_errors(tmp_path) -> None:
    with pytest.raises(CrimeModelError, match="does not exist"):
        load_models(tmp_path / "nope")
    for crime in CRIME_TYPES:
        (tmp_path / f"{crime}.json").write_text((default_models_dir() / f"{crime}.json").read_text())
    (tmp_path / "battery.json").unlink()
    with pytest.raises(CrimeModelError, match="no model for battery"):
        load_models(tmp_path)
    (tmp_path / "battery.json").write_text((default_models_dir() / "robbery.json").read_text())
    with pytest.raises(CrimeModelError, match="holds the robbery model, expected battery"):
        load_models(tmp_path)
    d = json.loads((default_models_dir() / "battery.json").read_text())
    d["version"] = 99
    (tmp_path / "battery.json").write_text(json.dumps(d))
    with pytest.raises(CrimeModelError, match="version 99 is not supported"):
        load_models(tmp_path)
    d["version"] = 1
    del d["meta"]["concepts"]
    (tmp_path / "battery.json").write_text(json.dumps(d))
    with pytest.raises(CrimeModelError, match="not a crime model"):
        load_models(tmp_path)


def _dataset(root, minutes: int = 1) -> None:
    from geo.grid import GridConfig
    from streamer.config import Position
    from streamer.dataset import (ClipTruth, DatasetManifest, GroundTruth, VideoEntry, write_ground_truth,
                                  write_manifest)

    clips = [ClipTruth(index=0, start_s=0, end_s=2, concept="loitering"),
             ClipTruth(index=1, start_s=2, end_s=4, concept="violent_movement", crimes=["robbery"])]
    clips += [ClipTruth(index=k, start_s=2 * k, end_s=2 * k + 2, concept="normal", crimes=["robbery"] if k % 97 == 0 else [])
              for k in range(2, 30 * minutes)]
    (root / "cam1.mp4").write_bytes(b"\0")
    write_ground_truth(root / "cam1.gt.json", GroundTruth(fps=10, clip_seconds=2, clips=clips))
    write_manifest(root, DatasetManifest(
        grid=GridConfig(bbox=(-79.40, 43.64, -79.37, 43.66), cell_size_m=500),
        videos=[VideoEntry(file="cam1.mp4", camera_id="cam1", position=Position(lon=-79.385, lat=43.65), start=T0,
                           annotations="cam1.gt.json")]))


def test_records_from_dataset(tmp_path) -> None:
    _dataset(tmp_path)
    recs = records_from_dataset(tmp_path)
    cell = recs[0].cell_id
    assert cell.startswith("r") and all(r.cell_id == cell for r in recs)
    assert [(r.clip_start, r.concept, r.crimes) for r in recs[:2]] == [
        (T0, "loitering", ()), (T0 + timedelta(seconds=2), "violent_movement", ("robbery",))]


def test_rates_from_incidents() -> None:
    from inference.crime_models import rates_from_incidents

    r = rates_from_incidents(["a", "a", "b", None, "a"], ["robbery", "robbery", "robbery", "robbery", "battery"],
                             span_hours=48, all_cells=["a", "b", "c", "d"], rate_per_hours=24)
    assert r["robbery"] == {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.0, "default": 0.375}
    assert r["battery"]["a"] == 0.5 and r["larceny"]["default"] == 0.0
    with pytest.raises(CrimeModelError, match="span must be positive"):
        rates_from_incidents([], [], 0, ["a"])


def test_cli_train_with_rates_from_incident_reports(tmp_path, capsys) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    _dataset(ds, minutes=60)
    rows = ["occurrencedate,occurrencehour,MCI,Lat,Long"]
    for d in range(1, 11):  # 10 days; robberies at the camera, one assault far away
        rows.append(f"2019/01/{d:02d} 05:00:00+00,14,Robbery,43.65,-79.385")
    rows.append("2019/01/05 05:00:00+00,3,Assault,43.655,-79.375")
    (tmp_path / "mci.csv").write_text("\n".join(rows) + "\n")
    code = main(["anfis", "train", str(ds), "--incidents", str(tmp_path / "mci.csv"), "--epochs", "2",
                 "--no-plots", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "rates from 11 incidents (11 inside the grid)" in err
    rob = json.loads((tmp_path / "m" / "robbery.json").read_text())["meta"]["rates"]
    cell = records_from_dataset(ds)[0].cell_id
    assert rob[cell] == pytest.approx(10 / (9 * 24) * 24)  # 10 robberies over 9 days, per 24 h
    assert sum(v > 0 for k, v in rob.items() if k != "default") == 1
    assert main(["anfis", "train", "--synthetic", "--incidents", str(tmp_path / "mci.csv")]) == 2


def test_cli_anfis_train_and_rules(tmp_path, capsys) -> None:
    out = tmp_path / "m"
    code = main(["anfis", "train", "--synthetic", "--cells", "4", "--hours", "1.5", "--crimes-per-hour", "4",
                 "--epochs", "3", "--no-plots", "--out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "robbery" in table and "baseline" in table
    assert main(["anfis", "rules", str(out / "robbery.json")]) == 0
    assert "IF rate is" in capsys.readouterr().out
    assert main(["anfis", "train", "--out", str(out)]) == 2
    assert main(["anfis", "train", str(tmp_path / "missing"), "--out", str(out)]) == 1


def test_hour_input_in_the_configured_time_zone(cfg) -> None:
    c = cfg.model_copy(update={"timezone": "America/Toronto"})
    ps = build_pairs(_records(10, {4: "robbery"}), c)
    assert ps.crimes["robbery"].X_train[0, 1] == pytest.approx(16.0)  # 20:00 UTC is 16:00 EDT on 1 May
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        CrimeModelsConfig.model_validate({**cfg.model_dump(), "timezone": "Mars/Olympus"})
