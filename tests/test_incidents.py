"""Incident loading (Toronto MCI, SF export, generic), rejects by reason, time zones, aggregation, CLI."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imminence.cli import main
from geo.grid import Grid, GridConfig
from mapping.incidents import (IncidentError, Incidents, aggregate, load_incidents, parse_mapping,
                               premises_mix)

DATA = Path(__file__).resolve().parent / "data"
TORONTO = DATA / "toronto_mci_sample.csv.gz"
SF = DATA / "sf_incidents_sample.csv"
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_toronto_sample_loads_as_published():
    inc, rep = load_incidents(TORONTO, "toronto-mci")
    assert rep.rows_read == 2509
    assert rep.rejected["duplicate"] == 4            # exact duplicate rows planted in the sample
    assert rep.rows_loaded == 2509 - 4
    assert sum(rep.rejected.values()) == 4
    assert set(inc.df["crime_type"]) <= {"battery", "burglary", "robbery", "vehicle_theft", "larceny"}
    assert inc.timezone == "America/Toronto"
    assert str(inc.df["time"].dt.tz) == "America/Toronto"


def test_toronto_local_date_and_hour():
    # 2014/11/02 04:00:00+00 is local midnight (EDT); hour 1 falls in the repeated hour of the DST change
    raw = pd.read_csv(TORONTO, dtype=str)
    inc, _ = load_incidents(TORONTO, "toronto-mci")
    dst = inc.df[inc.df["time"].dt.strftime("%Y-%m-%d") == "2014-11-02"]
    assert len(dst) == 3 and (dst["time"].dt.hour == 1).all()
    assert (dst["time"].dt.strftime("%z") == "-0400").all()   # the first 01:00 (still EDT)
    row = raw[~raw.duplicated()].iloc[100]
    t = inc.df["time"].iloc[100]
    utc_midnight = pd.Timestamp(row["occurrencedate"].replace("+00", "+0000"))
    assert t.date() == utc_midnight.tz_convert("America/Toronto").date()
    assert t.hour == int(row["occurrencehour"])


def test_sf_sample_rejects_each_reason():
    inc, rep = load_incidents(SF, "sf")
    assert rep.rows_read == 17
    assert rep.rejected == {"missing_coords": 1, "impossible_coords": 2, "unparseable_date": 1,
                            "unknown_category": 1, "duplicate": 1}
    assert rep.rows_loaded == 11
    assert rep.unknown_categories == {"UFO SIGHTING": 1}
    assert rep.examples["impossible_coords"] == [12, 18]     # Y=90 row and the 0,0 row (CSV lines)
    types = inc.df.set_index("category")["crime_type"].to_dict()
    assert types["ROBBERY"] == "robbery" and types["ASSAULT"] == "battery"
    assert types["LARCENY/THEFT"] == "larceny" and types["BURGLARY"] == "burglary"
    t = inc.df.loc[inc.df["category"] == "ROBBERY", "time"].iloc[0]
    assert str(t) == "2015-02-01 15:45:00-08:00"               # Pacific time


def test_generic_mapping_and_timezone(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("when,kind,lng,lt\n2020-01-02 10:00,Robbery,-79.4,43.7\n2020-01-02 11:00,Theft,-79.41,43.71\n"
                 "2020-01-03 12:00,Robbery,,43.7\nnot a date,Robbery,-79.4,43.7\n2020-01-04 09:00,Robbery,-79.4,43.7\n")
    inc, rep = load_incidents(p, "generic", mapping=parse_mapping("time=when,category=kind,lon=lng,lat=lt"),
                              timezone="America/Toronto")
    assert rep.rows_loaded == 3 and rep.rejected["missing_coords"] == 1 and rep.rejected["unparseable_date"] == 1
    assert set(inc.types) == {"robbery", "theft"}
    assert str(inc.df["time"].iloc[0]) == "2020-01-02 10:00:00-05:00"


def test_unknown_columns_and_bad_mapping(tmp_path):
    with pytest.raises(IncidentError, match=r"not a sf file: missing column\(s\)"):
        load_incidents(TORONTO, "sf")
    with pytest.raises(IncidentError, match="not a toronto-mci file"):
        load_incidents(SF, "toronto-mci")
    with pytest.raises(IncidentError, match=r"unknown column\(s\) \['nope'\]"):
        load_incidents(SF, "generic", mapping=parse_mapping("time=nope,category=Category,lon=X,lat=Y"))
    with pytest.raises(IncidentError, match="needs --map"):
        load_incidents(SF, "generic")
    with pytest.raises(IncidentError, match="unknown key 'when'"):
        parse_mapping("when=Date")
    with pytest.raises(IncidentError, match="no such file"):
        load_incidents(tmp_path / "missing.csv", "sf")


def test_unreadable_date_format(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("t,c,x,y\n02012020-10,A,-79.4,43.7\n03012020-11,A,-79.4,43.7\n")
    with pytest.raises(IncidentError, match="column 't': unreadable date format"):
        load_incidents(p, "generic", mapping=parse_mapping("time=t,category=c,lon=x,lat=y"))
    # with the format given it reads
    inc, rep = load_incidents(p, "generic", mapping=parse_mapping("time=t,category=c,lon=x,lat=y"),
                              time_format="%d%m%Y-%H")
    assert rep.rows_loaded == 2 and inc.df["time"].iloc[0].day == 2
    # a Toronto file whose dates changed layout
    raw = gzip.decompress(TORONTO.read_bytes()).decode().splitlines()
    bad = [raw[0]] + [",".join(["March 2 2014"] + line.split(",")[1:]) for line in raw[1:50]]
    q = tmp_path / "t.csv"
    q.write_text("\n".join(bad) + "\n")
    with pytest.raises(IncidentError, match="occurrencedate.*unreadable date format"):
        load_incidents(q, "toronto-mci")


def test_aggregate_daily_maps():
    inc, _ = load_incidents(TORONTO, "toronto-mci")
    g = Grid.from_config(GridConfig(area=str(CONFIGS / "toronto_area.geojson"), cell_size_m=1000))
    m = aggregate(inc, g, start="2018-01-01", end="2019-01-01")
    assert m.counts.shape == (365, 5, g.rows, g.cols)
    in_2018 = (inc.df["time"].dt.year == 2018).sum()
    assert m.counts.sum() + m.outside == in_2018
    assert m.outside < 0.01 * in_2018
    # one incident lands on its local day, type and cell
    row = inc.df[inc.df["time"].dt.year == 2018].iloc[0]
    r, c, ok = g.rowcol_of_lonlat([row["lon"]], [row["lat"]])
    assert ok[0]
    d = (row["time"].normalize().tz_localize(None) - pd.Timestamp("2018-01-01")).days
    assert m.counts[d, m.types.index(row["crime_type"]), r[0], c[0]] >= 1
    weekly = aggregate(inc, g, start="2018-01-01", end="2019-01-01", freq="7D")
    assert weekly.counts.shape[0] == 53 and weekly.counts.sum() == m.counts.sum()
    mix, kinds = premises_mix(inc, g, before="2019-01-01")
    assert "Apartment" in kinds
    s = mix.sum(0)
    assert np.allclose(s[s > 0], 1.0)


def test_concat_refuses_mixed_timezones():
    a, _ = load_incidents(TORONTO, "toronto-mci")
    b, _ = load_incidents(SF, "sf")
    with pytest.raises(IncidentError, match="mix time zones"):
        Incidents.concat([a, b])


def test_cli_incidents_load(capsys, tmp_path):
    assert main(["incidents", "load", str(SF), "--format", "sf", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows_loaded"] == 11 and out["rows_rejected"] == 6 and out["rejected"]["duplicate"] == 1
    maps = tmp_path / "maps.npz"
    assert main(["incidents", "load", str(TORONTO), "--format", "toronto-mci",
                 "--config", str(CONFIGS / "toronto.yaml"), "--cell-size", "2000", "--maps", str(maps)]) == 0
    text = capsys.readouterr().out
    assert "rejected duplicate: 4" in text and "maps (" in text
    with np.load(maps) as z:
        assert z["counts"].ndim == 4 and z["counts"].shape[1] == 5
    assert main(["incidents", "load", str(SF), "--format", "toronto-mci"]) == 1
    assert "not a toronto-mci file" in capsys.readouterr().err
