"""The one middleware around every request: its id and access-log line, the security
headers, and the last-resort answer to an exception nothing else handled."""

from __future__ import annotations

import logging
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrlogin.logs import ACCESS_LOGGER, log_access, redact_path, request_id
from qrlogin.metrics import Metrics
from qrlogin.web.errors import error_response, record_failure
from qrlogin.web.security import add_security_headers

access_log = logging.getLogger(ACCESS_LOGGER)


def route_path(scope: Scope) -> str:
    """The path routes match: under a ``root_path``, the part after it (as Starlette)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


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


class Edge:
    """What every response gets, in one layer (three layers cost three coroutine frames and
    three wrapped ``send`` calls per request, issue 15):

    - an id (``X-Request-Id``, kept when a proxy sent a sane one) and one access-log line,
      with the path's secrets cut out;
    - CSP, frame and referrer policies, no caching, and HSTS over https
      (``security.add_security_headers``);
    - the last resort: an exception no handler took gets the 500 of ``record_failure``
      *here*, so that reply carries the headers and gets its log line like every other, and
      its traceback is logged once. (Starlette's own last resort, ``ServerErrorMiddleware``,
      sits outside: its reply had neither, and it re-raised to the server, which logged the
      traceback again.) A failure after the response has started cannot be answered any
      more: it is logged once and the connection closes with the response cut short."""

    def __init__(self, app: ASGIApp, *, https: bool, metrics: Metrics) -> None:
        self.app = app
        self.https = https
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        token = request_id.set(rid)
        started = time.perf_counter()
        https = self.https
        answered = False

        async def send_edge(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                headers = MutableHeaders(scope=message)
                add_security_headers(headers, https=https)
                log_response(scope, message["status"], headers, rid, started)
            await send(message)

        try:
            await self.app(scope, receive, send_edge)
        except Exception as exc:
            failed = record_failure(self.metrics, exc, scope["method"], scope["path"])
            if not answered:
                await error_response(failed)(scope, receive, send_edge)
        finally:
            request_id.reset(token)
