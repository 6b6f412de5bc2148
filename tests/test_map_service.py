"""Map service: state rules, the merge formula, snapshot size, files, broker faults, and a real broker run."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from shapely.geometry import box, shape

from mapping.config import MapConfig
from mapping.forecast.output import DayForecast, ForecastFileError, read as read_forecast, write as write_forecast
from geo.grid import Grid
from mapping.service import MapService
from streamer import schemas
from streamer.bus import InMemoryBus
from streamer.schemas import TOPIC_CELLS, TOPIC_MAPS, CellImminence, MapSnapshot

NOW = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)
TYPES = schemas.CRIME_TYPES


def cell_msg(cell: str, value: float, *, start: datetime = NOW - timedelta(seconds=60), revision: int = 0,
             crime: str = "robbery") -> CellImminence:
    imm = {t: (value if t == crime else 0.0) for t in TYPES}
    return CellImminence(message_id=f"{cell}|{start.isoformat()}|{revision}", cell_id=cell, window_start=start,
                         window_end=start + timedelta(seconds=60), revision=revision, imminence=imm,
                         flags={t: v > 5 for t, v in imm.items()}, events=3, produced_at=start + timedelta(seconds=61))


def grid_lonlat(cell=100.0) -> Grid:
    from geo.grid import GridConfig
    return Grid.from_config(GridConfig(bbox=(-79.40, 43.64, -79.38, 43.655), cell_size_m=cell))


def uniform_forecast(g: Grid, p: float) -> DayForecast:
    probs = np.full((len(TYPES) + 1,) + g.shape, p) * g.mask
    return DayForecast(g.grid_id, "2026-05-02", TYPES + ("all",), probs, "test")


def test_latest_window_and_revision_win():
    g = Grid(box(0, 0, 500, 500), 100.0)
    svc = MapService(InMemoryBus(), g, MapConfig(), clock=lambda: NOW)
    assert svc.apply(cell_msg("r1c1", 4.0))
    assert svc.apply(cell_msg("r1c1", 6.0, revision=1))                     # later revision, same window
    assert not svc.apply(cell_msg("r1c1", 9.0, revision=0))                 # stale revision
    assert not svc.apply(cell_msg("r1c1", 6.0, revision=1))                 # repeat
    assert not svc.apply(cell_msg("r1c1", 1.0, start=NOW - timedelta(seconds=600), revision=5))  # older window
    assert svc.apply(cell_msg("r1c1", 2.0, start=NOW))                      # newer window
    assert svc.cells["r1c1"].imminence["robbery"] == 2.0
    assert not svc.apply(cell_msg("r9c9", 5.0))                             # outside the grid
    assert svc.stats.ignored == 3 and svc.stats.outside_grid == 1


def test_merge_formula_and_age_decay():
    g = Grid(box(0, 0, 500, 500), 100.0)
    cfg = MapConfig(radius_m=50, live_weight=0.7, live_half_life_s=600)  # radius below a cell: no spreading
    now = [NOW]
    svc = MapService(InMemoryBus(), g, cfg, forecast=uniform_forecast(g, 0.2), clock=lambda: now[0])
    svc.apply(cell_msg("r2c2", 10.0, start=NOW - timedelta(seconds=60)))   # window ends at NOW
    s = svc.surfaces()
    assert s["robbery"]["merged"][2, 2] == pytest.approx(0.7 * 1.0 + 0.3 * 0.2)
    assert s["robbery"]["merged"][0, 0] == pytest.approx(0.2)
    assert s["burglary"]["merged"][2, 2] == pytest.approx(0.3 * 0.2)      # live 0 for burglary still takes weight
    assert s["all"]["merged"][2, 2] == pytest.approx(0.76)
    now[0] = NOW + timedelta(seconds=600)                                   # one half-life later
    s = svc.surfaces()
    assert s["robbery"]["merged"][2, 2] == pytest.approx(0.35 + 0.65 * 0.2)
    assert s["robbery"]["live"][2, 2] == pytest.approx(5.0)
    assert s["robbery"]["class"][2, 2] >= 3


def test_every_published_layer_carries_its_sd_classes():
    """The service classes merged, live and forecast (mapping.kde), so the console never recomputes them."""
    from mapping.kde import class_dict, sd_classes

    g = Grid(box(0, 0, 500, 500), 100.0)
    probs = np.zeros((len(TYPES) + 1,) + g.shape)
    probs[:, 0, 4] = 0.9  # one forecast hot spot, away from the live cell
    svc = MapService(InMemoryBus(), g, MapConfig(radius_m=50), clock=lambda: NOW,
                     forecast=DayForecast(g.grid_id, "2026-05-02", TYPES + ("all",), probs, "test"))
    svc.apply(cell_msg("r2c2", 10.0))
    rob = svc.publish().layers["robbery"]
    s = svc.surfaces()["robbery"]
    for kind, got in (("merged", rob.classes), ("live", rob.live_classes), ("forecast", rob.forecast_classes)):
        assert got == class_dict(sd_classes(s[kind], g.mask), g), kind
    assert rob.live_classes == {"r2c2": 4} and rob.forecast_classes == {"r0c4": 4}
    assert set(rob.classes) == {"r2c2", "r0c4"}
    props = svc._surfaces["robbery"]
    assert props["live_class"][2, 2] == 4 and props["forecast_class"][0, 4] == 4  # the map file's classes too


def test_snapshot_fits_one_megabyte_on_10000_cells():
    g = Grid(box(0, 0, 10_000, 10_000), 100.0)
    assert int(g.mask.sum()) == 10_000
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, (len(TYPES) + 1,) + g.shape)
    svc = MapService(InMemoryBus(), g, MapConfig(radius_m=300),
                     forecast=DayForecast(g.grid_id, "2026-05-02", TYPES + ("all",), probs), clock=lambda: NOW)
    for i, cid in enumerate(g.cell_ids()[::7]):
        svc.apply(cell_msg(cid, float(rng.uniform(0, 10)), crime=TYPES[i % 4]))
    snap = svc.publish()
    size = len(schemas.encode(snap))
    assert size < 1_000_000
    again = schemas.decode(TOPIC_MAPS, schemas.encode(snap))
    assert isinstance(again, MapSnapshot) and set(again.layers) == set(TYPES) | {"all"}
    top = again.layers["all"].top_cells[0]
    assert top.value == pytest.approx(float(svc.surfaces()["all"]["merged"].max()), abs=1e-4)


def test_files_geojson_and_png(tmp_path):
    g = grid_lonlat()
    fpath = write_forecast(uniform_forecast(g, 0.1), g, tmp_path / "fc.json")
    cams = [{"id": "cam1", "lon": -79.39, "lat": 43.648}]
    svc = MapService(InMemoryBus(), g, MapConfig(radius_m=300), forecast=fpath, cameras=cams,
                     out_dir=tmp_path / "out", clock=lambda: NOW)
    hot = g.cell_of(lon=-79.39, lat=43.648)
    svc.apply(cell_msg(hot, 9.0))
    svc.publish()
    paths = svc.write_files()
    gj = json.loads((tmp_path / "out" / "map.geojson").read_text())
    assert len(gj["features"]) == int(g.mask.sum())
    feat = next(f for f in gj["features"] if f["properties"]["cell_id"] == hot)
    pr = feat["properties"]
    assert pr["merged_robbery"] > 0.5 and pr["forecast_robbery"] == 0.1
    for f in gj["features"]:                     # every cell's value is explained by its terms
        q = f["properties"]
        assert q["merged_robbery"] == pytest.approx(
            q["weight_robbery"] * q["live_mean_robbery"] + (1 - q["weight_robbery"]) * q["forecast_robbery"], abs=2e-4)
    assert shape(feat["geometry"]).contains(shape({"type": "Point", "coordinates": [-79.39, 43.648]}))
    pngs = sorted(p.name for p in paths if p.suffix == ".png")
    assert pngs == sorted(f"map_{t}.png" for t in TYPES + ("all",))
    assert (tmp_path / "out" / "map_all.png").read_bytes()[:4] == b"\x89PNG"
    assert svc.hottest()[0][0] == hot
    # a forecast for another grid is refused with the reason
    other = Grid(box(0, 0, 300, 300), 100.0)
    with pytest.raises(ForecastFileError, match="forecast is for grid"):
        read_forecast(fpath, other)


class FlakyBus(InMemoryBus):
    """An in-memory bus whose subscriptions fail to poll while ``down`` is set (a broker outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.failures = 0

    def subscribe(self, topics, group=None, **kw):
        sub = super().subscribe(topics, group, **kw)
        bus, poll = self, sub.poll

        def flaky_poll(timeout=1.0, max_records=100):
            if bus.down.is_set():
                bus.failures += 1
                time.sleep(0.05)
                raise ConnectionError("broker unreachable")
            return poll(timeout, max_records)

        sub.poll = flaky_poll
        return sub


def test_broker_loss_keeps_state_and_catches_up(tmp_path):
    g = Grid(box(0, 0, 500, 500), 100.0)
    bus = FlakyBus()
    svc = MapService(bus, g, MapConfig(radius_m=150, interval_s=0.2, group="map-test"), out_dir=tmp_path, clock=lambda: NOW,
                     files_every_s=60)
    t = threading.Thread(target=svc.run, kwargs={"poll_timeout": 0.1}, daemon=True)
    t.start()
    bus.publish(TOPIC_CELLS, cell_msg("r1c1", 8.0))
    deadline = time.monotonic() + 10
    while "r1c1" not in svc.cells and time.monotonic() < deadline:
        time.sleep(0.05)
    bus.down.set()
    bus.publish(TOPIC_CELLS, cell_msg("r3c3", 6.0))          # sent while the consumer cannot reach the broker
    deadline = time.monotonic() + 15
    while bus.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bus.failures >= 3 and "r1c1" in svc.cells and "r3c3" not in svc.cells
    bus.down.clear()
    deadline = time.monotonic() + 10
    while "r3c3" not in svc.cells and time.monotonic() < deadline:
        time.sleep(0.05)
    svc.stop()
    t.join(10)
    assert set(svc.cells) == {"r1c1", "r3c3"}
    assert svc.stats.errors > 0 and "broker unreachable" in svc.stats.last_error
    last = bus.records(TOPIC_MAPS)[-1]
    assert {c.cell_id for c in last.layers["robbery"].top_cells[:2]} == {"r1c1", "r3c3"}


def test_a_restarted_service_rebuilds_its_state_from_the_whole_topic(tmp_path):
    """The state dies with the process; the group's committed offsets only say what was folded into it.
    A new service in the same group re-reads the topic and ends where the first one would have."""
    g = Grid(box(0, 0, 500, 500), 100.0)
    bus = InMemoryBus()
    cfg = MapConfig(radius_m=150, interval_s=0.2, group="map-restart")
    first = MapService(bus, g, cfg, out_dir=tmp_path / "one", clock=lambda: NOW, files_every_s=60,
                       crime_types=("robbery",))  # fewer PNGs to draw at exit
    for rev, v in enumerate([3.0, 7.0]):
        bus.publish(TOPIC_CELLS, cell_msg("r1c1", v, revision=rev))
    bus.publish(TOPIC_CELLS, cell_msg("r2c2", 5.0))
    first.run(idle_exit_s=0.5, poll_timeout=0.05)  # read, published and committed everything
    assert set(first.cells) == {"r1c1", "r2c2"}
    bus.publish(TOPIC_CELLS, cell_msg("r3c3", 6.0))
    second = MapService(bus, g, cfg, out_dir=tmp_path / "two", clock=lambda: NOW, files_every_s=60,
                        crime_types=("robbery",))
    second.run(idle_exit_s=0.5, poll_timeout=0.05)
    assert set(second.cells) == {"r1c1", "r2c2", "r3c3"} and second.cells["r1c1"].revision == 1
    assert second.stats.received == 4 and second.stats.ignored == 0  # each message read once


@pytest.mark.slow
def test_map_service_on_a_real_broker(kafka_bootstrap, unique_name, tmp_path):
    from streamer.kafka_bus import KafkaBus

    g = grid_lonlat()
    cfg = MapConfig(radius_m=250, interval_s=1.0, group=f"{unique_name}-map")
    hot = g.cell_of(lon=-79.39, lat=43.648)
    warm = g.cell_of(lon=-79.395, lat=43.645)
    fpath = write_forecast(uniform_forecast(g, 0.05), g, tmp_path / "fc.json")
    start = schemas.utcnow() - timedelta(seconds=60)      # live windows of the last minute (the service's clock is real)
    with KafkaBus(kafka_bootstrap, namespace=unique_name, client_id="producer") as producer:
        for rev, v in enumerate([3.0, 9.5]):          # the later revision of the window must win
            producer.publish(TOPIC_CELLS, cell_msg(hot, v, revision=rev, start=start))
        producer.publish(TOPIC_CELLS, cell_msg(warm, 4.0, crime="battery", start=start))
        producer.publish(TOPIC_CELLS, cell_msg(hot, 3.0, revision=0, start=start))   # a stale repeat, delivered late
        assert producer.flush(30)
    bus = KafkaBus(kafka_bootstrap, namespace=unique_name, client_id="map")
    svc = MapService(bus, g, cfg, forecast=fpath, out_dir=tmp_path / "out",
                     cameras=[{"id": "cam1", "lon": -79.39, "lat": 43.648}], client_id="map")
    reader = KafkaBus(kafka_bootstrap, namespace=unique_name, client_id="reader")
    maps = reader.subscribe([TOPIC_MAPS], group=None, from_beginning=True)
    t = threading.Thread(target=svc.run, kwargs={"duration_s": 60}, daemon=True)
    t.start()
    snap = None
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:              # wait for a snapshot that shows both cells, by content
        for rec in maps.poll(timeout=1.0):
            s = rec.event
            if s.cells_live == 2 and s.layers["robbery"].top_cells and s.layers["robbery"].top_cells[0].cell_id == hot:
                snap = s
        if snap is not None:
            break
    svc.stop()
    t.join(30)
    maps.close()
    reader.close()
    bus.close()
    assert snap is not None, f"no snapshot with both cells; stats {svc.stats}"
    rob = snap.layers["robbery"]
    assert rob.top_cells[0].cell_id == hot and rob.top_cells[0].cls >= 1
    assert rob.live[hot] > 5.0                     # the 9.5 revision, not 3.0
    assert snap.layers["battery"].top_cells[0].cell_id == warm
    assert rob.forecast[hot] == pytest.approx(0.05)
    assert snap.forecast_date == "2026-05-02" and snap.grid.grid_id == g.grid_id
    assert svc.stats.ignored == 1
    out = tmp_path / "out"
    gj = json.loads((out / "map.geojson").read_text())
    assert any(f["properties"]["cell_id"] == hot and f["properties"]["merged_robbery"] > 0.3 for f in gj["features"])
    assert (out / "map_all.png").stat().st_size > 10_000
    # offsets were committed after publishing: the group has nothing left to read
    again = KafkaBus(kafka_bootstrap, namespace=unique_name, client_id="check")
    sub = again.subscribe([TOPIC_CELLS], group=cfg.group)
    left = []
    end = time.monotonic() + 8
    while time.monotonic() < end:
        left += sub.poll(timeout=1.0)
    sub.close()
    again.close()
    assert left == []


@pytest.mark.slow
def test_cli_map_writes_files_and_prints_hottest(kafka_bootstrap, unique_name, tmp_path, capsys):
    from imminence.cli import main
    from streamer.kafka_bus import KafkaBus

    cfg = tmp_path / "map.yaml"
    cfg.write_text(f"""
bus:
  bootstrap: "{kafka_bootstrap}"
  namespace: "{unique_name}"
grid:
  bbox: [-79.40, 43.64, -79.38, 43.655]
  cell_size_m: 100
map:
  radius_m: 200
  interval_s: 1
  group: "{unique_name}-map"
""")
    g = grid_lonlat()
    hot = g.cell_of(lon=-79.39, lat=43.648)
    with KafkaBus(kafka_bootstrap, namespace=unique_name, client_id="producer") as producer:
        producer.publish(TOPIC_CELLS, cell_msg(hot, 8.0, start=schemas.utcnow() - timedelta(seconds=60)))
        assert producer.flush(30)
    assert main(["map", "--config", str(cfg), "--out", str(tmp_path / "out"), "--idle-exit", "10"]) == 0
    text = capsys.readouterr().out
    assert "1 cell updates applied" in text
    assert text.split("hottest cells (all crime, merged):")[1].split()[0] == hot
    assert (tmp_path / "out" / "map.geojson").exists() and (tmp_path / "out" / "map_all.png").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text() + "forecast:\n  predictions: missing.json\n")
    assert main(["map", "--config", str(bad), "--out", str(tmp_path / "out2")]) == 1
    assert "no such forecast file" in capsys.readouterr().err
