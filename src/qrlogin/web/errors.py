"""What an API caller is told when a call fails, and what the server logs and counts.

Shared by the FastAPI exception handlers (``app.py``) and the requester's event stream, which
is served ahead of FastAPI (``events_asgi.py``), so both refuse and fail alike.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrlogin.core.errors import QrLoginError, ServiceUnavailable
from qrlogin.logs import redact_path
from qrlogin.metrics import Metrics

log = logging.getLogger("qrlogin.web")


def error_response(exc: QrLoginError) -> JSONResponse:
    headers = {"retry-after": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def record_failure(metrics: Metrics, exc: Exception, method: str, path: str) -> QrLoginError:
    """Log (and count) an exception that is not a ``QrLoginError``; the error to answer with.

    A database error, or a connection that could not even be made (refused, timed out: the
    database driver's, which SQLAlchemy passes on unwrapped, or the mail server's) is a 503
    with one log line; anything else a 500 with its traceback."""
    where = f"{method} {redact_path(path)}"
    if isinstance(exc, SQLAlchemyError):
        metrics.database_errors.inc()
        log.error("database error on %s: %s", where, exc.__class__.__name__)
        return ServiceUnavailable()
    if isinstance(exc, OSError):
        mail = type(exc).__module__.startswith("aiosmtplib")
        if not mail:
            metrics.database_errors.inc()
        what = "mail server" if mail else "database"
        log.error("%s unreachable on %s: %s", what, where, exc.__class__.__name__)
        return ServiceUnavailable()
    log.error("unexpected error on %s", where, exc_info=exc)
    return QrLoginError()


class LastResort:
    """Answers an exception no handler took with the 500 of ``record_failure``, *inside* the
    middlewares, so that reply carries the security headers and ``X-Request-Id`` and gets its
    access-log line like every other, and the traceback is logged once.

    (Starlette's own last resort, ``ServerErrorMiddleware``, sits outside every middleware:
    its reply had neither, and it re-raised to the server, which logged the traceback again.)
    A failure after the response has started cannot be answered any more: it is logged once
    and the connection closes with the response cut short."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_watched)
        except Exception as exc:
            failed = record_failure(self.metrics, exc, scope["method"], scope["path"])
            if not started:
                await error_response(failed)(scope, receive, send)
