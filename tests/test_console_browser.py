"""The web console in a real headless Chromium, against the real app and the real embedded Kafka broker.

The topics are filled by the real services: a generated scene is replayed through
the camera workers (indicator events), scored by the ANFIS service (cell
imminence) and mapped by the map service (snapshots).  The page must show the
scene's cells, change a cell's colour when a new snapshot arrives (no reload),
explain a clicked cell with its rules, ask for a login when bound to a
non-loopback address, analyse an uploaded generated clip and refuse a corrupt one.
Screenshots (desktop and 390 px) are saved as PNG.

Debian's /usr/bin/chromium is driven by Playwright with no browser download.
Without it the tests skip with a loud message, except in CI where they fail.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from console import samples
from console.auth import hash_password
from console.config import WebConfig
from console.server import ServerThread, build_console, default_analyzer_factory
from geo.grid import Grid
from streamer import schemas

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from tests.conftest import CHROMIUM  # noqa: E402
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
NONE = "#d9dde3"  # the page's colour of a cell without a value

if not Path(CHROMIUM).exists():
    msg = (f"\n{'!' * 78}\n!! BROWSER TESTS SKIPPED: {CHROMIUM} is missing. Install Debian's chromium "
           f"(make system-deps, as root).\n{'!' * 78}\n")
    if os.environ.get("CI"):
        raise RuntimeError(msg)
    print(msg, file=sys.stderr)
    pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: make system-deps)", allow_module_level=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Screenshots go to a tmp dir; with IMMINENCE_UPDATE_SCREENSHOTS=1 they also refresh docs/screenshots."""
    out = tmp_path_factory.mktemp("screenshots")

    def save(page, name: str, full_page: bool = False) -> Path:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("IMMINENCE_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS / path.name)
        return path
    return save


@pytest.fixture(scope="module")
def scene(kafka_bootstrap, tmp_path_factory):
    """A generated scene replayed through the real services onto namespaced topics of the real broker."""
    from console.pipeline import run_scene_pipeline

    ns = f"web{uuid.uuid4().hex[:8]}"
    result = run_scene_pipeline(kafka_bootstrap, ns, tmp_path_factory.mktemp("scene"))
    assert result.snapshots >= 1, result
    return result


@pytest.fixture(scope="module")
def live(scene, kafka_bootstrap):
    """The console wired to the scene's topics exactly as `imminence web --bootstrap` wires it."""
    from streamer.kafka_bus import KafkaBus

    bus = KafkaBus(kafka_bootstrap, namespace=scene.namespace)
    web = WebConfig(group=f"{scene.namespace}-web")
    console = build_console(web, grid=scene.grid, bus=bus, bootstrap=kafka_bootstrap,
                            analyzer_factory=default_analyzer_factory(scene.detectors), close_bus=True)
    server = ServerThread(console.app).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and console.state.snapshot is None:
        time.sleep(0.1)
    assert console.state.snapshot is not None, "the console never received the scene's map snapshot"
    yield console, server, bus
    server.stop()
    console.close()


def _open(browser, url: str, width: int = 1280, height: int = 800):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    page.errors = errors
    return page


def _colour(page, cell_id: str) -> str:
    return page.get_attribute(f'path[data-cell-id="{cell_id}"]', "data-color")


def _hottest(state) -> str:
    layer = state.snapshot.layers["all"]
    return max(layer.merged, key=layer.merged.get)


def test_map_shows_scene_cells_and_updates_without_reload(browser, live, shots):
    console, server, bus = live
    grid: Grid = console.state.grid
    page = _open(browser, server.url)
    snap = console.state.snapshot
    page.wait_for_selector(f"#map[data-snapshot-id='{snap.snapshot_id}']")
    assert page.locator("path[data-cell-id]").count() == len(grid.cell_ids())
    # the scene's cameras sit on the map with their state, and the cells they watch were scored
    cams = console.state.camera_list()
    assert cams, "no camera state reached the console"
    for cam in cams:
        page.wait_for_selector(f'path[data-camera-id="{cam["camera_id"]}"]', state="attached")
    assert {c["cell_id"] for c in cams} <= set(console.state.cells)
    coloured = [c for c, v in snap.layers["all"].merged.items() if v > 0]
    assert coloured, "the scene's snapshot has no cell with imminence"
    for cell in coloured[:20]:
        assert _colour(page, cell) != NONE, cell
    cold = next(c for c in grid.cell_ids() if c not in snap.layers["all"].merged)
    assert _colour(page, cold) == NONE
    assert page.locator("#legend").is_visible()
    shots(page, "console-map-desktop")
    page.evaluate("window.__noReload = 1")
    # A new snapshot (made from the same surfaces, with the cold cell now the hottest) reaches the page.
    values = dict(snap.layers["all"].merged)
    values[cold] = max(values.values()) * 5
    new = samples.snapshot(grid, values, snapshot_id=f"browser-{uuid.uuid4().hex[:8]}",
                           created_at=datetime.now(timezone.utc))
    t0 = time.monotonic()
    bus.publish(schemas.TOPIC_MAPS, new)
    bus.flush(10)
    page.wait_for_selector(f"path[data-cell-id='{cold}']:not([data-color='{NONE}'])", state="attached",
                           timeout=10_000)
    print(f"snapshot -> page colour change: {time.monotonic() - t0:.2f} s")
    assert page.evaluate("window.__noReload") == 1  # same document: no reload happened
    assert _colour(page, cold) == "#bd0026"  # top class
    assert page.get_attribute(f'#cell-index li[data-cell-id="{cold}"]', "data-class") == "4"
    # and back: the scene's own surfaces again, the injected cell cold again, still without a reload
    again = snap.model_copy(update={"snapshot_id": f"browser-{uuid.uuid4().hex[:8]}",
                                    "created_at": datetime.now(timezone.utc)})
    bus.publish(schemas.TOPIC_MAPS, again)
    bus.flush(10)
    page.wait_for_selector(f"path[data-cell-id='{cold}'][data-color='{NONE}']", state="attached", timeout=10_000)
    assert page.evaluate("window.__noReload") == 1
    assert not [e for e in page.errors if "favicon" not in e], page.errors
    page.close()


def test_click_cell_shows_rules_desktop_and_phone(browser, live, shots):
    console, server, _ = live
    state = console.state
    cell = next(c for c in sorted(state.cells, key=lambda c: -max(state.cells[c][-1].imminence.values()))
                if state.cells[c][-1].top_rules)
    for width, height, name in ((1280, 800, "console-cell-desktop"), (390, 844, "console-cell-390px")):
        page = _open(browser, server.url, width, height)
        page.wait_for_selector(f'path[data-cell-id="{cell}"]')
        if width < 700:
            page.locator(f'path[data-cell-id="{cell}"]').scroll_into_view_if_needed()
        # click the cell's corner (a camera marker may sit on its centre)
        page.click(f'path[data-cell-id="{cell}"]', position={"x": 3, "y": 3})
        page.wait_for_selector("#cell-rules .rule-row", timeout=10_000)
        rules = page.locator("#cell-rules .rule").all_inner_texts()
        expected = [r.rule for rules_ in state.cells[cell][-1].top_rules.values() for r in rules_]
        assert rules and rules[0] in expected
        assert page.locator("#cell-detail h2").inner_text().startswith(f"Cell {cell}")
        assert page.locator("#cell-detail svg.chart").count() == 1
        assert page.url.endswith(f"/cells/{cell}")
        # the panel fits the viewport width (responsive layout)
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        shots(page, name, full_page=width < 700)
        page.close()
    # the events tab lists the scene's indicator events, filterable by camera
    page = _open(browser, server.url)
    page.click("#tabs button[data-tab='events']")
    page.wait_for_selector("#event-feed tr")
    cam = state.camera_list()[0]["camera_id"] if state.cameras else state.event_list()[0]["camera_id"]
    page.select_option("#f-camera", cam)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = page.locator("#event-feed tr td:nth-child(2)").all_inner_texts()
        if shown and set(shown) == {cam}:
            break
        time.sleep(0.1)
    assert shown and set(shown) == {cam}, shown
    page.close()


def test_unknown_cell_url_is_404_with_message(browser, live):
    _, server, _ = live
    page = browser.new_page()
    resp = page.goto(server.url + "/cells/r9999c9999")
    assert resp.status == 404 and "Unknown cell" in page.inner_text("#notfound-message")
    page.close()


def test_login_required_on_non_loopback_address(browser, scene, kafka_bootstrap, tmp_path):
    web = WebConfig(host="0.0.0.0", users=[{"name": "officer", "password_hash": hash_password("patrol-pw"),
                                            "role": "viewer"}])
    from console.auth import AuthError

    with pytest.raises(AuthError):  # the same address without users refuses to start
        build_console(WebConfig(host="0.0.0.0"), run_dir=tmp_path)
    console = build_console(web, grid=scene.grid, run_dir=scene.run_dir)
    # served on loopback here, with the access rules of the public address
    with ServerThread(console.app) as server:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_selector("#login:not([hidden])")
        assert page.locator("#map path[data-cell-id]").count() == 0  # nothing shown before login
        page.fill("#login-user", "officer")
        page.fill("#login-password", "wrong")
        page.click("#login-form button")
        page.wait_for_selector("#login-error:not(:empty)")
        page.fill("#login-password", "patrol-pw")
        page.click("#login-form button")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_selector("#map path[data-cell-id]")
        assert page.locator("#upload-tab").is_hidden()  # viewers may not upload
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["imminence_session"]["httpOnly"] and cookies["imminence_session"]["sameSite"] == "Strict"
        page.close()


def test_upload_generated_clip_and_corrupt_file(browser, live, scene, tmp_path, shots):
    _, server, _ = live
    page = _open(browser, server.url)
    page.click("#upload-tab")
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"definitely not a video" * 100)
    page.set_input_files("#upload-file", str(bad))
    page.click("#upload-form button")
    page.wait_for_selector("#upload-status.error")
    assert "not a video or an image" in page.inner_text("#upload-status")
    assert scene.concepts_error is None, f"no concept model to label the upload with: {scene.concepts_error}"
    page.set_input_files("#upload-file", str(scene.clip))
    page.click("#upload-form button")
    page.wait_for_selector("#upload-clips tr", timeout=60_000)
    labels = page.locator("#upload-clips tr").evaluate_all("rows => rows.map(r => r.dataset.label)")
    assert labels and all(lab in schemas.CONCEPTS for lab in labels), labels
    assert page.locator(".keyframes img").count() >= 1
    shots(page, "console-upload")
    page.close()


