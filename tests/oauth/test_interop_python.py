"""qrlogin as an OpenID Provider, driven by independent Python clients against a real
``qrlogin serve`` on 127.0.0.1: the RFC 8628 device grant with msal's generic OAuth2 client,
oauthlib's ``DeviceClient`` (requests-oauthlib) and Authlib's requests ``OAuth2Session``; the
authorization code flow with PKCE, refresh, userinfo and RP-initiated logout with Authlib's
Starlette client in a small relying party, a browser (httpx with a cookie jar) in between.

msal and oauthlib verify no id_token signature (msal says so: its claims are "non-validated"),
so their tokens are checked with PyJWT (msal's own JOSE dependency, and not the joserfc the
server signs with) against ``/oauth/jwks``; Authlib checks its own."""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal.oauth2cli.oidc
import pytest
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.integrations.requests_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from oauth_support import (
    QrloginServer,
    Registered,
    approve_device,
    deny_device,
    new_browser,
    serving,
    sign_in_browser,
    sign_in_through_pages,
    submit,
    user_id,
)
from oauthlib.oauth2 import DeviceClient, OAuth2Error
from requests_oauthlib import OAuth2Session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from client.client_support import Approver, sign_in
from support import LiveServer, start_live_server

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPES = ["openid", "email", "profile"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QrloginServer]:
    with serving(tmp_path_factory.mktemp("qrlogin")) as running:
        yield running


@pytest.fixture
def phone(server: QrloginServer) -> Iterator[Approver]:
    """A phone signed in (by email code) as a person of this test's own."""
    signed_in = sign_in(server, f"phone-{secrets.token_hex(4)}@example.com")
    try:
        yield signed_in
    finally:
        signed_in.close()


def typed(user_code: str) -> str:
    """A user code as the approver's link form reads it: spaces, dashes and case ignored."""
    return user_code.replace(" ", "").replace("-", "").upper()


def wait_out(interval: float, since: float) -> None:
    """Sleep until ``interval`` seconds (and a little) have passed since ``since`` (a
    time.monotonic() reading), so the next poll is not too soon."""
    time.sleep(max(0.0, since + interval + 0.2 - time.monotonic()))


