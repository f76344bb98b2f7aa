"""The ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qrlogin import __version__
from qrlogin.config import Settings
from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidRequest, NotFound, QrLoginError, ServiceUnavailable
from qrlogin.core.policy import Policy
from qrlogin.logs import redact_path
from qrlogin.services import Services, build_services
from qrlogin.store.migrate import upgrade
from qrlogin.web import api_auth, api_login_requests, api_scan, api_sessions, operations, pages
from qrlogin.web.middleware import RequestLog
from qrlogin.web.security import CookieNames, SecurityHeaders

log = logging.getLogger("qrlogin.web")
STATIC = Path(__file__).with_name("static")


def wants_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def error_response(exc: QrLoginError) -> JSONResponse:
    headers = {"retry-after": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


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


def create_app(
    settings: Settings, *, clock: Clock | None = None, policy: Policy | None = None
) -> FastAPI:
    """A complete qrlogin app. Its lifespan migrates the database and starts the event bus."""
    services = build_services(settings, clock=clock, policy=policy)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the writer: transactional on PostgreSQL (reads run in autocommit, where the
        # migration advisory lock would be released at once)
        await upgrade(services.store.writer)
        await services.bus.start()
        gc = asyncio.create_task(_housekeeping(services))
        try:
            yield
        finally:
            gc.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gc
            await services.sessions.drain()
            await services.bus.stop()
            await services.store.close()

    app = FastAPI(
        title="qrlogin",
        version=__version__,
        summary="Sign in on a new device by scanning a QR code with a signed-in device.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.cookie_names = CookieNames.for_https(settings.https)

    @app.exception_handler(QrLoginError)
    async def _qrlogin_error(request: Request, exc: QrLoginError) -> Response:
        if wants_page(request):  # a person at a form, not an API client: show a page
            response = pages.message(request, "That did not work", exc.message, exc.status)
            if exc.retry_after is not None:
                response.headers["retry-after"] = str(exc.retry_after)
            return response
        return error_response(exc)

    @app.exception_handler(SQLAlchemyError)
    async def _database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        services.metrics.database_errors.inc()
        log.error(
            "database error on %s %s: %s",
            request.method,
            redact_path(request.url.path),
            exc.__class__.__name__,
        )
        return error_response(ServiceUnavailable())

    @app.exception_handler(OSError)
    async def _unreachable(request: Request, exc: OSError) -> JSONResponse:
        # a connection that could not even be made (refused, timed out): the database driver's
        # (SQLAlchemy passes those on unwrapped) or the mail server's; a 503 either way
        mail = type(exc).__module__.startswith("aiosmtplib")
        if not mail:
            services.metrics.database_errors.inc()
        log.error(
            "%s unreachable on %s %s: %s",
            "mail server" if mail else "database",
            request.method,
            redact_path(request.url.path),
            exc.__class__.__name__,
        )
        return error_response(ServiceUnavailable())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: "
            f"{err.get('msg', 'invalid')}"
            for err in exc.errors()[:5]
        )
        return error_response(InvalidRequest(f"The request is malformed: {problems}."))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound())
        if exc.status_code == 400:  # e.g. a body FastAPI cannot even decode (not UTF-8)
            return error_response(InvalidRequest(f"The request is malformed: {exc.detail}."))
        body = {"error": "http_error", "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, redact_path(request.url.path))
        return error_response(QrLoginError())

    app.include_router(api_login_requests.router)
    app.include_router(api_scan.router)
    app.include_router(api_scan.link_router)
    app.include_router(api_auth.router)
    app.include_router(api_sessions.router)
    app.include_router(pages.router)
    app.include_router(operations.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestLog)
    return app
