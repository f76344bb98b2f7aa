"""Request ids and the access log."""

from __future__ import annotations

import logging
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrlogin.logs import ACCESS_LOGGER, log_access, redact_path, request_id

access_log = logging.getLogger(ACCESS_LOGGER)


def request_id_of(scope: Scope) -> str:
    """The request's id: the one a proxy sent in ``X-Request-Id`` when it is sane, else new."""
    incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
    rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
    return rid or secrets.token_hex(8)


def log_response(
    scope: Scope, status: int, headers: MutableHeaders, rid: str, started: float
) -> None:
    """As a response starts: name the request id in its ``headers`` and write the one access
    log line of the request (``started`` is its ``time.perf_counter()``)."""
    headers.append("x-request-id", rid)
    method, path = scope["method"], redact_path(scope["path"])
    log_access(
        f"{method} {path} {status}",
        {
            "status": status,
            "method": method,
            "path": path,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


class RequestLog:
    """Gives each request an id (``X-Request-Id``, kept when a proxy sent a sane one) and logs
    one line per response, with the path's secrets cut out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        token = request_id.set(rid)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                log_response(scope, message["status"], MutableHeaders(scope=message), rid, started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
