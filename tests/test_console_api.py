"""API tests of the web console: data endpoints, 404s, access control, malformed messages, run folders, uploads."""
from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from console import samples
from console.app import create_app
from console.auth import AuthError, Authenticator, hash_password, verify_password
from console.config import WebConfig
from console.server import build_console
from console.state import BusFeed, ConsoleState, load_run_dir
from console.uploads import TMP_PREFIX
from streamer import schemas
from streamer.bus import InMemoryBus


@pytest.fixture(scope="module")
def grid():
    return samples.small_grid()


def _fed_state(grid, cfg: WebConfig | None = None) -> ConsoleState:
    st = ConsoleState(cfg or WebConfig(), grid)
    cells = grid.cell_ids()
    st.apply(schemas.TOPIC_MAPS, samples.snapshot(grid, {cells[0]: 4.0, cells[1]: 1.0, cells[2]: 0.5}))
    st.apply(schemas.TOPIC_CELLS, samples.cell_message(cells[0]))
    for i in range(3):
        st.apply(schemas.TOPIC_INDICATORS, samples.indicator_event("cam-1", cells[0], i))
    st.apply(schemas.TOPIC_INDICATORS, samples.indicator_event("cam-2", cells[1], 0, concept="sneaking"))
    st.apply(schemas.TOPIC_CAMERAS, samples.camera_status("cam-1", cells[0]))
    return st


def test_data_endpoints_and_404s(grid):
    client = TestClient(create_app(WebConfig(), _fed_state(grid)))
    cell = grid.cell_ids()[0]
    m = client.get("/api/map", params={"crime": "robbery", "layer": "merged"}).json()
    assert m["values"][cell] == 4.0 and m["classes"][cell] >= 1
    # each layer's classes are the map service's, as published (the console never recomputes them)
    st = _fed_state(grid)
    snap = st.snapshot.model_copy(deep=True)
    snap.layers["robbery"].live_classes = {cell: 2}
    snap.layers["robbery"].forecast_classes = {}
    st.apply(schemas.TOPIC_MAPS, snap.model_copy(update={"snapshot_id": "classed"}))
    c2 = TestClient(create_app(WebConfig(), st))
    assert c2.get("/api/map", params={"crime": "robbery", "layer": "live"}).json()["classes"] == {cell: 2}
    assert c2.get("/api/map", params={"crime": "robbery", "layer": "forecast"}).json()["classes"] == {}
    d = client.get(f"/api/cells/{cell}").json()
    assert d["latest"]["flags"]["robbery"] is True
    assert d["latest"]["top_rules"]["robbery"][0]["strength"] == pytest.approx(0.62)
    assert len(d["events"]) == 3 and d["events"][0]["concept"] == "violent_movement"
    assert [e["camera_id"] for e in client.get("/api/events", params={"concept": "sneaking"}).json()] == ["cam-2"]
    assert len(client.get("/api/events", params={"camera": "cam-1", "cell": cell}).json()) == 3
    g = client.get("/api/grid").json()
    assert g["kind"] == "lonlat" and len(g["xs"]) == grid.cols + 1 and cell in g["cells"]
    assert client.get("/api/cameras/cam-1").json()["state"] == "online"
    # unknown cell / camera: 404 with a message, API and page alike
    r = client.get("/api/cells/r999c0")
    assert r.status_code == 404 and "unknown cell 'r999c0'" in r.json()["detail"]
    r = client.get("/api/cells/not-a-cell")
    assert r.status_code == 404 and "not a cell of the study area" in r.json()["detail"]
    r = client.get("/api/cameras/nope")
    assert r.status_code == 404 and "unknown camera 'nope'" in r.json()["detail"]
    r = client.get("/cells/r999c0")
    assert r.status_code == 404 and "Unknown cell" in r.text
    r = client.get("/cameras/ghost")
    assert r.status_code == 404 and "Unknown camera" in r.text
    assert client.get(f"/cells/{cell}").status_code == 200
    r = client.get("/api/map", params={"crime": "arson"})
    assert r.status_code == 422 and "unknown crime type" in r.json()["detail"]
    assert client.get("/api/nothing-here").status_code == 404
    assert "/api/cells/{cell_id}" in client.get("/api/openapi.json").json()["paths"]


