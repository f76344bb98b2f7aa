"""Cookies, CSRF and security headers (DESIGN.md requirement 9)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrlogin.config import CookieNames
from qrlogin.core.errors import CsrfFailed

__all__ = ["CookieNames"]

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# /docs (Swagger UI) loads its assets from a CDN; it gets its own, looser policy
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' https://cdn.jsdelivr.net; script-src 'self' 'unsafe-inline' "
    "https://cdn.jsdelivr.net; frame-ancestors 'none'"
)
BROWSER_HEADER = "qrlogin-client"  # custom header: cross-site forms cannot send it


def set_cookie(
    response: Response,
    name: str,
    value: str,
    *,
    https: bool,
    max_age: int | None,
    samesite: str = "lax",
    path: str = "/",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=https,
        httponly=True,
        samesite=samesite,  # type: ignore[arg-type]
    )


def clear_cookie(response: Response, name: str, *, https: bool, path: str = "/") -> None:
    response.delete_cookie(name, path=path, secure=https, httponly=True, samesite="lax")


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(key: bytes, cookie_value: str) -> str:
    """The form token for a browser: HMAC of its CSRF cookie, so a forged form cannot know it."""
    return hmac.new(key, f"csrf\x00{cookie_value}".encode(), hashlib.sha256).hexdigest()


def check_csrf(key: bytes, cookie_value: str | None, form_value: str | None) -> None:
    if not cookie_value or not form_value:
        raise CsrfFailed()
    if not hmac.compare_digest(csrf_token(key, cookie_value), form_value):
        raise CsrfFailed()


def require_browser_header(request: Request) -> None:
    """Cookie-authenticated API writes must carry our header; a cross-site form cannot."""
    if request.headers.get(BROWSER_HEADER) != "browser":
        raise CsrfFailed(
            "Browser calls that change something must send the header 'Qrlogin-Client: browser'."
        )


def add_security_headers(headers: MutableHeaders, path: str) -> None:
    """CSP, frame, referrer and sniffing policies, and no caching, on the response to ``path``
    (each unless the response set its own)."""
    headers.setdefault("content-security-policy", DOCS_CSP if path.startswith("/docs") else CSP)
    headers.setdefault("x-frame-options", "DENY")
    headers.setdefault("referrer-policy", "no-referrer")
    headers.setdefault("x-content-type-options", "nosniff")
    headers.setdefault("cache-control", "no-store")


class SecurityHeaders:
    """Adds CSP, frame and referrer policies to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message), path)
            await send(message)

        await self.app(scope, receive, send_with_headers)
