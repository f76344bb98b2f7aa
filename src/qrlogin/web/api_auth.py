"""First-device sign-in by email, and the signed-in user's own session."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from qrlogin.core.errors import AuthorizationPending
from qrlogin.core.redirects import safe_redirect_path
from qrlogin.web import deps
from qrlogin.web.responses import CSRF, INVALID_REQUEST, NOT_SIGNED_IN, RATE_LIMITED, merge, refusal
from qrlogin.web.schemas import (
    Accepted,
    EmailStart,
    EmailVerify,
    MeOut,
    SessionOut,
    UserOut,
)
from qrlogin.web.security import BROWSER_HEADER, require_browser_header
from qrlogin.web.sessions import session_response

router = APIRouter(prefix="/api/v1", tags=["account"])
SECOND_FACTOR = refusal(
    401,
    "second_factor_required: the email step is done; finish with POST "
    "/api/v1/auth/second-factor (or a passkey) and the mfa_token",
)


def _browser(request: Request) -> bool:
    return request.headers.get(BROWSER_HEADER) == "browser"


@router.post(
    "/auth/email/start",
    status_code=202,
    response_model=Accepted,
    responses=merge(refusal(400, INVALID_REQUEST), RATE_LIMITED),
)
async def email_start(body: EmailStart, request: Request, response: Response) -> Accepted:
    """Send a 6-digit code and a link. Always 202, whether or not the account exists. The
    code works only where it was asked for: in the browser whose ``qrl_browser`` cookie came
    with this call, or, without one, from this IP. A caller without the cookie gets it."""
    svc = deps.services(request)
    await svc.email_logins.start(
        body.email,
        deps.device_of(request),
        deps.browser_token(request),
        safe_redirect_path(body.next),
    )
    deps.ensure_browser_cookie(request, response)
    return Accepted(message="If the address can receive mail, a code is on its way.")


@router.post(
    "/auth/email/verify",
    response_model=SessionOut,
    responses=merge(
        refusal(400, "invalid_code: one reply for every wrong code"), SECOND_FACTOR, RATE_LIMITED
    ),
)
async def email_verify(body: EmailVerify, request: Request) -> Response:
    svc = deps.services(request)
    browser = _browser(request)
    issued = await svc.email_logins.verify_code(
        body.email,
        body.code,
        deps.device_of(request),
        deps.browser_token(request),
        api=not browser,
    )
    return session_response(issued, svc.clock.now())


@router.post(
    "/auth/email/pickup",
    response_model=SessionOut,
    responses=merge(
        CSRF,
        SECOND_FACTOR,
        refusal(409, "authorization_pending: the link was not confirmed elsewhere yet"),
    ),
)
async def email_pickup(request: Request) -> Response:
    """The browser that asked collects a sign-in confirmed by link on another device."""
    svc = deps.services(request)
    require_browser_header(request)
    issued = await svc.email_logins.pick_up(
        request.cookies.get(deps.cookie_names(request).browser), deps.device_of(request)
    )
    if issued is None:
        raise AuthorizationPending(
            "Not confirmed yet. Open the link in the mail, or type the code."
        )
    return session_response(issued, svc.clock.now())


@router.get("/me", response_model=MeOut, responses=NOT_SIGNED_IN)
async def me(request: Request) -> MeOut:
    auth = await deps.require_session(request)
    user = UserOut(id=auth.user.id, display_name=auth.user.display_name, email=auth.user.email)
    return MeOut(user=user, session_id=auth.session.id, expires_at=auth.session.expires_at)


@router.post("/logout", status_code=204, responses=merge(NOT_SIGNED_IN, CSRF))
async def logout(request: Request) -> Response:
    auth = await deps.require_session(request)
    if deps.used_cookie_session(request):
        require_browser_header(request)
    await deps.services(request).sessions.revoke(
        auth.session, "signed_out", deps.device_of(request)
    )
    response = Response(status_code=204)
    deps.clear_cookie(request, response, deps.cookie_names(request).session)
    return response
