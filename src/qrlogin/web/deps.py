"""Per-request helpers: the services, the caller's device, its session, the requester secret."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser
from starlette.responses import Response

from qrlogin.accounts.factors import binding
from qrlogin.core.device_names import clean_device_name
from qrlogin.core.errors import NotSignedIn
from qrlogin.core.network import client_ip
from qrlogin.core.useragent import describe
from qrlogin.identity.device import Device
from qrlogin.identity.ports import Approver
from qrlogin.services import Services
from qrlogin.sessions.service import Authenticated
from qrlogin.web import security
from qrlogin.web.security import CookieNames


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def cookie_names(request: Request) -> CookieNames:
    names: CookieNames = request.app.state.cookie_names
    return names


def set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None,
    samesite: str = "lax",
) -> None:
    """One of qrlogin's cookies, on the path qrlogin is served under."""
    https = services(request).settings.https
    path = cookie_names(request).path
    security.set_cookie(
        response, name, value, https=https, max_age=max_age, samesite=samesite, path=path
    )


def browser_token(request: Request) -> str | None:
    """The browser-binding cookie the caller sent, if any."""
    return request.cookies.get(cookie_names(request).browser)


def ensure_browser_cookie(request: Request, response: Response, value: str | None = None) -> None:
    """Give a caller without one the browser-binding cookie (``value``, when the caller
    already bound something to a new one). Email codes are bound to it, and a browser that
    signs in to an address becomes known to it (DESIGN.md requirement 12), so the cookie
    lives as long as that memory."""
    if browser_token(request) is None:
        lifetime = int(services(request).policy.known_browser_lifetime)
        name = cookie_names(request).browser
        value = value or security.new_csrf_cookie()
        set_cookie(request, response, name, value, max_age=lifetime)


def bound_to(request: Request) -> str:
    """What this caller's mfa tokens and passkey challenges are bound to: its browser
    cookie, else its address (``accounts.factors.binding``)."""
    return binding(browser_token(request), services(request).limiter.ip_key(ip_of(request)))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    # keeps Secure: browsers ignore a __Host- cookie's deletion without it
    https = services(request).settings.https
    security.clear_cookie(response, name, https=https, path=cookie_names(request).path)


def ip_of(request: Request) -> str:
    svc = services(request)
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), svc.settings.trusted_proxies)


def device_of(request: Request, name: str | None = None) -> Device:
    """The calling device: the name it gives itself, cleaned (a claim, never shown as fact:
    DESIGN.md requirement 13), else its browser and system; its user agent and IP."""
    ua = request.headers.get("user-agent", "")
    name = clean_device_name(name)
    if not name:
        browser, system = describe(ua)
        name = clean_device_name(f"{browser} on {system}")
    return Device(name=name, user_agent=ua[:500], ip=ip_of(request))


def bearer_in(headers: Headers) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def bearer(request: Request) -> str | None:
    return bearer_in(request.headers)


async def current_session(request: Request) -> Authenticated | None:
    """The caller's session from ``Authorization: Bearer`` or the session cookie."""
    cached: Authenticated | None = getattr(request.state, "auth", None)
    if cached is not None:
        return cached
    token = bearer(request) or request.cookies.get(cookie_names(request).session)
    auth = await services(request).sessions.authenticate(token)
    request.state.auth = auth
    return auth


def used_cookie_session(request: Request) -> bool:
    return bearer(request) is None


async def require_session(request: Request) -> Authenticated:
    auth = await current_session(request)
    if auth is None:
        raise NotSignedIn()
    return auth


async def require_writer(request: Request) -> Authenticated:
    """The signed-in caller of a write: a cookie session must also send our header (a
    cross-site form cannot). As a FastAPI dependency it answers before the body is
    checked: no session, no 400."""
    auth = await require_session(request)
    if used_cookie_session(request):
        security.require_browser_header(request)
    return auth


async def signed_in_approver(request: Request) -> Approver | None:
    """``require_approver``, or ``None`` when nobody is signed in on this request."""
    try:
        return await require_approver(request)
    except NotSignedIn:
        return None


async def require_approver(request: Request) -> Approver:
    """The approver's identity comes only from its own session (requirement 3), as the
    identity port says: the built-in sessions, or the host app's in embedded mode."""
    cached: Approver | None = getattr(request.state, "approver", None)
    if cached is not None:
        return cached
    who = await services(request).login_requests.approvers.signed_in(request)
    if who is None:
        raise NotSignedIn()
    approver = Approver(
        user_id=who.user_id,
        display_name=who.display_name,
        session_id=who.session_id,
        ip=ip_of(request),
        user_agent=request.headers.get("user-agent", "")[:500],
        device_name=who.device_name,
    )
    request.state.approver = approver
    return approver


def requester_secret_in(headers: Headers, cookie_name: str) -> str | None:
    """The requester secret: the bearer token, else the requester cookie. The one parser of
    it, for the routes and for the event stream served ahead of them (``events_asgi``)."""
    token = bearer_in(headers)
    if token is not None:
        return token
    cookies = headers.get("cookie")
    return cookie_parser(cookies).get(cookie_name) if cookies else None


def requester_secret(request: Request) -> str | None:
    return requester_secret_in(request.headers, cookie_names(request).requester)