def test_page_reconnects_after_server_restart(browser, scene):
    """A dropped live connection says so and recovers by itself when the server is back."""
    console = build_console(WebConfig(), grid=scene.grid, run_dir=scene.run_dir)
    server = ServerThread(console.app).start()
    page = _open(browser, server.url)
    server.stop()
    page.wait_for_selector("#conn-notice:not([hidden])", timeout=10_000)
    assert "reconnecting" in page.inner_text("#conn-notice")
    server2 = ServerThread(console.app, port=server.port).start()
    try:
        page.wait_for_selector("#conn-notice:has-text('restored')", timeout=15_000)
    finally:
        page.close()
        server2.stop()


def test_stale_banner_while_broker_is_down(browser, scene):
    """The page says the data is stale, and since when, while the broker is unreachable; it clears on return."""
    from console.state import BusFeed, ConsoleState
    from console.app import create_app
    from streamer.bus import InMemoryBus

    up = {"ok": True}
    state = ConsoleState(WebConfig(), scene.grid)
    feed = BusFeed(state, InMemoryBus(), "stale-test", probe=lambda: up["ok"], probe_every_s=0.1).start()
    state.apply(schemas.TOPIC_MAPS, samples.snapshot(scene.grid, {scene.grid.cell_ids()[0]: 1.0}))
    try:
        with ServerThread(create_app(WebConfig(), state)) as server:
            page = _open(browser, server.url)
            assert page.locator("#stale-banner").is_hidden()
            up["ok"] = False
            page.wait_for_selector("#stale-banner:not([hidden])", timeout=10_000)
            assert "stale since" in page.inner_text("#stale-banner")
            up["ok"] = True
            page.wait_for_selector("#stale-banner[hidden]", state="attached", timeout=10_000)
            page.close()
    finally:
        feed.stop()


