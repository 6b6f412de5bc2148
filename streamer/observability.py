"""Prometheus metrics and a health endpoint for every long-running process.

``serve(port, health=callable)`` starts one small HTTP server in a daemon thread:

* ``GET /metrics``: Prometheus text format (prometheus_client's default registry,
  where every stage registers its counters), merged with the metrics of child
  processes when ``PROMETHEUS_MULTIPROC_DIR`` is set (:func:`enable_child_metrics`:
  ``imminence workers`` uses it so its camera processes' counters appear on the
  supervisor's port);
* ``GET /healthz``: JSON from the process's ``health()`` callable, status 200 when
  it reports ``"ok": true`` and 503 otherwise (camera offline, broker away...).

Port 0 picks a free port; the bound port is returned so tests can find it.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

HealthFn = Callable[[], dict]

# Metrics shared by more than one stage live here so they are registered once.
BUS_SENT = Counter("imminence_bus_sent_total", "Records acknowledged by the broker", ["topic"])
BUS_DROPPED = Counter("imminence_bus_dropped_total", "Records dropped because the outbox was full", ["topic"])
BUS_BUFFERED = Gauge("imminence_bus_buffered", "Records waiting in the outbox")
BUS_DLQ = Counter("imminence_dlq_total", "Invalid records sent to the dead-letter topic", ["topic"])
CONSUMER_LAG = Gauge("imminence_consumer_lag", "Approximate consumer lag (broker end offsets can trail)", ["group", "topic"])
MODEL_INFO = Gauge("imminence_model_info", "Loaded model versions (value 1)", ["model", "version"])
STAGE_SECONDS = Histogram("imminence_stage_seconds", "Time spent per stage call", ["stage"],
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


_health_checks: dict[str, HealthFn] = {}


def set_health(name: str, fn: HealthFn) -> None:
    """Register a component's health check; /healthz is ok only when every check is."""
    _health_checks[name] = fn


def health_report() -> dict:
    """Combined report of every registered check: {"ok": bool, name: report, ...}."""
    report: dict = {"ok": True}
    for name, fn in list(_health_checks.items()):
        try:
            part = fn()
        except Exception as exc:  # a failing health check is itself unhealthy
            part = {"ok": False, "error": str(exc)}
        report[name] = part
        report["ok"] = report["ok"] and bool(part.get("ok", True))
    return report


def enable_child_metrics() -> str:
    """Make processes started from now on write their metrics to a shared folder (prometheus multiprocess mode).

    Call before starting the children (``spawn`` children import prometheus_client
    afresh and see the variable); this process keeps its own in-memory registry and
    /metrics serves both.  Returns the folder.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = tempfile.mkdtemp(prefix="imminence-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


def child_process_exited(pid: int) -> None:
    """Forget the live gauges of a dead child (its counters stay, so totals survive restarts)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class _Merged:
    """This process's registry plus the children's multiprocess files, one family per metric name."""

    def __init__(self, folder: str) -> None:
        from prometheus_client import multiprocess

        self.children = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.children, path=folder)

    def collect(self):  # noqa: ANN201 - prometheus collector protocol
        from prometheus_client import values

        # A process that itself started in multiprocess mode is already in the files: don't count it twice.
        own = [] if values.ValueClass is not values.MutexValue else REGISTRY.collect()
        fams = {f.name: f for f in own}
        for f in self.children.collect():
            if f.name in fams:
                fams[f.name].samples.extend(f.samples)
            else:
                fams[f.name] = f
        return iter(fams.values())


def metrics_text() -> bytes:
    """The /metrics body: this process's metrics, plus its children's in multiprocess mode."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and os.path.isdir(folder):
        return generate_latest(_Merged(folder))  # type: ignore[arg-type]
    return generate_latest(REGISTRY)


class _Handler(BaseHTTPRequestHandler):
    health: Optional[HealthFn] = None

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path.startswith("/metrics"):
            body = metrics_text()
            self._send(200, body, CONTENT_TYPE_LATEST)
        elif self.path.startswith("/healthz"):
            try:
                report = self.health() if self.health else health_report()
            except Exception as exc:  # a failing health check is itself unhealthy
                report = {"ok": False, "error": str(exc)}
            self._send(200 if report.get("ok") else 503, json.dumps(report, default=str).encode(),
                       "application/json")
        else:
            self._send(404, b'{"error": "not found; try /metrics or /healthz"}', "application/json")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep scrapes out of the logs
        return


class MetricsServer:
    """A running metrics/health server; ``port`` is the bound port."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(port: int, host: str = "127.0.0.1", health: Optional[HealthFn] = None) -> MetricsServer:
    """Serve /metrics and /healthz on ``host:port`` in a daemon thread."""
    handler = type("Handler", (_Handler,), {"health": staticmethod(health) if health else None})
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics and health on http://%s:%d/metrics /healthz", host, httpd.server_address[1])
    return MetricsServer(httpd, thread)
