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
this handler in front. Both stream with the same ``requester_stream``, the one
``sse.EventStreamResponse`` every stream of the app is sent with; the secret is read by
``deps.requester_secret_in`` as every requester route reads it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from qrlogin.core.errors import QrLoginError
from qrlogin.core.machine import Status
from qrlogin.handshake.watch import Watch
from qrlogin.logs import request_id
from qrlogin.services import Services
from qrlogin.store.records import LoginRequest
from qrlogin.web.deps import requester_secret_in
from qrlogin.web.errors import error_response, record_failure
from qrlogin.web.middleware import log_response, request_id_of, route_path
from qrlogin.web.security import add_security_headers
from qrlogin.web.sse import HEARTBEAT, EventStreamResponse, sse_event

ROUTE = "/api/v1/login-requests/{request_id}/events"
PATH = re.compile(r"/api/v1/login-requests/([^/]+)/events")
FIRST = b"retry: 2000\n"  # browsers reconnect 2 s after losing the stream


def _state_event(svc: Services, rec: LoginRequest) -> bytes:
    if rec.status == Status.APPROVED.value and rec.approved_at is not None:
        latency = svc.clock.now() - rec.approved_at
        svc.metrics.approval_latency.observe(max(0.0, latency))
    return sse_event("state", svc.login_requests.requester_view(rec), rec.version)


def _render(svc: Services, changed: LoginRequest | None) -> bytes:
    return HEARTBEAT if changed is None else _state_event(svc, changed)


Render = Callable[[LoginRequest | None], bytes]


def renderer(svc: Services) -> Render:
    """What a requester stream sends for a change (``None``: a heartbeat)."""
    return partial(_render, svc)


def requester_stream(
    svc: Services, rec: LoginRequest, render: Render | None = None
) -> EventStreamResponse[LoginRequest | None]:
    """The stream of a requester already checked: ``event: state`` now and at every change,
    a heartbeat comment at least every heartbeat interval, until a final state. Both the
    FastAPI route and ``RequesterEvents`` send it. It keeps a ``Watch``, not the record, and
    ``RequesterEvents`` passes the one ``render`` of its app (a stream keeps none of its own)."""
    watch = Watch(svc.login_requests, rec, heartbeat=svc.policy.heartbeat)
    first = FIRST + sse_event("state", svc.login_requests.requester_view(rec), rec.version)
    return EventStreamResponse(
        watch,
        render or renderer(svc),
        first=first,
        gauge=svc.metrics.open_streams.labels("login_request"),
        metrics=svc.metrics,
        route=ROUTE,
    )


class RequesterEvents:
    """The raw ASGI handler of ``GET /api/v1/login-requests/{id}/events``.

    Authenticates like the route (``Authorization: Bearer <secret>``, else the requester
    cookie), answers refusals and failures with the same bodies, and adds what
    the ``Edge`` middleware adds, so from outside it is the route."""

    def __init__(self, services: Services, cookie_name: str) -> None:
        self.services = services
        self.cookie_name = cookie_name
        self.render = renderer(services)

    def match(self, scope: Scope) -> str | None:
        """The request id, if this handler serves ``scope``."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        found = PATH.fullmatch(route_path(scope))
        return found.group(1) if found else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, lr_id: str) -> None:
        rid = request_id_of(scope)
        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            svc = self.services
            response: Response
            try:
                rec = await svc.login_requests.for_requester(
                    lr_id, requester_secret_in(Headers(scope=scope), self.cookie_name)
                )
            except QrLoginError as exc:
                response = error_response(exc)
            except Exception as exc:
                response = error_response(record_failure(svc.metrics, exc, "GET", scope["path"]))
            else:
                response = requester_stream(svc, rec, self.render)
                del rec  # the response hands it on to its watch: a waiting stream keeps none
            # what the Edge middleware adds, in its order
            headers = MutableHeaders(raw=response.raw_headers)
            add_security_headers(headers, https=svc.settings.https)
            log_response(scope, response.status_code, headers, rid, started)
            del headers
            await response(scope, receive, send)
        finally:
            request_id.reset(token)
