"""The host app: a home page, a password sign-in, a sign-out, and qrlogin mounted at ``/qr``.

Its login page offers both ways in: the password form, and the ``<qr-login>`` widget (scan
with a phone where you are signed in). Every account and session is the host's own (store.py);
qrlogin keeps only its login requests, in a database of its own in the data dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from examples.fastapi_host.qr import COOKIE, HostApprovers, HostSessions
from examples.fastapi_host.store import SESSION_LIFETIME, HostSession, HostStore, User
from qrlogin import QRLogin, Settings
from qrlogin.core.clock import Clock

MOUNT = "/qr"
HEADERS = {
    # the widget is a same-origin module script with a same-origin stylesheet: no inline code
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    # not no-referrer: browsers then send "Origin: null" with our own forms (see same_origin)
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


@dataclass
class HostApp:
    app: FastAPI
    store: HostStore
    qr: QRLogin
    public_url: str  # the host's origin
    https: bool


def safe_next(target: str | None) -> str:
    """A same-origin path to go on to after signing in, else ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 0x21 for c in target):
        return "/"
    return target


def page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Example host</title><link rel="icon" href="data:,"></head>
<body><main>
{body}
</main></body>
</html>"""
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def login_page(next_path: str, error: str = "", status_code: int = 200) -> HTMLResponse:
    alert = f'<p role="alert" id="error">{escape(error)}</p>' if error else ""
    return page(
        "Sign in",
        f"""<h1>Sign in to the example host</h1>
<section aria-labelledby="with-password">
<h2 id="with-password">With your password</h2>
{alert}
<form method="post" action="/login">
  <input type="hidden" name="next" value="{escape(next_path)}">
  <p><label for="username">Username</label>
     <input id="username" name="username" autocomplete="username" required></p>
  <p><label for="password">Password</label>
     <input id="password" name="password" type="password" autocomplete="current-password"
            required></p>
  <p><button type="submit">Sign in</button></p>
</form>
</section>
<section aria-labelledby="with-phone">
<h2 id="with-phone">With your phone</h2>
<script type="module" src="{MOUNT}/static/qrlogin.js"></script>
<qr-login redirect="{escape(next_path)}"></qr-login>
</section>""",
        status_code,
    )


def home_page(user: User, session: HostSession) -> HTMLResponse:
    how = "a QR code scanned on another device" if session.linked_from else "your password"
    return page(
        "Home",
        f"""<h1>Example host</h1>
<p id="who">Signed in as {escape(user.display_name)}</p>
<p>This browser signed in with {how}.</p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>""",
    )


def create_app(
    data_dir: Path, public_url: str, *, clock: Clock | None = None, **qr_settings: Any
) -> HostApp:
    """The host app for ``public_url`` (its origin), keeping its files in ``data_dir``."""
    public_url = public_url.rstrip("/")
    https = public_url.startswith("https://")
    store = HostStore(data_dir / "host.db")
    qr = QRLogin(
        Settings(
            data_dir=data_dir / "qrlogin",  # qrlogin's own database and key, apart from ours
            public_url=f"{public_url}{MOUNT}",
            signin_url="/login?next={next}",
            **qr_settings,
        ),
        approvers=HostApprovers(store),
        sessions=HostSessions(store, https=https),
        clock=clock,
    )
    app = FastAPI(lifespan=qr.lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount(MOUNT, qr.asgi())
    app.include_router(router)
    host = HostApp(app, store, qr, public_url, https)
    app.state.host = host
    return host


def host_of(request: Request) -> HostApp:
    host: HostApp = request.app.state.host
    return host


Host = Annotated[HostApp, Depends(host_of)]
router = APIRouter()


def same_origin(request: Request, host: HostApp) -> bool:
    # the host's own forms post only from its own pages (CSRF): browsers send Origin
    return request.headers.get("origin") == host.public_url


@router.get("/")
async def home(request: Request, host: Host) -> Response:
    found = host.store.session_of(request.cookies.get(COOKIE))
    if found is None:
        return RedirectResponse("/login", status_code=303)
    session, user = found
    return home_page(user, session)


@router.get("/login")
async def login_form(next: str | None = None) -> Response:
    return login_page(safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    host: Host,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    if not same_origin(request, host):
        return page("Refused", "<p>Sign in from this site's own page.</p>", 403)
    user = host.store.check_password(username, password)
    if user is None:
        return login_page(safe_next(next), "Wrong username or password. Try again.", 401)
    token, _ = host.store.start_session(
        user.id,
        device_name="",
        user_agent=request.headers.get("user-agent", ""),
        ip=request.client.host if request.client else "",
        signed_in_with="password",
    )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, token, max_age=SESSION_LIFETIME, httponly=True, secure=host.https, samesite="lax"
    )
    return response


@router.post("/logout")
async def logout(request: Request, host: Host) -> Response:
    if not same_origin(request, host):
        return page("Refused", "<p>Sign out from this site's own page.</p>", 403)
    found = host.store.session_of(request.cookies.get(COOKIE))
    if found is not None:
        session, _ = found
        host.store.end_session(session.id)
        # approvals this session gave and no device has used yet end now, and the
        # waiting device is told at once
        await host.qr.session_ended(session.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, secure=host.https, samesite="lax")
    return response