def test_map_says_why_it_is_empty_when_every_window_was_too_old(grid, tmp_path):
    """The map service dropped every window as too old: the API gives the page a sentence, not just no values."""
    from mapping.config import MapConfig
    from mapping.service import MapService

    recorded = datetime(2026, 5, 1, 21, 4, tzinfo=timezone.utc)
    svc = MapService(InMemoryBus(), grid, MapConfig(), out_dir=tmp_path / "map",
                     clock=lambda: recorded + timedelta(days=200))
    cell = samples.cell_message(grid.cell_ids()[0], at=recorded)   # not marked replay: aged on the wall clock
    assert not svc.apply(cell)
    snap = svc.publish()
    svc.write_files()
    st = ConsoleState(WebConfig(), grid)
    st.apply(schemas.TOPIC_MAPS, snap)
    client = TestClient(create_app(WebConfig(), st))
    m = client.get("/api/map").json()
    assert m["values"] == {}
    assert m["notice"] == "no live data in the last 150 minutes (events received are from 2026-05-01 21:04 UTC)"
    # the same from the run folder the map service wrote (`imminence web --from`)
    disk = ConsoleState(WebConfig(), grid)
    load_run_dir(disk, tmp_path / "map")
    assert disk.map_layer("all", "merged")["notice"] == m["notice"]
    # live data again: no notice
    st.apply(schemas.TOPIC_MAPS, samples.snapshot(grid, {grid.cell_ids()[1]: 2.0}))
    assert client.get("/api/map").json()["notice"] is None


def test_security_headers_and_leaflet_served_locally(grid):
    client = TestClient(create_app(WebConfig(), _fed_state(grid)))
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in r.text.split("<body")[0].replace("http-equiv", "")  # no CDN in the page head
    assert client.get("/static/leaflet/leaflet.js").status_code == 200
    assert client.get("/static/leaflet/leaflet.css").status_code == 200


def test_malformed_messages_are_skipped_and_counted(grid):
    st = ConsoleState(WebConfig(), grid)
    assert st.apply_raw(schemas.TOPIC_MAPS, b"{not json") is None
    assert st.apply_raw(schemas.TOPIC_CELLS, json.dumps({"schema": "imminence.cell/1", "cell_id": "r0c0"})) is None
    assert st.status()["malformed"] == 2
    other = samples.snapshot(samples.small_grid(rows=3, cols=3), {"r0c0": 1.0})
    assert not st.apply(schemas.TOPIC_MAPS, other) and st.snapshot is None  # another grid's snapshot
    assert st.status()["malformed"] == 3 and "is for grid" in st.status()["last_malformed"]
    base = st.status()["malformed"]
    bus = InMemoryBus()
    feed = BusFeed(st, bus, "web-test").start()
    try:
        assert feed.ready.wait(5)
        bus.publish_raw(schemas.TOPIC_MAPS, b"\xff\xfe garbage", key="all")
        bus.publish_raw(schemas.TOPIC_INDICATORS, json.dumps({"schema": "imminence.map/1"}).encode(), key="c")
        cells = grid.cell_ids()
        snap = samples.snapshot(grid, {cells[3]: 2.0})
        bus.publish(schemas.TOPIC_MAPS, snap)
        bus.publish(schemas.TOPIC_MAPS, snap)  # a repeat: dropped by snapshot id
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (st.snapshot and st.status()["malformed"] >= base + 2):
            time.sleep(0.05)
        s = st.status()
        assert st.snapshot.snapshot_id == snap.snapshot_id
        assert s["malformed"] == base + 2 and s["duplicates"] == 1
        client = TestClient(create_app(WebConfig(), st))
        assert client.get("/api/map").json()["values"] == {cells[3]: 2.0}
    finally:
        feed.stop()