def verified_with_pyjwt(server: QrloginServer, id_token: str, client_id: str) -> dict[str, Any]:
    """The id_token's claims once PyJWT has checked its signature against the provider's JWKS,
    its issuer, its audience, and that it has not expired."""
    keys = jwt.PyJWKSet.from_dict(server.jwks())
    key = keys[jwt.get_unverified_header(id_token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key,
        algorithms=server.metadata()["id_token_signing_alg_values_supported"],
        audience=client_id,
        issuer=server.url,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    return claims


def assert_claims_of(claims: dict[str, Any], server: QrloginServer, client_id: str, sub: str):
    assert claims["iss"] == server.url
    assert claims["aud"] in (client_id, [client_id])
    assert claims["sub"] == sub
    assert isinstance(claims["amr"], list) and claims["amr"], claims
    assert all(isinstance(method, str) for method in claims["amr"]), claims
    assert claims["exp"] > claims["iat"]


def assert_userinfo(info: dict[str, Any], sub: str, email: str) -> None:
    assert info["sub"] == sub
    assert info["email"] == email


def assert_token_reply(token: dict[str, Any]) -> None:
    assert token["token_type"].lower() == "bearer"
    assert token["access_token"] and token["refresh_token"] and token["id_token"]
    assert int(token["expires_in"]) > 0


# --------------------------------------------------------------------------- device grant


def test_msal_device_flow_is_pending_until_the_phone_approves_then_gets_verified_tokens(
    server: QrloginServer, phone: Approver
) -> None:
    tv = server.add_client("Living-room TV (msal)", public=True)
    app = msal.oauth2cli.oidc.Client(server.metadata(), tv.client_id, timeout=10)

    flow = app.initiate_device_flow(scope=SCOPES)
    assert flow["verification_uri"] == f"{server.url}/link"
    complete = urlsplit(flow["verification_uri_complete"])
    assert f"{complete.scheme}://{complete.netloc}{complete.path}" == f"{server.url}/link"
    assert typed(parse_qs(complete.query)["user_code"][0]) == typed(flow["user_code"])
    assert flow["interval"] == 1

    # one poll, no loop: the phone has not approved yet
    pending = app.obtain_token_by_device_flow(flow, exit_condition=lambda flow: True)
    assert pending["error"] == "authorization_pending", pending
    polled = time.monotonic()

    approve_device(phone, flow["user_code"])
    wait_out(flow["interval"], polled)
    deadline = time.monotonic() + 30
    result = app.obtain_token_by_device_flow(
        flow, exit_condition=lambda flow: time.monotonic() > deadline
    )
    assert "error" not in result, result
    assert_token_reply(result)
    sub = user_id(phone)
    claims = verified_with_pyjwt(server, result["id_token"], tv.client_id)
    assert claims == result["id_token_claims"]  # what msal decoded, unchecked, is what we checked
    assert_claims_of(claims, server, tv.client_id, sub)
    assert claims["email"] == phone.email

    info = httpx.get(
        server.metadata()["userinfo_endpoint"],
        headers={"authorization": f"Bearer {result['access_token']}"},
        timeout=10,
    )
    assert info.status_code == 200, info.text
    assert_userinfo(info.json(), sub, phone.email)

    refreshed = app.obtain_token_by_refresh_token(result["refresh_token"])
    assert "error" not in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]


def oauthlib_device_session(
    server: QrloginServer, monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[Registered, OAuth2Session, dict[str, Any]]:
    """A public device client with oauthlib's DeviceClient in a requests-oauthlib session,
    and the device_authorization reply it got."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server is plain http
    registered = server.add_client(name, public=True)
    session = OAuth2Session(client=DeviceClient(registered.client_id), scope=SCOPES)
    started = session.post(
        server.metadata()["device_authorization_endpoint"],
        data={"client_id": registered.client_id, "scope": " ".join(SCOPES)},
        timeout=10,
    )
    assert started.status_code == 200, started.text
    return registered, session, started.json()


def oauthlib_poll(server: QrloginServer, session: OAuth2Session, device_code: str) -> Any:
    return session.fetch_token(
        server.metadata()["token_endpoint"],
        device_code=device_code,
        include_client_id=True,  # a public client: client_id in the body, no Basic auth
        timeout=10,
    )


def test_oauthlib_device_client_gets_tokens_once_the_phone_approves(
    server: QrloginServer, phone: Approver, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, session, flow = oauthlib_device_session(server, monkeypatch, "Build box (oauthlib)")
    assert flow["interval"] == 1 and flow["expires_in"] > 0

    with pytest.raises(OAuth2Error) as pending:
        oauthlib_poll(server, session, flow["device_code"])
    assert pending.value.error == "authorization_pending"
    polled = time.monotonic()

    approve_device(phone, flow["user_code"])
    wait_out(flow["interval"], polled)
    token = oauthlib_poll(server, session, flow["device_code"])
    assert_token_reply(token)
    assert sorted(token["scope"]) == sorted(SCOPES)

    sub = user_id(phone)
    claims = verified_with_pyjwt(server, token["id_token"], cli.client_id)
    assert_claims_of(claims, server, cli.client_id, sub)

    info = session.get(server.metadata()["userinfo_endpoint"], timeout=10)  # token in the header
    assert info.status_code == 200, info.text
    assert_userinfo(info.json(), sub, phone.email)

    refresh = {"client_id": cli.client_id, "timeout": 10}
    refreshed = session.refresh_token(server.metadata()["token_endpoint"], **refresh)
    assert refreshed["access_token"] != token["access_token"]

    # the grant is one more device of the person, linked by the user code; revoking it on the
    # phone ends its tokens
    devices = {d["id"]: d for d in phone.http.get("/api/v1/sessions").json()["sessions"]}
    assert devices[claims["sid"]]["linked_by"] == "user_code"
    assert phone.http.delete(f"/api/v1/sessions/{claims['sid']}").status_code == 204
    after = session.get(server.metadata()["userinfo_endpoint"], timeout=10)
    assert after.status_code == 401, after.text
    with pytest.raises(OAuth2Error) as refused:
        session.refresh_token(server.metadata()["token_endpoint"], **refresh)
    assert refused.value.error == "invalid_grant"


def test_oauthlib_device_client_is_told_access_denied_when_the_phone_denies(
    server: QrloginServer, phone: Approver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, session, flow = oauthlib_device_session(server, monkeypatch, "Kiosk (oauthlib)")

    deny_device(phone, flow["user_code"])
    with pytest.raises(OAuth2Error) as denied:
        oauthlib_poll(server, session, flow["device_code"])
    assert denied.value.error == "access_denied"


def test_authlib_device_flow_confidential_client_tokens_refresh_introspect_and_revoke(
    server: QrloginServer, phone: Approver
) -> None:
    registered = server.add_client("Printer (Authlib)")
    meta = server.metadata()
    session = AuthlibSession(
        registered.client_id,
        registered.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        timeout=10,
    )
    # RFC 8628 §3.1: a confidential client authenticates at the device endpoint too
    started = session.post(
        meta["device_authorization_endpoint"],
        data={"scope": " ".join(SCOPES)},
        auth=session.client_auth("client_secret_basic"),
        withhold_token=True,
    )
    assert started.status_code == 200, started.text
    flow = started.json()

    approve_device(phone, flow["user_code"])
    token = session.fetch_token(
        meta["token_endpoint"], grant_type=DEVICE_GRANT, device_code=flow["device_code"]
    )
    assert_token_reply(token)

    # Authlib's own OpenID Connect checks (its Starlette/Flask clients do the same)
    decoded = joserfc_jwt.decode(
        token["id_token"],
        KeySet.import_key_set(server.jwks()),
        registry=JWSRegistry(algorithms=meta["id_token_signing_alg_values_supported"]),
    )
    id_token = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": server.url},
            "sub": {"essential": True, "value": user_id(phone)},
            "amr": {"essential": True},
            "auth_time": {"essential": True},
        },
        {"client_id": registered.client_id, "access_token": token["access_token"]},
    )
    id_token.validate()
    assert_claims_of(dict(id_token), server, registered.client_id, user_id(phone))

    info = session.get(meta["userinfo_endpoint"])
    assert info.status_code == 200, info.text
    assert_userinfo(info.json(), user_id(phone), phone.email)

    first_access = token["access_token"]
    refreshed = session.refresh_token(meta["token_endpoint"])
    assert refreshed["access_token"] != first_access
    assert session.get(meta["userinfo_endpoint"]).status_code == 200

    introspected = session.introspect_token(
        meta["introspection_endpoint"], token=refreshed["access_token"]
    )
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True
    assert introspected.json()["client_id"] == registered.client_id

    revoked = session.revoke_token(meta["revocation_endpoint"], token=refreshed["refresh_token"])
    assert revoked.status_code == 200, revoked.text
    after = session.introspect_token(
        meta["introspection_endpoint"], token=refreshed["access_token"]
    )
    assert after.json() == {"active": False}
    with pytest.raises(OAuthError) as refused:
        session.refresh_token(meta["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"


@pytest.mark.slow
def test_polling_faster_than_the_interval_is_told_slow_down(
    server: QrloginServer, phone: Approver
) -> None:
    tv = server.add_client("Impatient TV (httpx)", public=True)
    meta = server.metadata()
    started = httpx.post(
        meta["device_authorization_endpoint"],
        data={"client_id": tv.client_id, "scope": "openid"},
        timeout=10,
    )
    assert started.status_code == 200, started.text
    flow = started.json()
    poll = {
        "grant_type": DEVICE_GRANT,
        "device_code": flow["device_code"],
        "client_id": tv.client_id,
    }

    first = httpx.post(meta["token_endpoint"], data=poll, timeout=10)
    assert (first.status_code, first.json()["error"]) == (400, "authorization_pending")
    again = httpx.post(meta["token_endpoint"], data=poll, timeout=10)
    assert (again.status_code, again.json()["error"]) == (400, "slow_down")
    told = time.monotonic()

    # RFC 8628 §3.5: after slow_down the client waits 5 s more than before, from then on
    approve_device(phone, flow["user_code"])
    wait_out(flow["interval"] + 5, told)
    done = httpx.post(meta["token_endpoint"], data=poll, timeout=10)
    assert done.status_code == 200, done.text
    assert done.json()["access_token"]


# --------------------------------------------------------------------------- authorization code


@dataclass
class RelyingParty:
    """A Starlette app signing people in with Authlib's Starlette client, served by uvicorn on
    127.0.0.1. ``kept["token"]`` is the token Authlib got last."""

    url: str
    client: Registered
    live: LiveServer
    kept: dict[str, Any]


def relying_party_app(
    server: QrloginServer, client: Registered, url: str, kept: dict[str, Any]
) -> Starlette:
    oauth = OAuth()
    oauth.register(
        "qrlogin",
        client_id=client.client_id,
        client_secret=client.client_secret,
        server_metadata_url=f"{server.url}/.well-known/openid-configuration",
        client_kwargs={"scope": " ".join(SCOPES), "code_challenge_method": "S256", "timeout": 10},
    )
    provider = oauth.create_client("qrlogin")

    async def login(request: Request) -> Response:
        response: Response = await provider.authorize_redirect(request, f"{url}/callback")
        return response

    async def callback(request: Request) -> Response:
        try:
            # checks state, sends the PKCE verifier, verifies the id_token against the JWKS
            # (signature, iss, aud, exp, nonce, at_hash) and the claims asked for here
            token = await provider.authorize_access_token(
                request,
                claims_options={
                    "iss": {"essential": True, "value": server.url},
                    "sub": {"essential": True},
                    "amr": {"essential": True},
                    "sid": {"essential": True},
                    "auth_time": {"essential": True},
                },
            )
        except OAuthError as error:
            return JSONResponse({"error": error.error}, status_code=400)
        kept["token"] = token
        return JSONResponse(
            {"iss": request.query_params.get("iss"), "userinfo": dict(token["userinfo"])}
        )

    async def refresh(request: Request) -> Response:
        before = kept["token"]
        after = await provider.fetch_access_token(
            grant_type="refresh_token", refresh_token=before["refresh_token"]
        )
        kept["token"] = {**before, **after}
        return JSONResponse({"new_access_token": after["access_token"] != before["access_token"]})

    async def me(request: Request) -> Response:
        return JSONResponse(dict(await provider.userinfo(token=kept["token"])))

    async def logout(request: Request) -> Response:
        # ?hint=no: an RP that kept no id_token names itself by client_id instead
        hinted = request.query_params.get("hint") != "no"
        response: Response = await provider.logout_redirect(
            request,
            post_logout_redirect_uri=f"{url}/logged-out",
            **(
                {"id_token_hint": kept["token"]["id_token"]}
                if hinted
                else {"client_id": client.client_id}
            ),
        )
        return response

    async def logged_out(request: Request) -> Response:
        await provider.validate_logout_response(request)  # the state it sent came back
        return JSONResponse({"signed_out": True})

    return Starlette(
        routes=[
            Route("/login", login),
            Route("/callback", callback),
            Route("/refresh", refresh),
            Route("/me", me),
            Route("/logout", logout),
            Route("/logged-out", logged_out),
        ],
        middleware=[
            Middleware(
                SessionMiddleware, secret_key=secrets.token_urlsafe(), session_cookie="rp_session"
            )
        ],
    )


@contextmanager
def relying_party(
    server: QrloginServer, name: str, *, public: bool, first_party: bool
) -> Iterator[RelyingParty]:
    """The relying party, registered (once its port is known) with its callback and its
    signed-out page."""
    made: dict[str, Any] = {"kept": {}}

    def make_app(url: str) -> tuple[None, Starlette]:
        made["client"] = server.add_client(
            name,
            redirect_uris=(f"{url}/callback",),
            post_logout_redirect_uris=(f"{url}/logged-out",),
            public=public,
            first_party=first_party,
        )
        return None, relying_party_app(server, made["client"], url, made["kept"])

    live = start_live_server(make_app)
    try:
        yield RelyingParty(live.url, made["client"], live, made["kept"])
    finally:
        live.stop()
    assert not live.server_errors, "\n".join(live.server_errors)


def browser_user(browser: httpx.Client, server: QrloginServer) -> dict[str, Any]:
    me = browser.get(f"{server.url}/api/v1/me")
    assert me.status_code == 200, me.text
    user: dict[str, Any] = me.json()["user"]
    return user


def authorization_request(went: httpx.Response, server: QrloginServer) -> httpx.URL:
    """The authorization request the relying party sent the browser with, on the way to
    ``went``; Authlib asked for PKCE S256 and put a nonce and a state in it."""
    authorize = httpx.URL(server.metadata()["authorization_endpoint"])
    hops = [*went.history, went]
    asked = next(hop.url for hop in hops if hop.url.copy_with(query=None) == authorize)
    assert asked.params["code_challenge_method"] == "S256" and asked.params["code_challenge"]
    assert asked.params["nonce"] and asked.params["state"]
    assert asked.params["client_id"] and asked.params["response_type"] == "code"
    return asked


def assert_signed_in_at_the_rp(
    arrived: httpx.Response, rp: RelyingParty, server: QrloginServer, user: dict[str, Any]
) -> None:
    assert arrived.status_code == 200, arrived.text
    assert arrived.url.path == "/callback" and str(arrived.url).startswith(rp.url)
    body = arrived.json()
    assert body["iss"] == server.url  # RFC 9207
    assert_claims_of(body["userinfo"], server, rp.client.client_id, user["id"])
    assert body["userinfo"]["email"] == user["email"]


def refresh_userinfo_and_sign_out(
    browser: httpx.Client, rp: RelyingParty, server: QrloginServer, user: dict[str, Any]
) -> None:
    refreshed = browser.get(f"{rp.url}/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json() == {"new_access_token": True}

    info = browser.get(f"{rp.url}/me")
    assert info.status_code == 200, info.text
    assert_userinfo(info.json(), user["id"], user["email"])

    out = browser.get(f"{rp.url}/logout", follow_redirects=True)
    assert out.status_code == 200, out.text
    assert str(out.url).startswith(f"{rp.url}/logged-out?")
    assert out.json() == {"signed_out": True}
    passed = [str(hop.url) for hop in out.history]
    assert any(hop.startswith(server.metadata()["end_session_endpoint"]) for hop in passed)
    # the state Authlib sent is the one it got back (validate_logout_response checked it)
    sent = parse_qs(urlsplit(next(h for h in passed if "/oauth/logout" in h)).query)
    assert parse_qs(out.url.query.decode())["state"] == sent["state"]

    # and the browser's qrlogin session is over
    assert browser.get(f"{server.url}/api/v1/me").status_code == 401


def test_authlib_starlette_rp_signs_a_browser_in_to_a_first_party_client_without_consent(
    server: QrloginServer,
) -> None:
    browser = sign_in_browser(server, "first-party@example.com")
    user = browser_user(browser, server)
    with relying_party(server, "Intranet (Authlib)", public=False, first_party=True) as rp:
        arrived = browser.get(f"{rp.url}/login", follow_redirects=True)
        authorization_request(arrived, server)
        assert_signed_in_at_the_rp(arrived, rp, server, user)
        refresh_userinfo_and_sign_out(browser, rp, server, user)


def test_authlib_starlette_rp_public_client_signs_in_after_the_person_consents(
    server: QrloginServer,
) -> None:
    browser = sign_in_browser(server, "consents@example.com")
    user = browser_user(browser, server)
    with relying_party(server, "Photo app (Authlib)", public=True, first_party=False) as rp:
        consent = browser.get(f"{rp.url}/login", follow_redirects=True)
        assert consent.status_code == 200, consent.text
        assert str(consent.url).startswith(server.url)
        assert "Photo app (Authlib)" in consent.text
        authorization_request(consent, server)
        arrived = submit(browser, consent, "approve")
        assert_signed_in_at_the_rp(arrived, rp, server, user)
        refresh_userinfo_and_sign_out(browser, rp, server, user)


def test_authlib_starlette_rp_is_told_access_denied_when_the_person_declines(
    server: QrloginServer,
) -> None:
    browser = sign_in_browser(server, "declines@example.com")
    with relying_party(server, "Nosy app (Authlib)", public=False, first_party=False) as rp:
        consent = browser.get(f"{rp.url}/login", follow_redirects=True)
        refused = submit(browser, consent, "deny")
        assert refused.url.path == "/callback" and str(refused.url).startswith(rp.url)
        assert (refused.status_code, refused.json()) == (400, {"error": "access_denied"})
        assert "token" not in rp.kept


def test_a_browser_not_signed_in_signs_in_first_and_comes_back_to_the_client(
    server: QrloginServer,
) -> None:
    browser = new_browser()
    with relying_party(server, "Wiki (Authlib)", public=False, first_party=True) as rp:
        sent = browser.get(f"{rp.url}/login", follow_redirects=True)
        assert sent.status_code == 200, sent.text
        assert sent.url.path == "/login" and str(sent.url).startswith(server.url)
        back_to = sent.url.params["next"]
        asked = authorization_request(sent, server)
        assert back_to == f"{asked.path}?{asked.query.decode()}"

        signed_in = sign_in_through_pages(browser, server, "newcomer@example.com", back_to)
        # back to the app through the continue page (its meta refresh and its link): a
        # redirect would be held to the sign-in form's form-action 'self' all the way
        assert signed_in.status_code == 200, signed_in.text
        assert f'content="0;url={html.escape(back_to)}"' in signed_in.text
        assert f'id="continue" href="{html.escape(back_to)}"' in signed_in.text
        arrived = browser.get(f"{server.url}{back_to}", follow_redirects=True)
        assert_signed_in_at_the_rp(arrived, rp, server, browser_user(browser, server))


def test_a_logout_without_id_token_hint_asks_the_person_first(server: QrloginServer) -> None:
    browser = sign_in_browser(server, "asked-to-leave@example.com")
    with relying_party(server, "Forum (Authlib)", public=False, first_party=True) as rp:
        assert browser.get(f"{rp.url}/login", follow_redirects=True).status_code == 200

        asked = browser.get(f"{rp.url}/logout", params={"hint": "no"}, follow_redirects=True)
        assert asked.status_code == 200, asked.text
        end_session = httpx.URL(server.metadata()["end_session_endpoint"])
        assert asked.url.copy_with(query=None) == end_session
        assert "Forum (Authlib)" in asked.text
        assert browser.get(f"{server.url}/api/v1/me").status_code == 200  # nothing yet

        out = submit(browser, asked, "sign-out")
        assert out.status_code == 200, out.text
        assert str(out.url).startswith(f"{rp.url}/logged-out?")
        assert out.json() == {"signed_out": True}  # with the state the RP sent
        assert browser.get(f"{server.url}/api/v1/me").status_code == 401
