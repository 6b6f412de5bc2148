"""The console's ASGI app: a JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``) and one page.

:func:`create_app` takes the web configuration, a :class:`ConsoleState` already
fed (by :class:`console.state.BusFeed` or :func:`console.state.load_run_dir`)
and, for uploads, a clip analyser factory.  The page (``static/``) uses only
this API; Leaflet is served from the ``xstatic-leaflet`` wheel at
``/static/leaflet/``; no CDN, no tiles unless ``web.tile_url`` is set.
New data reaches open pages through server-sent events (``/api/stream``).
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

import numpy as np
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from console.auth import COOKIE, Authenticator, Principal
from console.config import WebConfig
from console.state import CRIMES, LAYERS, ConsoleState
from geo.vocabulary import CONCEPT_MEANINGS, CONCEPTS, CRIME_COLOURS

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class FieldError(BaseModel):
    """One invalid request field, as FastAPI reports it."""

    loc: list[Union[str, int]]
    msg: str
    type: str


class ErrorDetail(BaseModel):
    """An error: a sentence (the console's own checks) or FastAPI's list of invalid fields."""

    detail: Union[str, list[FieldError]]


#: routes whose own checks answer 422 with a sentence, besides FastAPI's field list: declared as either
INVALID = {422: {"model": ErrorDetail, "description": "Invalid request: a sentence, or the invalid fields"}}


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


def _csp(cfg: WebConfig) -> str:
    img = "'self' data: blob:"
    if cfg.tile_url:
        parts = urlsplit(cfg.tile_url.replace("{s}", "a"))
        host = parts.netloc.replace("a.", "*.", 1) if "{s}" in cfg.tile_url else parts.netloc
        img += f" {parts.scheme}://{host}"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; "
            f"img-src {img}; connect-src 'self'; font-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def grid_geometry(state: ConsoleState) -> dict:
    """Cell rectangles for the page: edge coordinates per column and row plus the ids inside the area."""
    grid = state.grid
    if grid is not None:
        xs = grid.x0 + np.arange(grid.cols + 1) * grid.cell_size
        ys = grid.y0 + np.arange(grid.rows + 1) * grid.cell_size
        kind = "metric"
        if grid.projection is not None:
            # The local projection is equirectangular: cell edges stay straight lon/lat lines.
            xs, _ = grid.projection.to_lonlat(xs, np.zeros_like(xs))
            _, ys = grid.projection.to_lonlat(np.zeros_like(ys), ys)
            kind = "lonlat"
        return {"kind": kind, "rows": grid.rows, "cols": grid.cols, "cell_size_m": grid.cell_size,
                "grid_id": grid.grid_id, "xs": [round(float(v), 7) for v in xs],
                "ys": [round(float(v), 7) for v in ys], "cells": grid.cell_ids()}
    if state.geometry is not None:
        return {"kind": "lonlat", "rects": state.geometry["index"], "cells": sorted(state.geometry["index"]),
                **{k: state.geometry["properties"].get(k) for k in ("rows", "cols", "cell_size_m", "grid_id")}}
    snap = state.snapshot
    if snap is not None:
        # No geometry configured: draw the snapshot's grid in plain metres from (0, 0).
        g = snap.grid
        return {"kind": "metric", "rows": g.rows, "cols": g.cols, "cell_size_m": g.cell_size_m, "grid_id": g.grid_id,
                "xs": [c * g.cell_size_m for c in range(g.cols + 1)],
                "ys": [r * g.cell_size_m for r in range(g.rows + 1)],
                "cells": [f"r{r}c{c}" for r in range(g.rows) for c in range(g.cols)]}
    return {"kind": "none", "cells": []}


def create_app(cfg: WebConfig, source: ConsoleState, *,
               analyzer_factory: Optional[Callable[[], Any]] = None,
               auth: Optional[Authenticator] = None, on_shutdown: Optional[Callable[[], None]] = None) -> FastAPI:
    """Build the console app around a state; ``analyzer_factory`` makes the clip analyser for uploads."""
    state = source
    auth = auth or Authenticator(cfg)
    secure_cookie = cfg.tls_cert is not None
    csp = _csp(cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        _app.state.stopping = False  # the same app may be served again (tests restart servers)
        yield
        _app.state.stopping = True
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="Imminence console", version="1", openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Live crime-imminence map, cell explanations, indicator events, cameras and clip analysis.")
    app.state.console = state
    app.state.auth = auth

    upload_limit = int(cfg.upload_max_mb * 1e6) + 64 * 1024  # the file plus its multipart envelope

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        if request.method == "POST" and request.url.path == "/api/uploads":
            # Refuse oversized uploads before the multipart body is read and spooled to disk.
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                response = JSONResponse({"detail": "uploads need a Content-Length header"}, 411)
            elif int(length) > upload_limit:
                response = JSONResponse({"detail": f"the file is larger than the {cfg.upload_max_mb:g} MB upload limit"},
                                        413)
            else:
                response = None
            if response is not None:
                response.headers["Content-Security-Policy"] = csp
                return response
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "?"

    def principal(request: Request) -> Principal:
        p = auth.principal(request.cookies.get(COOKIE), request.headers.get("authorization"))
        if p is None:
            raise HTTPException(401, "login required: POST /api/login or send Authorization: Bearer <token>")
        return p

    def operator(p: Principal = Depends(principal)) -> Principal:
        if not p.can("operator"):
            raise HTTPException(403, f"user {p.name!r} has the {p.role} role; uploads need the operator role")
        return p

    def known_cell(cell_id: str) -> str:
        if not state.has_cell(cell_id):
            rc = state.grid_rowscols()
            where = f"the grid has {rc[0]} rows x {rc[1]} columns" if rc else "no grid or snapshot is loaded yet"
            raise HTTPException(404, f"unknown cell {cell_id[:80]!r}: not a cell of the study area ({where})")
        return cell_id

    # -- session --------------------------------------------------------------------------
    @app.post("/api/login", tags=["session"], summary="Log in; sets an HttpOnly session cookie")
    def login(body: LoginBody, request: Request, response: Response) -> dict:
        if not auth.enabled:
            return {"user": "local", "role": "operator", "auth": False}
        wait = auth.retry_after(client_of(request))
        if wait > 0:
            log.warning("login for user %r from %s refused: too many failed attempts", body.username[:64],
                        client_of(request))
            raise HTTPException(429, f"too many failed logins from this address; try again in {wait:.0f} s",
                                headers={"Retry-After": str(int(wait) + 1)})
        sid = auth.login(body.username, body.password, client_of(request))
        if sid is None:
            raise HTTPException(401, "wrong user name or password")
        response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", secure=secure_cookie,
                            max_age=int(cfg.session_hours * 3600), path="/")
        user = auth.users[body.username]
        return {"user": user.name, "role": user.role, "auth": True}

    @app.post("/api/logout", tags=["session"])
    def logout(request: Request, response: Response) -> dict:
        auth.logout(request.cookies.get(COOKIE))
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookie)
        return {"ok": True}

    @app.get("/api/me", tags=["session"], summary="Who am I (401 when not logged in)")
    def me(p: Principal = Depends(principal)) -> dict:
        return {"user": p.name, "role": p.role, "via": p.via, "auth": auth.enabled}

    # -- data -----------------------------------------------------------------------------
    @app.get("/api/config", tags=["data"], summary="What the page needs to draw: crimes, layers, concepts, tiles")
    def page_config(p: Principal = Depends(principal)) -> dict:
        # the vocabularies (geo.vocabulary): the page declares none of its own
        return {"crimes": list(CRIMES), "layers": list(LAYERS), "concepts": list(CONCEPTS),
                "crime_colours": dict(CRIME_COLOURS), "concept_meanings": dict(CONCEPT_MEANINGS),
                "tile_url": cfg.tile_url, "tile_attribution": cfg.tile_attribution,
                "can_upload": p.can("operator"), "upload_max_mb": cfg.upload_max_mb,
                "upload_max_seconds": cfg.upload_max_seconds, "history_hours": cfg.history_hours}

    @app.get("/api/health", tags=["data"], summary="Feed status: connected or stale since, counters")
    def health(p: Principal = Depends(principal)) -> dict:
        return state.status()

    @app.get("/api/grid", tags=["data"], summary="Cell geometry (edges per column/row, ids inside the area)")
    def grid(p: Principal = Depends(principal)) -> dict:
        return grid_geometry(state)

    @app.get("/api/map", tags=["data"], summary="Latest snapshot layer: values and classes per cell", responses=INVALID)
    def map_layer(crime: str = Query("all"), layer: str = Query("merged"),
                  p: Principal = Depends(principal)) -> dict:
        if crime not in CRIMES:
            raise HTTPException(422, f"unknown crime type {crime[:40]!r}; one of {list(CRIMES)}")
        if layer not in LAYERS:
            raise HTTPException(422, f"unknown layer {layer[:40]!r}; one of {list(LAYERS)}")
        return state.map_layer(crime, layer)

    @app.get("/api/cells/{cell_id}", tags=["data"], summary="Why a cell is hot: history, flags, rules, forecast, events")
    def cell(cell_id: str, p: Principal = Depends(principal)) -> dict:
        return state.cell_detail(known_cell(cell_id))

    @app.get("/api/events", tags=["data"], summary="Newest indicator events, filterable", responses=INVALID)
    def events(camera: Optional[str] = None, concept: Optional[str] = None, cell: Optional[str] = None,
               limit: int = Query(100, ge=1, le=1000), p: Principal = Depends(principal)) -> list[dict]:
        if concept and concept not in CONCEPTS:
            raise HTTPException(422, f"unknown concept {concept[:40]!r}; one of {list(CONCEPTS)}")
        return state.event_list(camera=camera, concept=concept, cell=cell, limit=limit)

    @app.get("/api/situations", tags=["data"], summary="Newest situations (incidents) with their clips grouped under them")
    def situations(camera: Optional[str] = None, limit: int = Query(50, ge=1, le=500),
                   p: Principal = Depends(principal)) -> list[dict]:
        return state.situation_list(camera=camera, limit=limit)

    @app.get("/api/cameras", tags=["data"], summary="Camera workers and their state")
    def cameras(p: Principal = Depends(principal)) -> list[dict]:
        return state.camera_list()

    @app.get("/api/cameras/{camera_id}", tags=["data"])
    def camera(camera_id: str, p: Principal = Depends(principal)) -> dict:
        for c in state.camera_list():
            if c["camera_id"] == camera_id:
                return {**c, "events": state.event_list(camera=camera_id, limit=50)}
        raise HTTPException(404, f"unknown camera {camera_id[:80]!r}: no worker has reported under this id")

    @app.get("/api/stream", tags=["data"], summary="Server-sent events: map, cell, event, situation, camera, status")
    async def stream(request: Request, p: Principal = Depends(principal)) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)

        def put(item: tuple[str, dict]) -> None:
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:  # a stuck page: it resyncs on the next status
                pass

        def listener(kind: str, payload: dict) -> None:
            loop.call_soon_threadsafe(put, (kind, payload))

        state.add_listener(listener)

        async def gen():
            try:
                yield "retry: 1000\n\n"
                yield f"event: status\ndata: {json.dumps(state.status())}\n\n"
                while not getattr(app.state, "stopping", False):
                    if await request.is_disconnected():
                        break
                    try:
                        kind, payload = await asyncio.wait_for(queue.get(), timeout=1.0)
                    except asyncio.TimeoutError:
                        yield f"event: status\ndata: {json.dumps(state.status())}\n\n"
                        continue
                    yield f"event: {kind}\ndata: {json.dumps(payload)}\n\n"
            finally:
                state.remove_listener(listener)

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/uploads", tags=["uploads"], summary="Analyse a short video or an image (operators)", responses=INVALID)
    def upload(request: Request, file: UploadFile = File(...), p: Principal = Depends(operator)) -> dict:
        from console.uploads import UploadError, analyse_upload

        if analyzer_factory is None:
            raise HTTPException(503, "clip analysis is not available in this console (no detectors configured)")
        try:
            result = analyse_upload(file, cfg, analyzer_factory)
        except UploadError as exc:
            log.info("upload %r from %s refused: %s", (file.filename or "")[:80], client_of(request), exc.message)
            raise HTTPException(exc.status, exc.message) from None
        log.info("upload %r analysed for %s: %d clips", (file.filename or "")[:80], p.name, len(result["clips"]))
        return result

    @app.get("/api/{rest:path}", include_in_schema=False)
    def api_unknown(rest: str) -> JSONResponse:
        return JSONResponse({"detail": f"no such API endpoint: /api/{rest[:80]}; see /api/openapi.json"}, 404)

    # -- page -----------------------------------------------------------------------------
    import xstatic.pkg.leaflet as leaflet

    app.mount("/static/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def not_found_page(message: str) -> HTMLResponse:
        from html import escape

        return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Not found</title>"
                            f"<link rel=stylesheet href=/static/app.css></head><body class=notfound>"
                            f"<main><h1>Not found</h1><p id=notfound-message>{escape(message)}</p>"
                            f"<p><a href=/>Back to the map</a></p></main></body></html>", 404)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return page()

    @app.get("/cells/{cell_id}", include_in_schema=False)
    def cell_page(cell_id: str):
        if not state.has_cell(cell_id):
            return not_found_page(f"Unknown cell '{cell_id[:80]}': it is not a cell of the study area.")
        return page()

    @app.get("/cameras/{camera_id}", include_in_schema=False)
    def camera_page(camera_id: str):
        if camera_id not in {c["camera_id"] for c in state.camera_list()}:
            return not_found_page(f"Unknown camera '{camera_id[:80]}': no worker has reported under this id.")
        return page()

    return app
