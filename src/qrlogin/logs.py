"""Structured JSON logs with a request id, and paths with their secrets cut out.

Handles, magic-link tokens and ids sit in URL paths; the access log names the route instead,
so no secret, token or code ever reaches a log line.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import logging.handlers
import queue
import re
import sys
import threading
import time
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
ACCESS_LOGGER = "qrlogin.access"  # one line per request

# anywhere in the path, not only at its start: a host app may mount qrlogin under a prefix
_SECRET_SEGMENTS = re.compile(
    r"(/q/|/auth/email/|/api/v1/scan/|/api/v1/login-requests/|/api/v1/sessions/|"
    r"/account/devices/)[^/?]+"
)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def redact_path(path: str) -> str:
    """``/q/AbC…`` → ``/q/{…}`` (``/qr/q/AbC…`` → ``/qr/q/{…}`` under a host's prefix):
    the route, never the handle, token or id in it."""
    return _SECRET_SEGMENTS.sub(lambda m: m.group(1) + "{…}", path)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            # set by the handler that queued the record (it is formatted on another thread)
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _QueueWithContext(logging.handlers.QueueHandler):
    """Queue the record for the writer thread, with the request id it was logged under.
    Formatting and the write to stderr of the access log, one line per request, then cost the
    event loop nothing (they were an eighth of the server's time per request under load,
    docs/benchmarks.md). Every other record (start, shutdown, warnings, errors) waits until
    the writer has written it and everything queued before it: uvicorn ends the process with
    the signal that stopped it, so no ``atexit`` would run to write them later."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.request_id = request_id.get()
        return record

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if _listener is not None and (
            record.name != ACCESS_LOGGER or record.levelno >= logging.WARNING
        ):
            written = threading.Event()
            self.queue.put_nowait(written)
            written.wait(2.0)


class _Writer(logging.handlers.QueueListener):
    def dequeue(self, block: bool) -> Any:
        while True:
            item = super().dequeue(block)
            if not isinstance(item, threading.Event):
                return item
            item.set()  # everything before it is written


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for qrlogin and uvicorn, written by a thread of their own;
    uvicorn's own access log (raw paths) off."""
    global _listener
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    _stop_writer()
    _listener = _Writer(records, handler)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_QueueWithContext(records)]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


_listener: logging.handlers.QueueListener | None = None


@atexit.register
def _stop_writer() -> None:
    """Write what is queued, then end the writer thread (at exit, so no line is lost)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
