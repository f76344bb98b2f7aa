"""Request ids and the access log."""

from __future__ import annotations

import logging
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrlogin.logs import redact_path, request_id

access_log = logging.getLogger("qrlogin.access")


class RequestLog:
    """Gives each request an id (``X-Request-Id``, kept when a proxy sent a sane one) and logs
    one line per response, with the path's secrets cut out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
        rid = rid or secrets.token_hex(8)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", rid)
                access_log.info(
                    "%s %s %s",
                    scope["method"],
                    redact_path(scope["path"]),
                    status,
                    extra={
                        "status": status,
                        "method": scope["method"],
                        "path": redact_path(scope["path"]),
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
