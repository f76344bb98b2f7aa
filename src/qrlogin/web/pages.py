"""Server-rendered pages. Forms post back here with a CSRF token; small scripts enhance them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from qrlogin.core.codes import display_user_code
from qrlogin.core.errors import (
    InvalidCode,
    InvalidHandle,
    InvalidMfaToken,
    QrLoginError,
    SecondFactorRequired,
    StepUpRequired,
)
from qrlogin.core.redirects import safe_redirect_path
from qrlogin.core.tokens import sha256_hex
from qrlogin.core.useragent import describe
from qrlogin.handshake.service import ApproverView
from qrlogin.identity.ports import StartedSession
from qrlogin.sessions.service import describe_amr
from qrlogin.web import api_sessions, api_totp, deps
from qrlogin.web.api_scan import scan_body
from qrlogin.web.schemas import ActivityEntry
from qrlogin.web.security import check_csrf, csrf_token, new_csrf_cookie
from qrlogin.web.sessions import set_session_cookie

router = APIRouter(include_in_schema=False)  # the built-in accounts' pages
# the handshake's pages: served in embedded mode too, under the host's prefix
handshake_router = APIRouter(include_in_schema=False)
HOLD_PATH = "/q/continue"  # where a phone that signed in to approve comes back to
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
templates.env.filters["isotime"] = lambda ts: datetime.fromtimestamp(float(ts), UTC).strftime(
    "%Y-%m-%d %H:%M UTC"
)
# a <time> element's datetime attribute (ISO 8601); the page's script shows it in the
# browser's locale, the text above is what shows without it
templates.env.filters["isodatetime"] = lambda ts: datetime.fromtimestamp(float(ts), UTC).strftime(
    "%Y-%m-%dT%H:%M:%SZ"
)


def ago(seconds: int) -> str:
    """ "1 second ago", "25 seconds ago", "1 min ago", "4 min ago"."""
    if seconds < 60:
        return f"{seconds} second{'' if seconds == 1 else 's'} ago"
    return f"{seconds // 60} min ago"


templates.env.filters["ago"] = ago


def linkify(text: str, origin: str) -> Markup:
    """Mail text for the dev outbox: escaped, with this site's own links clickable."""
    parts = re.split(r"(\s+)", text)
    return Markup("").join(
        Markup('<a href="{0}">{0}</a>').format(p) if p.startswith(f"{origin}/") else escape(p)
        for p in parts
    )


templates.env.filters["linkify"] = linkify
templates.env.globals["linked_by_text"] = {
    "email": "by email",
    "qr": "by scanning a QR code",
    "user_code": "by typing a code",
    "oauth": "by signing in to an app",
    "passkey": "with a passkey",
}
templates.env.globals["describe_amr"] = describe_amr
templates.env.globals["factor_names"] = {
    "passkey": "passkey",
    "totp": "authenticator app",
    "otp": "authenticator app",
    "recovery": "recovery code",
    "recovery_codes": "recovery codes",
}
templates.env.globals["events"] = {
    "request.created": "Sign-in requested",
    "request.scanned": "QR code scanned",
    "request.approved": "Sign-in approved",
    "request.denied": "Sign-in denied",
    "request.cancelled": "Sign-in cancelled",
    "request.expired": "Sign-in request expired",
    "request.consumed": "Device signed in",
    "code.failed": "Wrong code entered",
    "account.locked": "Account locked after wrong codes",
    "session.created": "New session",
    "session.revoked": "Device signed out",
    "factor.added": "Sign-in method added",
    "factor.removed": "Sign-in method removed",
    "factor.renamed": "Passkey renamed",
    "factor.verified": "Identity confirmed with a second factor",
    "factor.failed": "Wrong second-factor code",
    "factor.locked": "Second factor locked after wrong codes",
    "factor.required": "Second factor required",
    "factor.optional": "Second factor no longer required",
}


