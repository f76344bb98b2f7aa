"""The requester's event stream, ``GET /api/v1/login-requests/{id}/events``, served by a small
ASGI handler ahead of the FastAPI stack.

Idle waiting requesters are what an instance holds by the thousand. Behind FastAPI each
stream kept the routing, exit-stack and exception-handling frames and our two middlewares
suspended, plus three stacked generators and the whole request record: about 31 KB a stream,
against about 11 KB for a bare ASGI app under the same uvicorn (docs/benchmarks.md finding 3).
``RequesterEvents`` does for this one route what that stack does — the request id and its
access-log line (``middleware``), the security headers (``security``), the same refusals and
failures (``errors``) — and then waits in one coroutine on a ``Watch``.

The FastAPI route stays declared: the OpenAPI document lists it, it answers the methods this
handler leaves to it (405), and it serves the whole stream when the app is called without
this handler in front. It streams with the same ``RequesterEventsResponse``.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from qrlogin.core.errors import QrLoginError
from qrlogin.core.machine import Status
from qrlogin.handshake.watch import Watch
from qrlogin.logs import request_id
from qrlogin.services import Services
from qrlogin.store.records import LoginRequest
from qrlogin.web.errors import error_response, record_failure
from qrlogin.web.middleware import log_response, request_id_of
from qrlogin.web.security import add_security_headers
from qrlogin.web.sse import HEARTBEAT, sse_event

ROUTE = "/api/v1/login-requests/{request_id}/events"
PATH = re.compile(r"/api/v1/login-requests/([^/]+)/events")
STREAM_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx must pass events through as they come
    (b"content-type", b"text/event-stream; charset=utf-8"),
)
FIRST = b"retry: 2000\n"  # browsers reconnect 2 s after losing the stream


def _route_path(scope: Scope) -> str:
    """The path the routes see: under a ``root_path``, the part after it (as Starlette)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


def _header(scope: Scope, name: bytes) -> str | None:
    """The first header called ``name`` (lower case), as Starlette's ``Request.headers``."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _on_gone(task: asyncio.Task[None], gone: asyncio.Future[None]) -> None:
    if not gone.cancelled():
        gone.exception()  # retrieved: a receive that failed means the client is gone too
        task.cancel()


async def _until_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


def _state_event(svc: Services, rec: LoginRequest) -> bytes:
    if rec.status == Status.APPROVED.value and rec.approved_at is not None:
        latency = svc.clock.now() - rec.approved_at
        svc.metrics.approval_latency.observe(max(0.0, latency))
    return sse_event("state", svc.login_requests.requester_view(rec), rec.version)


class RequesterEventsResponse(Response):
    """The stream of a requester already checked: ``event: state`` now and at every change,
    a heartbeat comment at least every heartbeat interval, until a final state. It counts
    itself open meanwhile. Both the FastAPI route and ``RequesterEvents`` send it.

    When the client leaves, the stream is cancelled at once (one task waits for that); the
    store shields its calls, so no transaction is cut in half. A failure after the response
    has started is logged and counted as the stack would, and ends the stream cleanly: the
    browser reconnects and reads the state again."""

    def __init__(self, svc: Services, rec: LoginRequest) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(STREAM_HEADERS)
        self._svc = svc
        self._rec: LoginRequest | None = rec

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        svc, rec = self._svc, self._rec
        assert rec is not None, "a stream is sent once"
        self._rec = None
        task = asyncio.current_task()
        assert task is not None
        gauge = svc.metrics.open_streams.labels("login_request")
        watch = Watch(svc.login_requests, rec, heartbeat=svc.policy.heartbeat)
        view = svc.login_requests.requester_view(rec)
        first = _body(FIRST + sse_event("state", view, rec.version))
        del rec, view  # from here on the watch holds what a waiting stream needs, not the record
        gone = asyncio.ensure_future(_until_gone(receive))
        gone.add_done_callback(functools.partial(_on_gone, task))
        gauge.inc()
        try:
            start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            self.raw_headers = []  # sent once: a waiting stream keeps no copy of them
            await send(start)
            del start
            await send(first)
            del first  # nor what it sent
            try:
                async for changed in watch:
                    await send(_body(HEARTBEAT if changed is None else _state_event(svc, changed)))
                    changed = None
            except Exception as exc:
                record_failure(svc.metrics, exc, "GET", ROUTE)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone.done() or task.uncancel() > 0:
                raise  # cancelled for another reason (shutdown): let it through
        finally:
            watch.close()
            gone.cancel()
            gauge.dec()


class RequesterEvents:
    """The raw ASGI handler of ``GET /api/v1/login-requests/{id}/events``.

    Authenticates like the route (``Authorization: Bearer <secret>``, else the requester
    cookie), answers refusals and failures with the same bodies, and adds what
    ``SecurityHeaders`` and ``RequestLog`` add, so from outside it is the route."""

    def __init__(self, services: Services, cookie_name: str) -> None:
        self.services = services
        self.cookie_name = cookie_name

    def match(self, scope: Scope) -> str | None:
        """The request id, if this handler serves ``scope``."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        found = PATH.fullmatch(_route_path(scope))
        return found.group(1) if found else None

    def secret(self, scope: Scope) -> str | None:
        """The requester secret: the bearer token, else the cookie (as ``deps``)."""
        scheme, _, value = (_header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        cookies = _header(scope, b"cookie")
        return cookie_parser(cookies).get(self.cookie_name) if cookies else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, lr_id: str) -> None:
        rid = request_id_of(scope)
        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            svc = self.services
            response: Response
            try:
                rec = await svc.login_requests.for_requester(lr_id, self.secret(scope))
            except QrLoginError as exc:
                response = error_response(exc)
            except Exception as exc:
                response = error_response(record_failure(svc.metrics, exc, "GET", scope["path"]))
            else:
                response = RequesterEventsResponse(svc, rec)
                del rec  # the response hands it on to its watch: a waiting stream keeps none
            # what the stack's middlewares add, in their order (SecurityHeaders is inside)
            headers = MutableHeaders(raw=response.raw_headers)
            add_security_headers(headers, https=svc.settings.https)
            log_response(scope, response.status_code, headers, rid, started)
            del headers
            await response(scope, receive, send)
        finally:
            request_id.reset(token)
