"""Per-request helpers: the services, the caller's device, its session, the requester secret."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser

from qrlogin.core.errors import NotSignedIn
from qrlogin.core.network import client_ip
from qrlogin.core.useragent import describe
from qrlogin.identity.ports import Approver
from qrlogin.services import Services
from qrlogin.sessions.service import Authenticated, Device
from qrlogin.web.security import CookieNames


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def cookie_names(request: Request) -> CookieNames:
    names: CookieNames = request.app.state.cookie_names
    return names


def ip_of(request: Request) -> str:
    svc = services(request)
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), svc.settings.trusted_proxies)


def device_of(request: Request, name: str | None = None) -> Device:
    ua = request.headers.get("user-agent", "")
    if not name:
        browser, system = describe(ua)
        name = f"{browser} on {system}"
    return Device(name=name.strip()[:100], user_agent=ua[:500], ip=ip_of(request))


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


async def require_approver(request: Request) -> Approver:
    """The approver's identity comes only from its own session (requirement 3)."""
    auth = await require_session(request)
    return Approver(
        user_id=auth.user.id,
        display_name=auth.user.display_name,
        session_id=auth.session.id,
        ip=ip_of(request),
        user_agent=request.headers.get("user-agent", "")[:500],
        device_name=auth.session.device_name,
    )


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
