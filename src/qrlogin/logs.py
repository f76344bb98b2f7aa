"""Structured JSON logs with a request id, and paths with their secrets cut out.

Handles, magic-link tokens and ids sit in URL paths; the access log names the route instead,
so no secret, token or code ever reaches a log line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SECRET_SEGMENTS = re.compile(
    r"^(/q/|/auth/email/|/api/v1/scan/|/api/v1/login-requests/|/api/v1/sessions/|"
    r"/account/devices/)[^/?]+"
)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def redact_path(path: str) -> str:
    """``/q/AbC…`` → ``/q/{…}``: the route, never the handle, token or id in it."""
    return _SECRET_SEGMENTS.sub(lambda m: m.group(1) + "{…}", path)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for qrlogin and uvicorn; uvicorn's own access log (raw paths) off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
