"""Requester API: create, read (long-poll), events (SSE), exchange, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from qrlogin.core.errors import InvalidRequest
from qrlogin.handshake.watch import changes
from qrlogin.store.records import LoginRequest
from qrlogin.web import deps, qr
from qrlogin.web.events_asgi import requester_stream
from qrlogin.web.lean import hot
from qrlogin.web.responses import (
    CSRF,
    INVALID_REQUEST,
    INVALID_SECRET,
    RATE_LIMITED,
    event_stream,
    merge,
    refusal,
)
from qrlogin.web.schemas import (
    CreatedLoginRequest,
    CreateLoginRequest,
    ExchangeBody,
    LoginRequestState,
    SessionOut,
)
from qrlogin.web.security import (
    BROWSER_HEADER,
    require_browser_header,
)
from qrlogin.web.sessions import session_response

QR_MASK = 4  # qr.svg draws with this mask pattern (0-7) rather than trying all eight

router = APIRouter(prefix="/api/v1/login-requests", tags=["requester"])
READ = INVALID_SECRET
WRITE = merge(INVALID_SECRET, CSRF)  # a cookie-bound requester must send our header


def _is_browser(request: Request) -> bool:
    return request.headers.get(BROWSER_HEADER) == "browser"


async def _requester(request: Request, request_id: str) -> LoginRequest:
    return await deps.services(request).login_requests.for_requester(
        request_id, deps.requester_secret(request)
    )


def _cookie_write_check(request: Request) -> None:
    if deps.bearer(request) is None:
        require_browser_header(request)


@router.post(
    "",
    status_code=201,
    response_model=CreatedLoginRequest,
    responses=merge(refusal(400, INVALID_REQUEST), RATE_LIMITED),
)
@hot
async def create_login_request(
    request: Request, response: Response, body: CreateLoginRequest | None = None
) -> CreatedLoginRequest:
    """Start a login request. Browser pages (header ``Qrlogin-Client: browser``) get the
    secret as an HttpOnly cookie instead of in the body. An empty body or ``null`` is ``{}``."""
    svc = deps.services(request)
    if body is None and (await request.body()).strip() not in (b"", b"null"):
        raise InvalidRequest("The body must be a JSON object such as {}, or empty.")
    name = body.device_name if body else None
    created = await svc.login_requests.create(deps.device_of(request, name))
    view = svc.login_requests.requester_view(created.request)
    if _is_browser(request):
        deps.set_cookie(
            request,
            response,
            deps.cookie_names(request).requester,
            created.secret,
            max_age=int(svc.policy.request_lifetime),
            samesite="strict",
        )
        return CreatedLoginRequest(**dict(view), secret=None)
    return CreatedLoginRequest(**dict(view), secret=created.secret)


@router.get("/{request_id}", response_model=LoginRequestState, responses=READ)
async def get_login_request(
    request_id: str,
    request: Request,
    version: int | None = Query(None, description="Long-poll: wait until the version differs."),
    wait: float = Query(0, ge=0, description="Long-poll: seconds to wait, at most 60."),
) -> LoginRequestState:
    svc = deps.services(request)
    rec = await _requester(request, request_id)
    lr = svc.login_requests
    if version is not None and wait > 0 and rec.version == version:
        if not rec.status_at(svc.clock.now()).terminal:
            until = svc.clock.now() + min(wait, svc.policy.long_poll_max)
            async for changed in changes(lr, rec, heartbeat=svc.policy.heartbeat, until=until):
                if changed is not None:
                    rec = changed
                    break
    return lr.requester_view(rec)


@router.get(
    "/{request_id}/events",
    responses=merge(READ, event_stream({"state": LoginRequestState})),
    response_class=StreamingResponse,
)
async def login_request_events(request_id: str, request: Request) -> Response:
    """Server-Sent Events: ``event: state`` now and at every change; a heartbeat comment at
    least every 15 s. The stream ends after a final state.

    A GET here is served ahead of FastAPI by ``events_asgi.RequesterEvents``; this route
    documents it and answers when the app is called without that handler in front."""
    return requester_stream(deps.services(request), await _requester(request, request_id))


@router.post(
    "/{request_id}/session",
    response_model=SessionOut,
    responses=merge(
        refusal(400, "confirm_code_required, or invalid_code: a wrong confirm code"),
        WRITE,
        refusal(403, "access_denied: denied, cancelled or burned by wrong codes"),
        refusal(409, "authorization_pending or already_used"),
        refusal(410, "expired_token"),
    ),
)
@hot
async def exchange_login_request(
    request_id: str, request: Request, body: ExchangeBody | None = None
) -> Response:
    """Exchange an approved request for a **new** session. Single use."""
    svc = deps.services(request)
    rec = await _requester(request, request_id)
    _cookie_write_check(request)
    browser = deps.bearer(request) is None
    issued = await svc.login_requests.exchange(
        rec,
        body.confirm_code if body else None,
        deps.device_of(request, rec.device_name),
        api=not browser,
    )
    response = session_response(issued, svc.clock.now())
    if browser:
        deps.clear_cookie(request, response, deps.cookie_names(request).requester)
    return response


@router.delete("/{request_id}", response_model=LoginRequestState, responses=WRITE)
async def cancel_login_request(request_id: str, request: Request) -> LoginRequestState:
    svc = deps.services(request)
    rec = await _requester(request, request_id)
    _cookie_write_check(request)
    cancelled = await svc.login_requests.cancel(rec, deps.device_of(request))
    return svc.login_requests.requester_view(cancelled)


@router.get(
    "/{request_id}/qr.svg",
    response_class=Response,
    responses={**READ, 200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
)
async def qr_svg(request_id: str, request: Request) -> Response:
    """The current QR as SVG, for the requester only (it holds the live handle)."""
    svc = deps.services(request)
    url = svc.login_requests.qr_url(await _requester(request, request_id))
    # a fixed mask: segno scores all eight otherwise, 4.2 of the 5.3 ms of this call (issue
    # 15); any mask gives a valid code
    drawn = qr.svg(url, error="q", scale=6, title=url, mask=QR_MASK)
    return Response(drawn, media_type="image/svg+xml")
