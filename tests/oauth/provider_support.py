"""Helpers for the OpenID Provider's own tests: register a client through the CLI, sign a
browser in through the pages (an httpx client keeping cookies), PKCE pairs, and an
authorization code obtained the way a browser would."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from tests.client.client_support import outbox_code

from qrlogin.cli import main
from support import LiveServer, no_running_loop

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@contextmanager
def _data_dir(server: LiveServer) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QRLOGIN_DATA_DIR", str(server.settings.data_dir))
        mp.setenv("QRLOGIN_PUBLIC_URL", server.url)
        yield


def cli(server: LiveServer, *args: str) -> tuple[int, str]:
    """Run ``qrlogin ARGS`` on the server's database; its exit code and stdout."""
    out = StringIO()
    with _data_dir(server), redirect_stdout(out), no_running_loop():  # also beside Playwright
        code = main(list(args))
    return code, out.getvalue()


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str | None
    redirect_uri: str

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.client_id, self.secret) if self.secret else None


def register(
    server: LiveServer,
    *,
    name: str = "Test App",
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1:9/callback",),
    post_logout: tuple[str, ...] = ("http://127.0.0.1:9/",),
    public: bool = False,
    first_party: bool = False,
) -> Client:
    args = ["clients", "add", "--name", name, "--json"]
    for uri in redirect_uris:
        args += ["--redirect-uri", uri]
    for uri in post_logout:
        args += ["--post-logout-redirect-uri", uri]
    if public:
        args.append("--public")
    if first_party:
        args.append("--first-party")
    code, out = cli(server, *args)
    assert code == 0, out
    made = json.loads(out)
    return Client(made["client_id"], made.get("client_secret"), (redirect_uris or ("",))[0])


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def browser(server: LiveServer, email: str = "bob@example.com") -> httpx.Client:
    """A browser signed in by email through the pages (its cookies in the client)."""
    b = httpx.Client(base_url=server.url, timeout=10, headers={"accept": "text/html"})
    csrf = csrf_of(b.get("/signin").text)
    assert b.post("/signin", data={"email": email, "csrf": csrf}).status_code == 200
    done = b.post(
        "/signin/code",
        data={"email": email, "code": outbox_code(server, email), "csrf": csrf, "next": "/"},
    )
    assert done.status_code == 303, done.text
    return b


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def auth_params(client: Client, challenge: str | None, **extra: str) -> dict[str, str]:
    params = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "response_type": "code",
        "scope": "openid email profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return params


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def consent_fields(page: str, decision: str) -> dict[str, str]:
    """The consent page's form for ``decision`` (allow or deny), hidden fields included."""
    form = next(f for f in page.split("</form>") if f'value="{decision}"' in f)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    return {**{k: html.unescape(v) for k, v in fields.items()}, "decision": decision}


def authorize(b: httpx.Client, params: dict[str, str]) -> httpx.Response:
    """Follow the authorization endpoint (through consent, allowed) to the client's redirect."""
    r = b.get("/oauth/authorize", params=params)
    if r.status_code == 200 and 'value="allow"' in r.text:
        r = b.post("/oauth/authorize/decide", data=consent_fields(r.text, "allow"))
    return r


def code_for(b: httpx.Client, client: Client, **extra: str) -> tuple[str, str, dict[str, str]]:
    """An authorization code for ``client`` (PKCE), its verifier, and the request's params."""
    verifier, challenge = pkce()
    params = auth_params(client, challenge, **extra)
    r = authorize(b, params)
    assert r.status_code == 303, r.text[:500]
    got = query_of(r.headers["location"])
    assert "code" in got, got
    return got["code"], verifier, params


def token(server: LiveServer, client: Client, **form: str) -> httpx.Response:
    data = dict(form)
    if client.secret is None:
        data["client_id"] = client.client_id
    return httpx.post(f"{server.url}/oauth/token", data=data, auth=client.auth, timeout=10)


def redeem(server: LiveServer, client: Client, code: str, verifier: str) -> httpx.Response:
    return token(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=client.redirect_uri,
        code_verifier=verifier,
    )


def verify_id_token(server: LiveServer, id_token: str) -> dict[str, Any]:
    """The ID token's claims, its signature checked against the published JWKS."""
    jwks = httpx.get(f"{server.url}/oauth/jwks", timeout=10).json()
    decoded = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    return dict(decoded.claims)