def test_stale_banner_state_follows_broker_probe(grid):
    st = ConsoleState(WebConfig(), grid)
    up = {"ok": True}
    feed = BusFeed(st, InMemoryBus(), "web-stale", probe=lambda: up["ok"], probe_every_s=0.05).start()
    try:
        st.apply(schemas.TOPIC_MAPS, samples.snapshot(grid, {grid.cell_ids()[0]: 1.0}))
        up["ok"] = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not st.status()["stale"]:
            time.sleep(0.02)
        s = st.status()
        assert s["stale"] and s["stale_since"] == s["last_message_at"]
        up["ok"] = True
        while time.monotonic() < deadline and st.status()["stale"]:
            time.sleep(0.02)
        assert not st.status()["stale"] and st.status()["stale_since"] is None
    finally:
        feed.stop()


def test_cell_history_bounded_and_revisions_replace(grid):
    st = ConsoleState(WebConfig(max_history_per_cell=5, history_hours=1.0), grid)
    cell = grid.cell_ids()[0]
    t0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    for i in range(8):
        st.apply(schemas.TOPIC_CELLS, samples.cell_message(cell, at=t0 + timedelta(minutes=i), level=float(i)))
    st.apply(schemas.TOPIC_CELLS, samples.cell_message(cell, at=t0 + timedelta(minutes=7), level=9.0, revision=1))
    hist = st.cell_detail(cell)["history"]
    assert len(hist) == 5
    assert hist[-1]["imminence"]["robbery"] == 9.0  # the late revision replaced its window