def test_large_grid_uses_canvas_and_keeps_cells_findable(browser):
    """Above 2,000 cells the map is one canvas; each cell stays findable by data-cell-id with its colour."""
    from console.app import create_app
    from console.state import ConsoleState

    grid = samples.small_grid(rows=60, cols=60, cell_size_m=100.0)
    ids = grid.cell_ids()
    state = ConsoleState(WebConfig(), grid)
    hot = ids[len(ids) // 2 + 30]
    state.apply(schemas.TOPIC_MAPS, samples.snapshot(grid, {ids[0]: 1.0}))
    with ServerThread(create_app(WebConfig(), state)) as server:
        page = _open(browser, server.url)
        assert page.locator("path[data-cell-id]").count() == 0  # no SVG path per cell...
        assert page.locator("#map canvas").count() >= 1  # ...one canvas instead
        assert page.locator("#cell-index li[data-cell-id]").count() == len(ids)
        assert page.get_attribute(f'#cell-index li[data-cell-id="{hot}"]', "data-color") == NONE
        state.apply(schemas.TOPIC_MAPS, samples.snapshot(grid, {ids[0]: 1.0, hot: 50.0}))
        page.wait_for_selector(f"#cell-index li[data-cell-id='{hot}'][data-class='4']", state="attached")
        assert page.get_attribute(f'#cell-index li[data-cell-id="{hot}"]', "data-color") == "#bd0026"
        # a click on the canvas where the cell is drawn opens that cell
        box = page.evaluate(f"""() => {{
            const r = window.imminence.cells.get('{hot}'); const m = window.imminence.map;
            const p = m.latLngToContainerPoint(r.getBounds().getCenter());
            const c = document.getElementById('map').getBoundingClientRect();
            return [c.left + p.x, c.top + p.y];
        }}""")
        page.mouse.click(box[0], box[1])
        page.wait_for_selector(f"#cell-detail[data-cell-id='{hot}']")
        # message text is shown as text, never parsed as markup
        evil = '<b id="injected">cam</b>'
        state.apply(schemas.TOPIC_CAMERAS, samples.camera_status(evil, hot))
        page.click("#tabs button[data-tab='cameras']")
        page.wait_for_selector("#camera-list tr")
        page.evaluate("(id) => { window.imminence.cams.get(id).marker.openTooltip(); }", evil)
        page.wait_for_selector(".leaflet-tooltip")
        assert evil in page.inner_text("#camera-list") and page.locator("#injected").count() == 0
        page.close()


def test_empty_map_says_why_when_every_window_was_too_old(browser):
    """Windows received but all older than the map's live horizon: a sentence over the map, not a blank map."""
    from console.app import create_app
    from console.state import ConsoleState

    grid = samples.small_grid()
    state = ConsoleState(WebConfig(), grid)
    old = samples.snapshot(grid, {}).model_copy(update={
        "cells_live": 0, "live_horizon_s": 9000.0, "windows_too_old": 12,
        "too_old_newest": datetime(2026, 5, 1, 21, 4, tzinfo=timezone.utc)})
    state.apply(schemas.TOPIC_MAPS, old)
    with ServerThread(create_app(WebConfig(), state)) as server:
        page = _open(browser, server.url)
        page.wait_for_selector("#map-notice:not([hidden])")
        assert page.inner_text("#map-notice") == ("no live data in the last 150 minutes "
                                                  "(events received are from 2026-05-01 21:04 UTC)")
        assert page.locator("#map-notice").is_visible()
        # live data again: the notice goes, without a reload
        state.apply(schemas.TOPIC_MAPS, samples.snapshot(grid, {grid.cell_ids()[0]: 3.0}))
        page.wait_for_selector("#map-notice[hidden]", state="attached", timeout=10_000)
        assert not page.errors, page.errors
        page.close()


def test_page_takes_crime_types_colours_and_concepts_from_the_api(browser):
    """The page declares no vocabulary: the crime menu, the chart legend and the concept filter come from /api/config."""
    from console.app import create_app
    from console.state import ConsoleState
    from geo.vocabulary import CONCEPT_MEANINGS, CONCEPTS, CRIME_COLOURS, CRIME_TYPES

    grid = samples.small_grid()
    cell = grid.cell_ids()[0]
    state = ConsoleState(WebConfig(), grid)
    state.apply(schemas.TOPIC_MAPS, samples.snapshot(grid, {cell: 4.0}))
    state.apply(schemas.TOPIC_CELLS, samples.cell_message(cell))
    with ServerThread(create_app(WebConfig(), state)) as server:
        page = _open(browser, server.url)
        assert page.locator("#crime option").evaluate_all("os => os.map(o => o.value)") == ["all", *CRIME_TYPES]
        opts = page.locator("#f-concept option").evaluate_all("os => os.map(o => [o.value, o.title])")
        assert opts[1:] == [[c, CONCEPT_MEANINGS[c]] for c in CONCEPTS]
        page.select_option("#crime", "burglary")
        page.click(f'path[data-cell-id="{cell}"]', position={"x": 3, "y": 3})
        page.wait_for_selector("#cell-detail .chart-legend span")
        legend = page.locator("#cell-detail .chart-legend span").evaluate_all(
            "ss => ss.map(s => [s.textContent, getComputedStyle(s).color])")
        rgb = lambda c: "rgb({}, {}, {})".format(*(int(c[i:i + 2], 16) for i in (1, 3, 5)))  # noqa: E731
        assert legend == [[f"— {c}", rgb(CRIME_COLOURS[c])] for c in CRIME_TYPES]
        page.close()


def test_feed_groups_clips_under_situations_and_marks_open_ones_live(browser, shots):
    """Situations (fed by the real SituationTracker): one row per incident with its clips under it; the open one
    is live, gains its next clip and then ends, without a reload."""
    from datetime import timedelta

    from console.app import create_app
    from console.state import ConsoleState
    from streamer.situations import SituationTracker

    grid = samples.small_grid()
    cell = grid.cell_ids()[0]
    state = ConsoleState(WebConfig(), grid)
    t0 = datetime(2026, 5, 1, 21, 0, tzinfo=timezone.utc)
    trackers = {cam: SituationTracker(cam, cell_id=cell) for cam in ("cam-a", "cam-b")}

    def clip(cam: str, k: int, concept: str) -> None:
        ev = samples.indicator_event(cam, cell, k, concept=concept, at=t0 + timedelta(seconds=2 * k + 2))
        state.apply(schemas.TOPIC_INDICATORS, ev)
        for m in trackers[cam].observe(ev):
            state.apply(schemas.TOPIC_SITUATIONS, m)

    def close(cam: str) -> str:
        (end,) = trackers[cam].close()
        state.apply(schemas.TOPIC_SITUATIONS, end)
        return end.situation_id

    clip("cam-a", 0, "normal")  # no incident: a clip of the flat feed only
    clip("cam-a", 1, "violent_movement")
    clip("cam-a", 2, "violent_movement")
    sa = close("cam-a")
    clip("cam-b", 0, "item_seizure")
    sb = trackers["cam-b"].open.situation_id
    with ServerThread(create_app(WebConfig(), state)) as server:
        page = _open(browser, server.url)
        page.click("#tabs button[data-tab='events']")
        page.wait_for_selector("#situation-feed tr.situation")
        heads = page.locator("#situation-feed tr.situation")
        assert heads.evaluate_all("rs => rs.map(r => [r.dataset.situationId, r.dataset.live])") == [[sb, "1"], [sa, "0"]]
        a_clips = page.locator(f"tbody[data-situation-id='{sa}'] tr.sit-clip")
        assert a_clips.evaluate_all("rs => rs.map(r => r.dataset.eventId)") == ["cam-a:2", "cam-a:1"]
        head_a = page.inner_text(f"tr.situation[data-situation-id='{sa}']")
        assert "violent_movement 0.80" in head_a and "ended (stopped)" in head_a and "\t4 s\t" in head_a
        assert "live" in page.inner_text(f"tr.situation[data-situation-id='{sb}'] .badge.live")
        assert page.locator("#event-feed tr").count() == 4  # every clip stays in the flat feed too
        shots(page, "console-situations")
        # the open incident's next clip is grouped under it, then it ends: no reload
        clip("cam-b", 1, "item_seizure")
        page.wait_for_selector(f"tbody[data-situation-id='{sb}'] tr.sit-clip[data-event-id='cam-b:1']")
        close("cam-b")
        page.wait_for_selector(f"tr.situation[data-situation-id='{sb}'][data-live='0']")
        st = state.status()
        assert (st["received"][schemas.TOPIC_SITUATIONS], st["situations"], st["situations_open"]) == (6, 2, 0)
        # a track standing in a camera zone past its loitering time opens one without any indicator concept
        from streamer.config import ZoneConfig

        bench = ZoneConfig(name="bench", polygon=[(0, 0), (100, 0), (100, 100), (0, 100)], loitering_s=3)
        trackers["cam-c"] = SituationTracker("cam-c", cell_id=cell, zones=[bench])
        for k in (0, 1):
            ev = samples.indicator_event("cam-c", cell, k, concept="normal", at=t0 + timedelta(seconds=2 * k + 2))
            state.apply(schemas.TOPIC_INDICATORS, ev)
            for m in trackers["cam-c"].observe(ev, {"t:1": [(2 * k + i / 5, 50.0, 90.0) for i in range(10)]}):
                state.apply(schemas.TOPIC_SITUATIONS, m)
        sc = trackers["cam-c"].open.situation_id
        page.wait_for_selector(f"tr.situation[data-situation-id='{sc}'][data-live='1']")
        head_c = page.inner_text(f"tr.situation[data-situation-id='{sc}']")
        assert "stayed in a zone" in head_c and "bench 3.8 s (≥ 3 s)" in head_c, head_c
        assert not page.errors, page.errors
        page.close()
