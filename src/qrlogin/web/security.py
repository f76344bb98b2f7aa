"""Cookies, CSRF and security headers (DESIGN.md requirement 9)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response

from qrlogin.config import CookieNames
from qrlogin.core.errors import CsrfFailed

__all__ = ["CookieNames"]

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def csp_allowing_form_target(uri: str) -> str:
    """The policy for a page whose form ends in a redirect to ``uri`` on another origin (an
    app's registered redirect URI): browsers hold every redirect after a form submission to
    ``form-action``, so that origin is added to it, and nothing else is changed."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        source = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    elif parts.scheme:
        source = f"{parts.scheme}:"  # a native app's private-use scheme
    else:
        return CSP
    if any(ch in source for ch in " ;,'\"\n\r"):
        return CSP
    return CSP.replace("form-action 'self'", f"form-action 'self' {source}")


# /docs sets a policy of its own (web/docs.py); every other response gets CSP
# two years, and every subdomain: the HSTS preload list's floor (RFC 6797 §6.1)
HSTS = "max-age=63072000; includeSubDomains"
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


_POLICIES = (
    (b"content-security-policy", CSP.encode("latin-1")),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)
_HSTS = ((b"strict-transport-security", HSTS.encode("latin-1")),)


def add_security_headers(headers: MutableHeaders, *, https: bool) -> None:
    """CSP, frame, referrer and sniffing policies, and no caching, on a response (each unless
    the response set its own), and HSTS when the public URL is ``https``. One pass over the
    response's headers, then the missing ones appended raw (``MutableHeaders.setdefault``
    scanned them once per policy)."""
    raw = headers.raw
    present = {name for name, _ in raw}
    for name, value in _HSTS + _POLICIES if https else _POLICIES:
        if name not in present:
            raw.append((name, value))