def test_run_folder(tmp_path, grid):
    cells = grid.cell_ids()
    (tmp_path / "cells.geojson").write_text(json.dumps(grid.to_geojson()))
    old = samples.snapshot(grid, {cells[0]: 1.0}, created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    new = samples.snapshot(grid, {cells[1]: 3.0}, created_at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    (tmp_path / "snapshot-old.json").write_text(schemas.encode(old).decode())
    (tmp_path / "snapshot-new.json").write_text(schemas.encode(new).decode())
    (tmp_path / "cells.jsonl").write_text(schemas.encode(samples.cell_message(cells[1])).decode() + "\n{broken\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"auroc": 0.9}))
    st = ConsoleState(WebConfig())  # no grid: geometry comes from the GeoJSON
    counts = load_run_dir(st, tmp_path)
    assert counts == {"messages": 3, "malformed": 1, "geojson": 1}
    client = TestClient(create_app(WebConfig(), st))
    assert client.get("/api/map").json()["values"] == {cells[1]: 3.0}
    g = client.get("/api/grid").json()
    assert g["kind"] == "lonlat" and set(g["rects"]) == set(cells)
    assert client.get(f"/api/cells/{cells[1]}").json()["latest"]["imminence"]["robbery"] == 6.0
    assert client.get("/api/cells/r999c999").status_code == 404
    # the map service's own GeoJSON (layer properties per cell) is a snapshot too
    from mapping.render import write_geojson
    import numpy as np

    merged = np.zeros(grid.shape)
    r, c = grid.parse_cell_id(cells[4])
    merged[r, c] = 0.8
    other = tmp_path / "svc"
    write_geojson(grid, {"robbery": {"merged": merged, "live": merged * 10, "forecast": merged * 0,
                                     "class": (merged > 0).astype(int) * 4, "live_class": (merged > 0).astype(int) * 3,
                                     "live_mean": merged}}, other / "map.geojson",
                  {"written_at": "2026-01-03T00:00:00+00:00"})
    st2 = ConsoleState(WebConfig())
    assert load_run_dir(st2, other)["messages"] == 1
    m = TestClient(create_app(WebConfig(), st2)).get("/api/map", params={"crime": "robbery"}).json()
    assert m["values"] == {cells[4]: 0.8} and m["classes"] == {cells[4]: 4}
    m = TestClient(create_app(WebConfig(), st2)).get("/api/map", params={"crime": "robbery", "layer": "live"}).json()
    assert m["values"] == {cells[4]: 8.0} and m["classes"] == {cells[4]: 3}
    assert set(st2.snapshot.layers) <= set(schemas.CRIME_TYPES) | {"all"}  # live_mean_* is no layer of its own
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_run_dir(st, tmp_path / "missing")


# -- access control ---------------------------------------------------------------------------------
def _auth_cfg(**kw) -> WebConfig:
    return WebConfig(host="0.0.0.0", users=[
        {"name": "ana", "password_hash": hash_password("s3cret-ana"), "role": "viewer"},
        {"name": "op", "password_hash": hash_password("s3cret-op"), "role": "operator"}], **kw)


def test_password_hashes():
    h = hash_password("pw")
    assert h.startswith("scrypt$") and verify_password("pw", h) and not verify_password("pW", h)
    assert not verify_password("pw", "garbage") and not verify_password("pw", "scrypt$1$2")
    import hashlib
    salt = b"salty"
    pb = f"pbkdf2_sha256$1000${salt.hex()}${hashlib.pbkdf2_hmac('sha256', b'pw', salt, 1000).hex()}"
    assert verify_password("pw", pb) and not verify_password("px", pb)


def test_refuses_open_console_on_public_address(tmp_path):
    with pytest.raises(AuthError, match="refusing to serve on 0.0.0.0"):
        build_console(WebConfig(host="0.0.0.0"), run_dir=tmp_path)
    build_console(WebConfig(host="127.0.0.1"), run_dir=tmp_path)  # loopback may run open
    Authenticator(WebConfig(), env={"IMMINENCE_WEB_TOKEN": "t0k"}).check_bind("10.1.2.3")
    from imminence.cli import main
    assert main(["web", "--host", "0.0.0.0", "--from", str(tmp_path)]) == 2


def test_login_sessions_roles_and_token(grid, caplog):
    cfg = _auth_cfg(tls_cert="cert.pem", tls_key="key.pem", token="tok-123", token_role="viewer")
    client = TestClient(create_app(cfg, _fed_state(grid)), base_url="https://testserver")
    assert client.get("/").status_code == 200  # the page itself holds no data
    for path in ("/api/map", "/api/cells/r0c0", "/api/events", "/api/cameras", "/api/stream", "/api/me"):
        r = client.get(path)
        assert r.status_code == 401 and "login required" in r.json()["detail"], path
    with caplog.at_level(logging.WARNING, logger="console.auth"):
        r = client.post("/api/login", json={"username": "ana", "password": "wrong-horse"})
    assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    assert "failed login for user 'ana'" in caplog.text and "wrong-horse" not in caplog.text
    r = client.post("/api/login", json={"username": "ana", "password": "s3cret-ana"})
    assert r.status_code == 200 and r.json() == {"user": "ana", "role": "viewer", "auth": True}
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    me = client.get("/api/me").json()
    assert me["role"] == "viewer" and "hash" not in json.dumps(me)
    assert client.get("/api/map").status_code == 200
    r = client.post("/api/uploads", files={"file": ("a.png", b"x", "image/png")})
    assert r.status_code == 403 and "operator role" in r.json()["detail"]
    client.post("/api/logout")
    assert client.get("/api/map").status_code == 401
    # brute force: after 5 failures in 5 minutes the address must wait, even with the right password
    for _ in range(4):
        assert client.post("/api/login", json={"username": "ana", "password": "guess"}).status_code == 401
    r = client.post("/api/login", json={"username": "ana", "password": "s3cret-ana"})
    assert r.status_code == 429 and "too many failed logins" in r.json()["detail"] and int(r.headers["retry-after"]) > 0
    # a bearer token, without any cookie
    bare = TestClient(create_app(cfg, _fed_state(grid)))
    assert bare.get("/api/map", headers={"Authorization": "Bearer tok-123"}).status_code == 200
    assert bare.get("/api/map", headers={"Authorization": "Bearer nope"}).status_code == 401
    # no secrets anywhere in what the API or the page hand out
    for body in (bare.get("/").text, bare.get("/static/app.js").text,
                 bare.get("/api/config", headers={"Authorization": "Bearer tok-123"}).text):
        assert "tok-123" not in body and "scrypt$" not in body


# -- uploads -------------------------------------------------------------------------------------------------
class _NeverCalled:
    def __call__(self):
        raise AssertionError("the analyser must not run for a refused upload")


def _video_bytes(path: Path, seconds: float, fps: float = 10.0, size: tuple[int, int] = (160, 128)) -> bytes:
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(int(seconds * fps)):
        frame = np.full((h, w, 3), 40, np.uint8)
        cv2.rectangle(frame, (i * 3 % (w - 20), 10), (i * 3 % (w - 20) + 12, h - 14), (200, 200, 200), -1)
        out.write(frame)
    out.release()
    return path.read_bytes()


def test_upload_errors(grid, tmp_path):
    cfg = WebConfig(upload_max_mb=0.5, upload_max_seconds=2.0)
    client = TestClient(create_app(cfg, _fed_state(grid, cfg), analyzer_factory=_NeverCalled()))
    before = set(Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"))
    r = client.post("/api/uploads", files={"file": ("notes.mp4", b"this is not a video at all" * 10, "video/mp4")})
    assert r.status_code == 415 and "not a video or an image" in r.json()["detail"]
    r = client.post("/api/uploads", files={"file": ("big.bin", b"\0" * 600_000, "application/octet-stream")})
    assert r.status_code == 413 and "0.5 MB upload limit" in r.json()["detail"]
    r = client.post("/api/uploads", files={"file": ("big.bin", b"\0" * 5_000_000, "application/octet-stream")})
    assert r.status_code == 413  # refused from its Content-Length, before the body is read
    r = client.post("/api/uploads", files={"file": ("big.bin", b"\0" * 520_000, "application/octet-stream")})
    assert r.status_code == 413 and "0.5 MB upload limit" in r.json()["detail"]  # counted while saving
    r = client.post("/api/uploads", files={"file": ("empty.png", b"", "image/png")})
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    r = client.post("/api/uploads", files={"file": ("long.avi", _video_bytes(tmp_path / "long.avi", 4.0), "video/x-msvideo")})
    assert r.status_code == 413 and "the limit is 2 s" in r.json()["detail"]
    truncated = _video_bytes(tmp_path / "c.avi", 1.0)[:300]  # header only: no decodable frame
    r = client.post("/api/uploads", files={"file": ("corrupt.avi", truncated, "video/x-msvideo")})
    assert r.status_code == 415 and "not a video or an image" in r.json()["detail"]
    r = client.post("/api/uploads", files={"file": ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")})
    assert r.status_code == 415
    r = client.post("/api/uploads", files={"file": ("tiny.avi", _video_bytes(tmp_path / "t.avi", 1.0, size=(96, 64)))})
    assert r.status_code == 422 and "96x64 pixels" in r.json()["detail"]  # below the people detector's window
    r = client.post("/api/uploads", data={"x": "1"})
    assert r.status_code == 422
    assert set(Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*")) == before  # every temp folder deleted
    # without an analyser the console says so
    r = TestClient(create_app(cfg, _fed_state(grid, cfg))).post(
        "/api/uploads", files={"file": ("a.png", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())})
    assert r.status_code == 503 and "not available" in r.json()["detail"]


def test_tls_when_a_certificate_is_configured(grid, tmp_path):
    """With web.tls_cert/tls_key the console speaks HTTPS and its session cookie is Secure."""
    import shutil
    import subprocess

    import httpx

    from console.server import ServerThread

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    cfg = _auth_cfg(tls_cert=str(cert), tls_key=str(key))
    app = create_app(cfg, _fed_state(grid, cfg))
    with ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        url = server.url.replace("http://", "https://")
        import ssl

        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as c:
            r = c.post(url + "/api/login", json={"username": "op", "password": "s3cret-op"})
            assert r.status_code == 200
            assert "secure" in r.headers["set-cookie"].lower()
            assert c.get(url + "/api/map").status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url + "/api/map", timeout=5)  # plain HTTP is not served


def test_cli_hash_password_and_missing_source(monkeypatch, capsys):
    from imminence.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["web", "--hash-password"]) == 0
    out = capsys.readouterr().out.strip()
    assert verify_password("correct horse", out) and "correct horse" not in out
    assert main(["web"]) == 2  # neither --bootstrap nor --from
    assert "give --bootstrap" in capsys.readouterr().err


def test_users_and_token_from_environment():
    env = {"IMMINENCE_WEB_USERS": f"eve:operator:{hash_password('pw-eve')}", "IMMINENCE_WEB_TOKEN": "env-tok"}
    auth = Authenticator(WebConfig(host="10.0.0.5"), env=env)
    auth.check_bind("10.0.0.5")  # configured: may serve a public address
    sid = auth.login("eve", "pw-eve")
    assert sid and auth.principal(sid, None).role == "operator"
    assert auth.login("eve", "nope") is None and auth.failed_logins == 1
    assert auth.principal(None, "Bearer env-tok").via == "token"
    assert auth.principal(None, "Bearer other") is None and auth.principal("forged", None) is None
    with pytest.raises(AuthError, match="name:role:hash"):
        Authenticator(WebConfig(), env={"IMMINENCE_WEB_USERS": "broken-entry"})


def test_upload_video_and_image_through_the_worker_path(grid, tmp_path):
    """A valid video and an image run through streamer.offline (the camera workers' own path); temp files go."""
    from console.server import default_analyzer_factory

    cfg = WebConfig(upload_fps=5.0)
    client = TestClient(create_app(cfg, _fed_state(grid, cfg), analyzer_factory=default_analyzer_factory()))
    before = set(Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"))
    r = client.post("/api/uploads", files={"file": ("walk.avi", _video_bytes(tmp_path / "w.avi", 4.0), "video/x-msvideo")})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["kind"] == "video" and d["seconds"] == pytest.approx(4.0)
    assert len(d["clips"]) == 2 and d["frames_analysed"] == 20  # 10 fps sampled at 5 fps, 2 s clips
    assert 1 <= len(d["key_frames"]) <= cfg.upload_key_frames
    assert d["key_frames"][0]["image"].startswith("data:image/jpeg;base64,")
    assert "detector" in d["models"]
    png = cv2.imencode(".png", np.full((160, 200, 3), 90, np.uint8))[1].tobytes()
    r = client.post("/api/uploads", files={"file": ("still.png", png, "image/png")})
    assert r.status_code == 200 and r.json()["kind"] == "image" and len(r.json()["clips"]) == 1
    assert set(Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*")) == before


def test_upload_is_masked_like_a_camera_before_analysis(grid, tmp_path):
    """Uploads go through the worker's offline path (streamer.offline): web.upload_masks are blacked out right
    after decode, so the masked half shows in no key frame and nothing is detected there."""
    from console.server import default_analyzer_factory

    right = [[80.0, 0.0], [160.0, 0.0], [160.0, 128.0], [80.0, 128.0]]
    cfg = WebConfig(upload_fps=5.0, upload_masks=[right])
    client = TestClient(create_app(cfg, _fed_state(grid, cfg), analyzer_factory=default_analyzer_factory()))
    r = client.post("/api/uploads", files={"file": ("walk.avi", _video_bytes(tmp_path / "w.avi", 2.0), "video/x-msvideo")})
    assert r.status_code == 200, r.text
    d = r.json()
    assert len(d["clips"]) == 1 and d["frames_analysed"] == 10 and d["key_frames"]
    for k in d["key_frames"]:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(k["image"].split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
        assert img.shape[:2] == (128, 160)
        assert img[30:, 83:].max() < 25, "the masked half reached the analysis"  # below the label's text line
        assert img[30:, :77].max() > 150  # the unmasked half keeps the moving block (x < 70 for 2 s)
        assert all(b["xyxy"][0] < 80 for b in k["boxes"]), k["boxes"]
    with pytest.raises(ValueError, match="at least 3"):
        WebConfig(upload_masks=[[[0.0, 0.0], [1.0, 1.0]]])


def test_the_consoles_own_422s_match_their_declared_schema(grid):
    """/api/map and /api/events refuse unknown values with a sentence; the spec declared only FastAPI's
    field list for 422 (schemathesis found the mismatch): it now declares either."""
    from console.app import ErrorDetail

    client = TestClient(create_app(WebConfig(), _fed_state(grid)))
    spec = client.get("/api/openapi.json").json()
    for path, params in (("/api/map", {"crime": "nope"}), ("/api/map", {"layer": "nope"}),
                         ("/api/events", {"concept": "nope"}), ("/api/events", {"limit": "0"})):
        r = client.get(path, params=params)
        assert r.status_code == 422, (path, params)
        ErrorDetail.model_validate(r.json())
        declared = spec["paths"][path]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
        assert declared["$ref"].endswith("/ErrorDetail")
    assert isinstance(client.get("/api/map", params={"crime": "nope"}).json()["detail"], str)
