"""Logging set-up for every process: plain text, or one JSON object per line.

Stages log with ``logging.getLogger(__name__)`` and pass context in ``extra``
(``camera``, ``cell``, ``topic``...); the JSON formatter copies those fields.
Secrets are never logged: :func:`mask_url` hides credentials in RTSP/Kafka URLs.
"""
from __future__ import annotations

import json
import logging
import sys
import time

from streamer.redact import mask_url

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "msg": mask_url(record.getMessage()),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                obj[k] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        if record.exc_info:
            obj["exc"] = mask_url(self.formatException(record.exc_info))
        return json.dumps(obj, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ctx = {k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")}
        base = super().format(record)
        if ctx:
            base += " [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]"
        return mask_url(base)


class ContextFilter(logging.Filter):
    """Stamp fixed fields (e.g. ``camera``) on every record that lacks them: one process, one camera."""

    def __init__(self, **fields: object) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for k, v in self.fields.items():
            if not hasattr(record, k):
                setattr(record, k, v)
        return True


def add_log_context(**fields: object) -> None:
    """Name the camera (or cell...) on every log line of this process, e.g. ``add_log_context(camera="lobby")``."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(ContextFilter(**fields))


def quiet_native_logs() -> None:
    """Keep OpenCV's and FFmpeg's own stderr lines out of our logs.

    They bypass :mod:`logging`, so they would break one-JSON-object-per-line and
    could print a stream URL unmasked; the sources report the same failures
    through our (masked) logs.  An operator's own ``OPENCV_*`` settings win.
    """
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is imported...
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"] == "ERROR":  # ... so set it on an imported cv2 too
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    quiet_native_logs()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "ultralytics", "matplotlib", "PIL", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
