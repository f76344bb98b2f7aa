"""Per-request helpers: the services, the caller's device, its session, the requester secret."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

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


def ensure_browser_cookie(request: Request, response: Response) -> None:
    """Give a caller without one the browser-binding cookie. Email codes are bound to it, and
    a browser that signs in to an address becomes known to it (DESIGN.md requirement 12), so
    the cookie lives as long as that memory."""
    if browser_token(request) is None:
        lifetime = int(services(request).policy.known_browser_lifetime)
        name = cookie_names(request).browser
        set_cookie(request, response, name, security.new_csrf_cookie(), max_age=lifetime)


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


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


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


def requester_secret(request: Request) -> str | None:
    return bearer(request) or request.cookies.get(cookie_names(request).requester)
