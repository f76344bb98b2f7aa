"""What an API caller is told when a call fails, and what the server logs and counts.

Shared by the FastAPI exception handlers (``app.py``) and the requester's event stream, which
is served ahead of FastAPI (``events_asgi.py``), so both refuse and fail alike.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from qrlogin.core.errors import QrLoginError, ServiceUnavailable
from qrlogin.logs import redact_path
from qrlogin.metrics import Metrics
from qrlogin.web.schemas import ErrorBody

log = logging.getLogger("qrlogin.web")


def error_response(exc: QrLoginError) -> JSONResponse:
    """The one error reply: an ``ErrorBody`` with the error's status (and its Retry-After)."""
    headers = {"retry-after": str(exc.retry_after)} if exc.retry_after is not None else None
    body = ErrorBody.model_validate(exc.to_dict())  # attempts_left only where an error has it
    return JSONResponse(body.model_dump(exclude_none=True), status_code=exc.status, headers=headers)


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
