"""The ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc as collector
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from qrlogin import __version__
from qrlogin.config import Settings
from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidRequest, NotFound, QrLoginError
from qrlogin.core.policy import Policy
from qrlogin.identity.ports import ApproverIdentity, CodeFailures, SessionStarter
from qrlogin.oauth.errors import OAuthError
from qrlogin.services import Services, build_services
from qrlogin.store.migrate import upgrade
from qrlogin.web import (
    api_auth,
    api_login_requests,
    api_passkeys,
    api_scan,
    api_sessions,
    api_totp,
    docs,
    oauth_api,
    oauth_pages,
    operations,
    pages,
)
from qrlogin.web.errors import error_response, record_failure
from qrlogin.web.events_asgi import RequesterEvents
from qrlogin.web.lean import Lean, hot_routes
from qrlogin.web.middleware import Edge
from qrlogin.web.responses import allowed_methods, openapi_schema
from qrlogin.web.schemas import ErrorBody

log = logging.getLogger("qrlogin.web")
# what a browser is shown for an address or method nothing serves (the API keeps JSON)
PAGE_ERRORS = {
    404: (
        "Page not found",
        "There is nothing at this address. Check it, or go to the start page.",
    ),
    405: (
        "This address cannot be opened like that",
        "It belongs to a button on a form. Go back to the page with the button, or open the "
        "link from the QR code again.",
    ),
}
STATIC = Path(__file__).with_name("static")


def wants_page(request: Request) -> bool:
    """A person at a page (not an API client): HTML accepted, outside ``/api/`` (under the
    host's prefix too)."""
    path = request.url.path[len(request.scope.get("root_path", "")) :]
    return not path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


async def _housekeeping(svc: Services, every: float = 15.0) -> None:
    """Write ``expired`` on requests past their lifetime (with their activity rows) and delete
    what ended long ago, in bounded batches."""
    while True:
        await asyncio.sleep(every)
        try:
            await svc.login_requests.expire_due()
            await svc.store.collect_garbage(svc.clock.now())
        except Exception:  # keep sweeping; the next round retries
            log.exception("housekeeping failed")


class QrloginApp(FastAPI):
    """The FastAPI app, with the requester's event stream served ahead of the whole stack
    (``events_asgi`` says why) once ``create_app`` has set ``requester_events``."""

    requester_events: RequesterEvents | None = None

    def openapi(self) -> dict[str, Any]:
        return openapi_schema(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = self.requester_events
        lr_id = events.match(scope) if events is not None else None
        if events is not None and lr_id is not None:
            await events(scope, receive, send, lr_id)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    approvers: ApproverIdentity | None = None,
    sessions: SessionStarter | None = None,
    failures: CodeFailures | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """A qrlogin app. Its lifespan migrates the database and starts the event bus.
    ``freeze_gc`` (``qrlogin serve``): once started, everything allocated so far moves to
    the collector's permanent generation, so full collections no longer walk the modules,
    routes and templates (76–105 ms pauses in the p99 under load, issue 15).

    Standalone (no identity adapters): the complete site, with the built-in accounts,
    sessions and their pages. Embedded (``approvers`` and ``sessions`` from a host app, see
    ``qrlogin.QRLogin``): only the handshake — the requester API and stream, the approver
    API, the ``/q/{handle}`` and ``/link`` pages, static files and the probes."""
    services = build_services(
        settings,
        clock=clock,
        policy=policy,
        approvers=approvers,
        sessions=sessions,
        failures=failures,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the writer: transactional on PostgreSQL (reads run in autocommit, where the
        # migration advisory lock would be released at once)
        await upgrade(services.store.writer)
        await services.bus.start()
        if freeze_gc:
            collector.collect()
            collector.freeze()
        gc = asyncio.create_task(_housekeeping(services))
        try:
            yield
        finally:
            gc.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gc
            await services.sessions.drain()
            if services.oauth is not None:
                await services.oauth.polls.close()
            await services.bus.stop()
            await services.store.close()

    app = QrloginApp(
        title="qrlogin",
        version=__version__,
        summary="Sign in on a new device by scanning a QR code with a signed-in device.",
        lifespan=lifespan,
        docs_url=None,  # served by web/docs.py, under a policy of its own
        redoc_url=None,
    )
    app.state.services = services
    app.state.cookie_names = settings.cookie_names
    app.requester_events = RequesterEvents(services, app.state.cookie_names.requester)

    @app.exception_handler(QrLoginError)
    async def _qrlogin_error(request: Request, exc: QrLoginError) -> Response:
        if wants_page(request):  # a person at a form, not an API client: show a page
            response = pages.message(request, "That did not work", exc.message, exc.status)
            if exc.retry_after is not None:
                response.headers["retry-after"] = str(exc.retry_after)
            return response
        return error_response(exc)

    @app.exception_handler(OAuthError)
    async def _oauth_error(request: Request, exc: OAuthError) -> Response:
        return oauth_api.oauth_error_response(exc)

    async def _failure(request: Request, exc: Exception) -> JSONResponse:
        failed = record_failure(services.metrics, exc, request.method, request.url.path)
        return error_response(failed)

    # a database error or a database or mail server out of reach is a 503 (web/errors.py);
    # anything else is the 500 of the Edge middleware (web/middleware.py)
    for failure in (SQLAlchemyError, OSError):
        app.add_exception_handler(failure, _failure)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: "
            f"{err.get('msg', 'invalid')}"
            for err in exc.errors()[:5]
        )
        return error_response(InvalidRequest(f"The request is malformed: {problems}."))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_page(request) and exc.status_code in PAGE_ERRORS:  # a person, not a client
            title, text = PAGE_ERRORS[exc.status_code]
            response = pages.message(request, title, text, exc.status_code)
            response.headers.update(exc.headers or {})
            return response
        if exc.status_code == 404:
            return error_response(NotFound())
        if exc.status_code == 400:  # e.g. a body FastAPI cannot even decode (not UTF-8)
            return error_response(InvalidRequest(f"The request is malformed: {exc.detail}."))
        headers = exc.headers
        allowed = allowed_methods(app, request.url.path) if exc.status_code == 405 else []
        if allowed:
            kept = {k: v for k, v in (headers or {}).items() if k.lower() != "allow"}
            headers = {**kept, "allow": ", ".join(allowed)}
        body = ErrorBody(error="http_error", message=str(exc.detail))
        return JSONResponse(
            body.model_dump(exclude_none=True), status_code=exc.status_code, headers=headers
        )

    # probes first: FastAPI matches routes in order, and /healthz is hit often and should be
    # cheap (it was matched after every page and API route)
    app.include_router(operations.router)
    app.include_router(api_login_requests.router)
    app.include_router(api_scan.router)
    app.include_router(api_scan.link_router)
    if not services.embedded:
        app.include_router(api_auth.router)
        app.include_router(api_sessions.router)
        app.include_router(api_totp.router)
        app.include_router(api_passkeys.router)
        app.include_router(pages.router)
    if services.oauth is not None:  # the OpenID Provider: standalone only
        app.include_router(oauth_api.router)
        app.include_router(oauth_pages.router)
    app.include_router(pages.handshake_router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # the hot endpoints of a sign-in, served from their own routes without FastAPI's
    # per-request layers (web/lean.py); inside Edge, so they get its headers and log line
    hot = hot_routes(
        [
            *operations.router.routes,
            *api_login_requests.router.routes,
            *api_scan.router.routes,
            *api_scan.link_router.routes,
        ]
    )
    if services.oauth is not None:  # RFC 8628 creation and token polls, standalone only
        hot += hot_routes(oauth_api.router.routes)
    app.add_middleware(Lean, routes=hot)
    app.add_middleware(Edge, https=settings.https, metrics=services.metrics)
    return app
