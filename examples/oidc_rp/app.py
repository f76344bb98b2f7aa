"""The example relying party. Configured by environment variables:

QRLOGIN_ISSUER     qrlogin's public URL (its OpenID issuer), e.g. http://127.0.0.1:8000
RP_CLIENT_ID       from ``qrlogin clients add … --json``
RP_CLIENT_SECRET   likewise (a confidential client)
RP_URL             this site's own URL, e.g. http://127.0.0.1:8001
RP_SESSION_SECRET  signs this site's session cookie (default: a new random one per start)
"""

from __future__ import annotations

import os
import secrets
from html import escape
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.starlette_client import OAuth, OAuthError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Example RP</title>
<style>body{{font:1.05rem/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}
a.button,button{{display:inline-block;padding:.6rem 1.1rem;font:inherit;border-radius:.4rem;
border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;text-decoration:none;cursor:pointer}}</style>
</head><body><main><h1>{escape(title)}</h1>{body}</main></body></html>""",
        status_code=status,
    )


def create_app(
    issuer: str, client_id: str, client_secret: str, rp_url: str, session_secret: str
) -> Starlette:
    oauth = OAuth()
    oauth.register(
        "qrlogin",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )
    qrlogin: Any = oauth.qrlogin

    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return page(
                "Welcome",
                "<p>You are not signed in.</p>"
                '<p><a class="button" id="sign-in" href="/login">Sign in with qrlogin</a></p>',
            )
        return page(
            "Welcome",
            f'<p id="signed-in-as">Signed in as <strong>{escape(user.get("name", ""))}</strong> '
            f'(<span id="email">{escape(user.get("email", ""))}</span>).</p>'
            '<form method="post" action="/logout"><button id="sign-out">Sign out</button></form>',
        )

    async def login(request: Request) -> Response:
        return await qrlogin.authorize_redirect(request, f"{rp_url}/callback")  # type: ignore[no-any-return]

    async def callback(request: Request) -> Response:
        try:
            # checks state, the code's PKCE verifier, the ID token's signature, iss, aud, nonce
            token = await qrlogin.authorize_access_token(request)
        except OAuthError as exc:
            return page(
                "Not signed in",
                f'<p>{escape(exc.description or exc.error)}</p><p><a href="/">Back</a></p>',
                400,
            )
        request.session["user"] = dict(token["userinfo"])
        request.session["id_token"] = token["id_token"]
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        id_token = request.session.get("id_token")
        request.session.clear()
        meta = await qrlogin.load_server_metadata()
        if not id_token:
            return RedirectResponse("/", status_code=303)
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": f"{rp_url}/"})
        return RedirectResponse(f"{meta['end_session_endpoint']}?{query}", status_code=303)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/login", login),
            Route("/callback", callback),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=session_secret, same_site="lax")],
    )


def from_environment() -> Starlette:
    return create_app(
        os.environ["QRLOGIN_ISSUER"].rstrip("/"),
        os.environ["RP_CLIENT_ID"],
        os.environ["RP_CLIENT_SECRET"],
        os.environ.get("RP_URL", "http://127.0.0.1:8001").rstrip("/"),
        os.environ.get("RP_SESSION_SECRET") or secrets.token_urlsafe(32),
    )