def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render with the CSRF token, the site name and the signed-in user, and make sure the
    browser has its CSRF and browser-binding cookies."""
    svc = deps.services(request)
    names = deps.cookie_names(request)
    csrf_cookie = request.cookies.get(names.csrf)
    new_cookie = csrf_cookie is None
    csrf_cookie = csrf_cookie or new_csrf_cookie()
    auth = getattr(request.state, "auth", None)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "site_name": svc.settings.site_name,
            "csrf": csrf_token(svc.key, csrf_cookie),
            "user": auth.user if auth else None,
            "dev": svc.settings.dev,
            "public_url": svc.settings.public_url,
            "base": svc.settings.base_path,  # every link in a page starts with it
            **ctx,
        },
        status_code=status_code,
    )
    if new_cookie:
        deps.set_cookie(request, response, names.csrf, csrf_cookie, max_age=None, samesite="strict")
    deps.ensure_browser_cookie(request, response)
    return response


async def form_with_csrf(request: Request) -> dict[str, str]:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    svc = deps.services(request)
    check_csrf(svc.key, request.cookies.get(deps.cookie_names(request).csrf), values.get("csrf"))
    return values


def message(request: Request, title: str, text: str, status_code: int = 200) -> HTMLResponse:
    return render(request, "message.html", status_code, title=title, text=text)


def signed_in_redirect(started: StartedSession, to: str, request: Request) -> Response:
    """On to ``to`` with the new session's cookie. On the way back to an app's sign-in (the
    OpenID Provider's authorization endpoint), a page that moves on by itself instead: it
    ends in a redirect to the app, which the sign-in form's ``form-action 'self'`` would
    block if it were still the same navigation."""
    response: Response
    if to.startswith(f"{_base(request)}/oauth/"):
        response = render(request, "continue.html", to=to)
    else:
        response = RedirectResponse(to, status_code=303)
    set_session_cookie(response, started)
    return response


@router.get("/")
async def home(request: Request) -> Response:
    auth = await deps.current_session(request)
    base = deps.services(request).settings.base_path
    return RedirectResponse(f"{base}/account" if auth else f"{base}/login", status_code=303)


# -- requester ----------------------------------------------------------------------------


@router.get("/login")
async def login_page(
    request: Request, next: str | None = None, reauth: int = 0, login_hint: str | None = None
) -> Response:
    """The QR sign-in page. ``next``: where to go once signed in (a same-origin path, e.g.
    back to the OpenID Provider's authorization); ``reauth``: show the QR even to a browser
    that is signed in (an app asked for a fresh sign-in: ``prompt=login``, ``max_age``)."""
    svc = deps.services(request)
    public_url = svc.settings.public_url
    nxt = safe_redirect_path(next) or ""
    if await deps.current_session(request) is not None and not reauth:
        if nxt:  # already signed in: on to where signing in would have led
            return RedirectResponse(nxt, status_code=303)
        return render(request, "signed_in.html", link_url=f"{public_url}/link")
    return render(
        request,
        "login.html",
        link_url=f"{public_url}/link",
        next=nxt,
        app_name=await _app_name(request, nxt),
        email=(login_hint or "")[:320] if login_hint and "@" in login_hint else "",
    )


async def _app_name(request: Request, nxt: str) -> str | None:
    """The registered app a sign-in on its way to the authorization endpoint is for."""
    oauth = deps.services(request).oauth
    base = deps.services(request).settings.base_path
    if oauth is None or not nxt.startswith(f"{base}/oauth/authorize?"):
        return None
    client_id = parse_qs(urlsplit(nxt).query).get("client_id", [""])[0]
    client = await oauth.store.get_client(client_id) if client_id else None
    return client.name if client else None


# -- approver ------------------------------------------------------------------------------


def _signin_redirect(request: Request, path: str) -> Response:
    """To the sign-in page, and back to ``path`` (under qrlogin's base path) afterwards: the
    built-in ``/signin``, or in embedded mode the host's (``signin_url``)."""
    settings = deps.services(request).settings
    back = quote(f"{settings.base_path}{path}", safe="/")
    if settings.signin_url:
        return RedirectResponse(settings.signin_url.replace("{next}", back), status_code=303)
    return RedirectResponse(f"{settings.base_path}/signin?next={back}", status_code=303)


async def _device_grant(request: Request, view: ApproverView) -> tuple[str | None, str | None]:
    """For a device grant's request (RFC 8628): the registered app's name and the user code
    the device shows, for the person to compare (§5.4)."""
    svc = deps.services(request)
    client_id = view.request.client_id
    if client_id is None or svc.oauth is None:
        return None, None
    client = await svc.oauth.store.get_client(client_id)
    user_code = display_user_code(svc.login_requests.user_code(view.request))
    return (client.name if client else "An app"), user_code


async def _approval(
    request: Request,
    view: ApproverView,
    *,
    step_up: list[str] | None = None,
    step_up_error: str | None = None,
) -> Response:
    body = scan_body(request, view)
    app_name, user_code = await _device_grant(request, view)
    return render(
        request,
        "approve.html",
        403 if step_up else 200,
        step_up=step_up,
        step_up_error=step_up_error,
        handle=body.handle,
        req=body.request,
        status=body.status,
        reason=view.request.reason,
        confirm_code=body.confirm_code,
        app_name=app_name,
        user_code=user_code,
        # the Done button: the account here, the host's start page when embedded
        done_url="/" if deps.services(request).embedded else f"{_base(request)}/account",
    )


def _base(request: Request) -> str:
    return deps.services(request).settings.base_path


def _after_decision(request: Request, view: ApproverView) -> Response:
    """Redirect after POST: Back and reload then show the approval page, not a resubmit."""
    base = deps.services(request).settings.base_path
    return RedirectResponse(f"{base}/q/{view.handle}", status_code=303)


async def _step_up_here(request: Request, code: str) -> None:
    """The approval page's own step-up: a TOTP (or recovery) code typed with Approve."""
    auth = await deps.require_session(request)
    await deps.services(request).factors.verify_code(
        auth.user, auth.session.id, code, deps.device_of(request)
    )


async def _approval_page(
    request: Request, handle: str, action: str | None = None, step_up_code: str | None = None
) -> Response:
    approver = await deps.require_approver(request)
    lr = deps.services(request).login_requests
    try:
        if action == "approve":
            try:
                if step_up_code and not deps.services(request).embedded:
                    await _step_up_here(request, step_up_code)
                return _after_decision(request, await lr.approve(handle, approver))
            except (StepUpRequired, InvalidCode) as exc:
                methods = exc.methods if isinstance(exc, StepUpRequired) else None
                if methods is None:
                    auth = await deps.require_session(request)
                    methods = await deps.services(request).factors.step_up_methods(auth.user.id)
                error = None if isinstance(exc, StepUpRequired) else exc.message
                view = await lr.for_approver(handle, approver)
                return await _approval(request, view, step_up=methods, step_up_error=error)
        if action == "deny":
            return _after_decision(request, await lr.deny(handle, approver))
        try:
            view = await lr.scan(handle, approver)
        except InvalidHandle:  # ended: its approver still sees how (signed in, cancelled…)
            view = await lr.for_approver(handle, approver)
    except InvalidHandle as exc:
        return message(request, "This code cannot be used", exc.message, 404)
    return await _approval(request, view)


@handshake_router.get("/link")
async def link_page(request: Request, user_code: str | None = None) -> Response:
    """Where an approver types the code a camera-less device shows. With ``user_code``
    (RFC 8628's ``verification_uri_complete``) it opens that request's approval page at
    once, as scanning its QR code would; the approval still needs a tap."""
    if await deps.signed_in_approver(request) is None:
        back = f"/link?user_code={quote(user_code[:20], safe='')}" if user_code else "/link"
        return _signin_redirect(request, back)
    if not user_code:
        return render(request, "link.html", code="")
    approver = await deps.require_approver(request)
    try:
        view = await deps.services(request).login_requests.link(user_code, approver)
    except QrLoginError as exc:
        status = exc.status if exc.status in (400, 429) else 400
        return render(request, "link.html", status, code=user_code[:20], error=exc.message)
    return _after_decision(request, view)


@handshake_router.post("/link")
async def link_form(request: Request) -> Response:
    form = await form_with_csrf(request)
    if await deps.signed_in_approver(request) is None:
        return _signin_redirect(request, "/link")
    approver = await deps.require_approver(request)
    code = form.get("user_code", "")
    try:
        view = await deps.services(request).login_requests.link(code, approver)
    except QrLoginError as exc:
        status = exc.status if exc.status in (400, 429) else 400
        response = render(request, "link.html", status, code=code, error=exc.message)
        if exc.retry_after is not None:
            response.headers["retry-after"] = str(exc.retry_after)
        return response
    return _after_decision(request, view)


@handshake_router.get(HOLD_PATH)  # ahead of /q/{handle}; no handle is this short
async def resume_page(request: Request) -> Response:
    """Where a phone that had to sign in first comes back to: its hold cookie (not the QR's
    handle, long rotated away) leads to the approval page."""
    if await deps.signed_in_approver(request) is None:
        return _signin_redirect(request, HOLD_PATH)
    approver = await deps.require_approver(request)
    svc = deps.services(request)
    names = deps.cookie_names(request)
    response: Response
    try:
        view = await svc.login_requests.resume(request.cookies.get(names.hold), approver)
    except InvalidHandle:
        response = message(
            request,
            "This sign-in is no longer waiting",
            "It was finished, cancelled or has expired on the other device, or another phone "
            "picked it up. Show a new code there and scan it again.",
            404,
        )
    else:
        response = RedirectResponse(f"{svc.settings.base_path}/q/{view.handle}", status_code=303)
    deps.clear_cookie(request, response, names.hold)
    return response


@handshake_router.get("/q/{handle}")
async def approve_page(handle: str, request: Request) -> Response:
    if await deps.signed_in_approver(request) is None:
        return await _hold_and_sign_in(request, handle)
    return await _approval_page(request, handle)


async def _hold_and_sign_in(request: Request, handle: str) -> Response:
    """A phone not signed in opened the QR: hold the request for this browser (a cookie
    for at most a request's lifetime) and send it to sign in, then to ``HOLD_PATH``. The
    same reply for every handle, live or not (``ApproverFlows.hold``)."""
    lr = deps.services(request).login_requests
    token = await lr.hold(handle)
    response = _signin_redirect(request, HOLD_PATH)
    lifetime = int(lr.policy.request_lifetime)
    deps.set_cookie(request, response, deps.cookie_names(request).hold, token, max_age=lifetime)
    return response


async def held_device(request: Request) -> str | None:
    """The kind of device ("Chrome on Linux") whose sign-in this browser holds while it
    signs in, if it holds a live one."""
    token = request.cookies.get(deps.cookie_names(request).hold)
    rec = await deps.services(request).login_requests.held(token) if token else None
    return " on ".join(describe(rec.user_agent)) if rec else None


@handshake_router.post("/q/{handle}/{action}")
async def approve_form(handle: str, action: str, request: Request) -> Response:
    form = await form_with_csrf(request)
    if action not in ("approve", "deny"):
        return message(request, "Not found", "Nothing here. Check the address.", 404)
    if await deps.signed_in_approver(request) is None:
        return _signin_redirect(request, f"/q/{handle}")
    code = form.get("step_up_code", "").strip()[:40] or None
    return await _approval_page(request, handle, action, step_up_code=code)


# -- first device: email -------------------------------------------------------------------


async def _signin_reason(request: Request, nxt: str) -> str | None:
    """Why this browser is asked to sign in, when it is on its way to approve a sign-in."""
    return await held_device(request) if nxt == HOLD_PATH else None


async def _signed_out_notice(request: Request) -> str | None:
    """What ended this browser's session, if its cookie still names a revoked one: who
    signed it out from where (the activity log's ``session.revoked`` row)."""
    token = request.cookies.get(deps.cookie_names(request).session)
    svc = deps.services(request)
    session = await svc.store.session_by_token_hash(sha256_hex(token)) if token else None
    if session is None or session.revoked_at is None:
        return None
    if session.revoked_reason == "revoked_by_user":
        for entry in await svc.store.activity(session.user_id):
            if entry.event == "session.revoked" and entry.session_id == session.id:
                browser, system = describe(entry.user_agent)
                return f"You were signed out from {browser} on {system}."
    return "You were signed out on this device. Sign in again to continue."


@router.get("/signin")
async def signin_page(
    request: Request, next: str | None = None, login_hint: str | None = None
) -> Response:
    nxt = safe_redirect_path(next) or ""
    if await deps.current_session(request) is not None:
        if nxt:  # already signed in: on to where signing in would have led
            return RedirectResponse(nxt, status_code=303)
        public_url = deps.services(request).settings.public_url
        return render(request, "signed_in.html", link_url=f"{public_url}/link")
    notice = await _signed_out_notice(request)
    response = render(
        request,
        "signin.html",
        next=nxt,
        # an app's login_hint (OpenID Connect) prefills the address, nothing more
        email=(login_hint or "")[:320] if login_hint and "@" in login_hint else "",
        step="email",
        approving=await _signin_reason(request, nxt),
        signed_out=notice,
    )
    if notice is not None:  # said once: the cookie of an ended session is of no more use
        deps.clear_cookie(request, response, deps.cookie_names(request).session)
    return response


@router.post("/signin")
async def signin_start(request: Request) -> Response:
    form = await form_with_csrf(request)
    svc = deps.services(request)
    nxt = safe_redirect_path(form.get("next")) or ""
    email = form.get("email", "")
    try:
        await svc.email_logins.start(
            email,
            deps.device_of(request),
            request.cookies.get(deps.cookie_names(request).browser),
            nxt or None,
        )
    except QrLoginError as exc:
        return render(
            request, "signin.html", 400, next=nxt, email=email, step="email", error=exc.message
        )
    return render(
        request,
        "signin.html",
        next=nxt,
        email=email,
        step="code",
        approving=await _signin_reason(request, nxt),
    )


@router.post("/signin/code")
async def signin_code(request: Request) -> Response:
    form = await form_with_csrf(request)
    svc = deps.services(request)
    nxt = safe_redirect_path(form.get("next")) or "/account"
    email = form.get("email", "")
    try:
        issued = await svc.email_logins.verify_code(
            email,
            form.get("code", ""),
            deps.device_of(request),
            deps.browser_token(request),
        )
    except SecondFactorRequired as stop:
        return second_factor_step(request, stop, nxt)
    except QrLoginError as exc:
        return render(
            request, "signin.html", 400, next=nxt, email=email, step="code", error=exc.message
        )
    return signed_in_redirect(issued, nxt, request)


def second_factor_step(
    request: Request,
    stop: SecondFactorRequired,
    nxt: str,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    """The email step is done; the page asks for the account's second factor (the mfa
    token rides in the form, never in a URL)."""
    return render(
        request,
        "signin.html",
        status_code,
        next=nxt,
        step="second_factor",
        mfa_token=stop.mfa_token,
        methods=stop.methods,
        error=error,
    )


@router.post("/signin/second-factor")
async def signin_second_factor(request: Request) -> Response:
    """The second-factor step's form: with ``code``, finish the sign-in; without, show the
    step (``signin.js`` comes here when a sign-in picked up from a link needs it)."""
    form = await form_with_csrf(request)
    svc = deps.services(request)
    nxt = safe_redirect_path(form.get("next")) or ""
    token = form.get("mfa_token", "")
    bound_to = deps.bound_to(request)
    try:
        pending = await svc.factors.pending(token, bound_to)
        stop = SecondFactorRequired(token, await svc.factors.methods(pending.user.id))
        if "code" not in form:
            return second_factor_step(request, stop, nxt)
        started, pending = await svc.factors.finish_with_code(
            token, bound_to, form["code"], deps.device_of(request)
        )
    except InvalidMfaToken as exc:
        return render(
            request, "signin.html", 400, next=nxt, email="", step="email", error=exc.message
        )
    except InvalidCode as exc:
        return second_factor_step(request, stop, nxt, 400, exc.message)
    to = nxt or safe_redirect_path(pending.next) or "/account"
    return signed_in_redirect(started, to, request)


@router.get("/auth/email/{token}")
async def email_link_page(token: str, request: Request) -> Response:
    """Shows a confirm button and changes nothing: mail scanners fetch links."""
    svc = deps.services(request)
    browser_token = request.cookies.get(deps.cookie_names(request).browser)
    info = await svc.email_logins.link(token, browser_token)
    if info is None:
        return message(
            request,
            "This link cannot be used",
            "It has expired or was already used. Ask for a new one on the sign-in page.",
            404,
        )
    browser, system = describe(info.login.user_agent)
    return render(
        request,
        "email_link.html",
        token=token,
        email=info.login.email,
        same_browser=info.same_browser,
        asked_from=f"{browser} on {system}",
        asked_ip=info.login.ip,
    )


@router.post("/auth/email/{token}")
async def email_link_confirm(token: str, request: Request) -> Response:
    await form_with_csrf(request)
    svc = deps.services(request)
    try:
        issued, info = await svc.email_logins.confirm_link(
            token, request.cookies.get(deps.cookie_names(request).browser), deps.device_of(request)
        )
    except SecondFactorRequired as stop:  # the browser that asked: on to its second factor
        return second_factor_step(request, stop, "")
    if issued is not None and info is not None:
        return signed_in_redirect(
            issued, safe_redirect_path(info.login.next) or "/account", request
        )
    if info is not None:
        return message(
            request,
            "Confirmed",
            "You are now signed in on the browser where you asked for this link. "
            "You can close this tab.",
        )
    return message(
        request,
        "This link cannot be used",
        "It has expired or was already used. Ask for a new one on the sign-in page.",
        404,
    )


# -- signed in -----------------------------------------------------------------------------


@router.get("/account")
async def account_page(request: Request) -> Response:
    auth = await deps.current_session(request)
    if auth is None:
        return _signin_redirect(request, "/account")
    activity = one_row_per_sign_in(await api_sessions.activity_of(request, auth.user.id))[:15]
    factors = await api_totp.factors_of(request, auth)
    return render(request, "account.html", session=auth.session, activity=activity, factors=factors)


def one_row_per_sign_in(activity: list[ActivityEntry]) -> list[ActivityEntry]:
    """A QR or code sign-in writes "request.consumed" and "session.created" for one event:
    the account page lists it once, as the former."""
    consumed = {a.request_id for a in activity if a.event == "request.consumed"}
    return [a for a in activity if not (a.event == "session.created" and a.request_id in consumed)]


@router.get("/account/devices")
async def devices_page(request: Request, signed_out: int | None = None) -> Response:
    if await deps.current_session(request) is None:
        return _signin_redirect(request, "/account/devices")
    devices = await api_sessions.list_sessions(request)
    return render(request, "devices.html", devices=devices, signed_out=signed_out)


@router.get("/account/devices/revoke-others")
async def revoke_others_confirm(request: Request) -> Response:
    """Asks first: signing every other device out cannot be undone."""
    if await deps.current_session(request) is None:
        return _signin_redirect(request, "/account/devices/revoke-others")
    others = [d for d in await api_sessions.list_sessions(request) if not d.current]
    if not others:
        return RedirectResponse(f"{_base(request)}/account/devices", status_code=303)
    return render(request, "revoke_others.html", devices=others)


@router.post("/account/devices/revoke-others")
async def revoke_others_form(request: Request) -> Response:
    await form_with_csrf(request)
    if await deps.current_session(request) is None:
        return _signin_redirect(request, "/account/devices")
    count = await api_sessions.revoke_others_of(request)
    return RedirectResponse(f"{_base(request)}/account/devices?signed_out={count}", status_code=303)


@router.post("/account/devices/{session_id}/revoke")
async def revoke_form(session_id: str, request: Request) -> Response:
    await form_with_csrf(request)
    if await deps.current_session(request) is None:
        return _signin_redirect(request, "/account/devices")
    try:
        await api_sessions.revoke_one(request, session_id)
    except QrLoginError as exc:
        return message(request, "Not found", exc.message, exc.status)
    return RedirectResponse(f"{_base(request)}/account/devices?signed_out=1", status_code=303)


@router.post("/logout")
async def logout_form(request: Request) -> Response:
    await form_with_csrf(request)
    auth = await deps.current_session(request)
    if auth is not None:
        await deps.services(request).sessions.revoke(
            auth.session, "signed_out", deps.device_of(request)
        )
    response = RedirectResponse("/signin", status_code=303)
    deps.clear_cookie(request, response, deps.cookie_names(request).session)
    return response


@router.get("/dev/outbox")
async def dev_outbox(request: Request) -> Response:
    svc = deps.services(request)
    if not svc.settings.dev or svc.outbox is None:
        return message(request, "Not found", "Nothing here. Check the address.", 404)
    return render(request, "outbox.html", mails=list(svc.outbox.outbox))
