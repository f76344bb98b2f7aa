"""Structured JSON logs with a request id, and paths with their secrets cut out.

Handles, magic-link tokens and ids sit in URL paths; the access log names the route instead,
so no secret, token or code ever reaches a log line.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import json
import logging
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
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class LoopBatchHandler(logging.Handler):
    """Writes JSON lines to a stream without a thread of its own.

    A writer thread (the previous design) took the formatting off the event loop but cost
    more than it saved: every sqlite3 call and socket write released the GIL to it, ~190 µs
    per request under load (issue 15's profile). Here a record is formatted where it is
    logged (the request id is still in its context), and access-log lines logged on the
    event loop are kept until the end of the loop's current round and written together, one
    ``write`` per round whatever the number of requests in it. Every other record (start,
    shutdown, warnings, errors), and any record logged off the loop, is written at once
    with everything kept before it: uvicorn ends the process with the signal that stopped
    it, so nothing written later would appear."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream
        self._kept: list[str] = []
        self._planned_on: asyncio.AbstractEventLoop | None = None  # the loop a write waits on
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._kept.append(line)
        if record.name == ACCESS_LOGGER and record.levelno < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                # planned once per round (again on a new loop, if one closed before it ran)
                if self._planned_on is not loop:
                    self._planned_on = loop
                    loop.call_soon(self.write_kept)
                return
        self.write_kept()

    def write_kept(self) -> None:
        """Write every kept line (the end of a loop round, or a record that cannot wait)."""
        with self._write_lock:
            self._planned_on = None
            if not self._kept:
                return
            lines, self._kept = self._kept, []
            with contextlib.suppress(OSError, ValueError):  # a closed stderr breaks no request
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()

    def keep_access_line(self, line: str) -> None:
        """An access-log line already formatted (``log_access``): kept for the end of the
        loop's round like any other access line."""
        self._kept.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write_kept()
            return
        if self._planned_on is not loop:
            self._planned_on = loop
            loop.call_soon(self.write_kept)


_access = logging.getLogger(ACCESS_LOGGER)
_stamp_second = -1
_stamp = ""


def _time_of(now: float) -> str:
    """``JsonFormatter``'s time, with the part up to the second made once per second."""
    global _stamp_second, _stamp
    second = int(now)
    if second != _stamp_second:
        _stamp_second = second
        _stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_stamp}.{int((now - second) * 1000):03d}Z"


def log_access(message: str, fields: dict[str, Any]) -> None:
    """One access-log line. Under ``configure()`` (``qrlogin serve``) the JSON line is made
    here, in ``JsonFormatter``'s shape, without a ``LogRecord``, handler and formatter pass
    (a tenth of a request's time under load, issue 15); otherwise, or when the access log is
    turned down, through ``logging`` as usual."""
    handler = _handler
    if handler is None or _access.disabled or not _access.isEnabledFor(logging.INFO):
        _access.info(message, extra=fields)
        return
    entry: dict[str, Any] = {
        "time": _time_of(time.time()),
        "level": "info",
        "logger": ACCESS_LOGGER,
        "message": message,
        "request_id": request_id.get(),
    }
    entry.update(fields)
    handler.keep_access_line(json.dumps(entry, default=str))


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for qrlogin and uvicorn; uvicorn's own access log (raw paths)
    off. Records skip what nobody reads: the caller's source line (a frame walk per
    record), thread and process names."""
    global _handler
    _stop_writer()
    logging._srcfile = None  # documented: skips findCaller
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopBatchHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    _handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


_handler: LoopBatchHandler | None = None


@atexit.register
def _stop_writer() -> None:
    """Write what is kept (at exit, so no line is lost)."""
    global _handler
    if _handler is not None:
        _handler.write_kept()
        _handler = None
