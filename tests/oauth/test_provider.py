"""The OpenID Provider against a real server on 127.0.0.1: the authorization code flow and
the device grant, and every refusal issue 12 lists (each tries to break one rule)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.client.client_support import sign_in
from tests.oauth.provider_support import (
    DEVICE_GRANT,
    Client,
    auth_params,
    authorize,
    browser,
    code_for,
    consent_fields,
    pkce,
    query_of,
    redeem,
    register,
    token,
    verify_id_token,
)

from qrlogin.core.clock import FrozenClock
from support import LiveServer

Start = Callable[..., LiveServer]


@pytest.fixture
def server(live_server: Start) -> LiveServer:
    return live_server(device_poll_interval=1)


def introspect(server: LiveServer, client: Client, tok: str) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/oauth/introspect", data={"token": tok}, auth=client.auth, timeout=10
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def userinfo(server: LiveServer, access_token: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/oauth/userinfo",
        headers={"authorization": f"Bearer {access_token}"},
        timeout=10,
    )


# -- metadata ----------------------------------------------------------------------------


def test_discovery_lists_every_endpoint_and_what_they_support(server: LiveServer) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        meta = httpx.get(server.url + path, timeout=10).json()
        assert meta["issuer"] == server.url
        for key, suffix in {
            "authorization_endpoint": "/oauth/authorize",
            "token_endpoint": "/oauth/token",
            "device_authorization_endpoint": "/oauth/device_authorization",
            "userinfo_endpoint": "/oauth/userinfo",
            "introspection_endpoint": "/oauth/introspect",
            "revocation_endpoint": "/oauth/revoke",
            "end_session_endpoint": "/oauth/logout",
            "jwks_uri": "/oauth/jwks",
        }.items():
            assert meta[key] == server.url + suffix
            assert httpx.options(meta[key], timeout=10).status_code != 404
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert meta["authorization_response_iss_parameter_supported"] is True
        assert set(meta["grant_types_supported"]) == {
            "authorization_code",
            "refresh_token",
            DEVICE_GRANT,
        }
        assert {"RS256", "ES256"} <= set(meta["id_token_signing_alg_values_supported"])
    keys = httpx.get(f"{server.url}/oauth/jwks", timeout=10).json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    assert all(k["kid"] and "d" not in k for k in keys)  # public halves only


# -- authorization code flow -------------------------------------------------------------


def test_code_flow_gives_a_signed_id_token_for_the_client_with_the_nonce(
    server: LiveServer,
) -> None:
    client = register(server)
    b = browser(server, "bob@example.com")
    code, verifier, params = code_for(b, client)
    r = redeem(server, client, code, verifier)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    claims = verify_id_token(server, body["id_token"])
    assert claims["iss"] == server.url
    assert claims["aud"] == client.client_id
    assert claims["nonce"] == params["nonce"]
    assert claims["email"] == "bob@example.com"
    assert claims["amr"] == ["email"]  # this browser signed in by email code
    assert claims["exp"] > claims["iat"] >= claims["auth_time"]
    info = userinfo(server, body["access_token"]).json()
    assert info == {
        "sub": claims["sub"],
        "email": "bob@example.com",
        "email_verified": True,
        "name": "bob",
    }
    # the authorization response carried iss (RFC 9207) and the state
    assert introspect(server, client, body["access_token"])["active"] is True


def test_the_authorization_response_carries_state_and_iss(server: LiveServer) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    _, challenge = pkce()
    params = auth_params(client, challenge)
    r = b.get("/oauth/authorize", params=params)
    assert r.status_code == 303  # first party: no consent page
    got = query_of(r.headers["location"])
    assert got["state"] == params["state"] and got["iss"] == server.url
    assert r.headers["location"].startswith(client.redirect_uri + "?")


def test_a_browser_not_signed_in_goes_to_the_qr_page_and_back(server: LiveServer) -> None:
    client = register(server, name="Photo Shop")
    _, challenge = pkce()
    anon = httpx.Client(base_url=server.url, timeout=10, headers={"accept": "text/html"})
    r = anon.get("/oauth/authorize", params=auth_params(client, challenge))
    assert r.status_code == 303
    login = r.headers["location"]
    assert login.startswith("/login?next=%2Foauth%2Fauthorize%3F")
    page = anon.get(login)
    assert page.status_code == 200
    assert "<qr-login" in page.text and "Photo Shop" in page.text
    nxt = query_of(login)["next"]
    assert f'redirect="{nxt}"'.replace("&", "&amp;") in page.text


def test_consent_names_the_client_and_scopes_and_deny_refuses(server: LiveServer) -> None:
    client = register(server, name="Photo Shop")
    b = browser(server)
    _, challenge = pkce()
    params = auth_params(client, challenge)
    page = b.get("/oauth/authorize", params=params)
    assert page.status_code == 200
    assert "Photo Shop" in page.text and "See your email address" in page.text
    assert 'id="approve"' in page.text and 'id="deny"' in page.text
    denied = b.post("/oauth/authorize/decide", data=consent_fields(page.text, "deny"))
    got = query_of(denied.headers["location"])
    assert got["error"] == "access_denied" and got["state"] == params["state"]
    # allowed once, it is not asked again for the same scopes; prompt=consent asks again
    assert authorize(b, params).status_code == 303
    again = b.get("/oauth/authorize", params=auth_params(client, challenge))
    assert again.status_code == 303 and "code" in query_of(again.headers["location"])
    asked = b.get("/oauth/authorize", params=auth_params(client, challenge, prompt="consent"))
    assert asked.status_code == 200 and 'value="allow"' in asked.text


def test_consent_form_without_csrf_is_refused(server: LiveServer) -> None:
    client = register(server)
    b = browser(server)
    _, challenge = pkce()
    page = b.get("/oauth/authorize", params=auth_params(client, challenge))
    fields = consent_fields(page.text, "allow")
    fields.pop("csrf")
    r = b.post("/oauth/authorize/decide", data=fields)
    assert r.status_code == 403 and "location" not in r.headers


@pytest.mark.parametrize(
    "redirect_uri",
    ["http://127.0.0.1:9/other", "https://evil.example/callback", "http://127.0.0.1:9/callback/"],
)
def test_an_unregistered_redirect_uri_gets_a_page_never_a_redirect(
    server: LiveServer, redirect_uri: str
) -> None:
    client = register(server)
    b = browser(server)
    _, challenge = pkce()
    r = b.get("/oauth/authorize", params=auth_params(client, challenge, redirect_uri=redirect_uri))
    assert r.status_code == 400 and "location" not in r.headers
    assert "not registered" in r.text


def test_an_unknown_client_gets_a_page_never_a_redirect(server: LiveServer) -> None:
    b = browser(server)
    r = b.get(
        "/oauth/authorize",
        params={
            "client_id": "cl_nobody",
            "redirect_uri": "https://evil.example/cb",
            "response_type": "code",
            "scope": "openid",
        },
    )
    assert r.status_code == 400 and "location" not in r.headers
    assert "Unknown app" in r.text


def test_a_public_client_without_pkce_is_refused_on_its_redirect_uri(server: LiveServer) -> None:
    client = register(server, public=True, first_party=True)
    b = browser(server)
    r = b.get("/oauth/authorize", params=auth_params(client, None))
    got = query_of(r.headers["location"])
    assert got["error"] == "invalid_request" and "PKCE" in got["error_description"]


def test_a_public_native_client_may_use_any_loopback_port(server: LiveServer) -> None:
    client = register(
        server, public=True, first_party=True, redirect_uris=("http://127.0.0.1/callback",)
    )
    b = browser(server)
    verifier, challenge = pkce()
    uri = "http://127.0.0.1:53127/callback"
    r = b.get("/oauth/authorize", params=auth_params(client, challenge, redirect_uri=uri))
    assert r.headers["location"].startswith(uri + "?code=")
    # another path, or a confidential client, does not get the loopback rule
    other = b.get(
        "/oauth/authorize",
        params=auth_params(client, challenge, redirect_uri="http://127.0.0.1:53127/other"),
    )
    assert other.status_code == 400 and "location" not in other.headers
    confidential = register(server, first_party=True, redirect_uris=("http://127.0.0.1/cb",))
    r = b.get(
        "/oauth/authorize",
        params=auth_params(confidential, challenge, redirect_uri="http://127.0.0.1:8/cb"),
    )
    assert r.status_code == 400 and "location" not in r.headers
    code = query_of(
        b.get("/oauth/authorize", params=auth_params(client, challenge, redirect_uri=uri)).headers[
            "location"
        ]
    )["code"]
    r = token(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=uri,
        code_verifier=verifier,
    )
    assert r.status_code == 200, r.text


def test_prompt_none_without_a_session_is_login_required(server: LiveServer) -> None:
    client = register(server, first_party=True)
    _, challenge = pkce()
    anon = httpx.Client(base_url=server.url, timeout=10)
    r = anon.get("/oauth/authorize", params=auth_params(client, challenge, prompt="none"))
    got = query_of(r.headers["location"])
    assert r.headers["location"].startswith(client.redirect_uri)
    assert got["error"] == "login_required" and got["iss"] == server.url


def test_prompt_none_that_needs_consent_is_consent_required(server: LiveServer) -> None:
    client = register(server)
    b = browser(server)
    _, challenge = pkce()
    r = b.get("/oauth/authorize", params=auth_params(client, challenge, prompt="none"))
    assert query_of(r.headers["location"])["error"] == "consent_required"


def test_prompt_login_and_max_age_send_a_signed_in_browser_to_sign_in_again(
    server: LiveServer,
) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    _, challenge = pkce()
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        time.sleep(1.1)  # max_age=0: the sign-in is older than 0 seconds
        r = b.get("/oauth/authorize", params=auth_params(client, challenge, **extra))
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")
        assert "reauth=1" in r.headers["location"]
        page = b.get(r.headers["location"])
        assert "<qr-login" in page.text  # the QR, although this browser is signed in


# -- the token endpoint's refusals -------------------------------------------------------


def test_missing_or_wrong_pkce_verifier_is_invalid_grant(server: LiveServer) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    missing = token(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=client.redirect_uri,
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    wrong = redeem(server, client, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert redeem(server, client, code, verifier).status_code == 200  # not burned by those


def test_a_code_used_twice_fails_and_revokes_what_the_first_use_gave(
    server: LiveServer,
) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    first = redeem(server, client, code, verifier).json()
    assert userinfo(server, first["access_token"]).status_code == 200
    second = redeem(server, client, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert userinfo(server, first["access_token"]).status_code == 401
    assert introspect(server, client, first["access_token"]) == {"active": False}
    refreshed = token(
        server, client, grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert refreshed.json()["error"] == "invalid_grant"


def test_a_code_is_bound_to_its_client_and_redirect_uri(server: LiveServer) -> None:
    client = register(
        server,
        first_party=True,
        redirect_uris=("http://127.0.0.1:9/callback", "http://127.0.0.1:9/second"),
    )
    other = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    assert redeem(server, other, code, verifier).json()["error"] == "invalid_grant"
    r = token(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://127.0.0.1:9/second",
        code_verifier=verifier,
    )
    assert r.json()["error"] == "invalid_grant"
    assert redeem(server, client, code, verifier).status_code == 200


def test_an_expired_code_is_refused(live_server: Start) -> None:
    clock = FrozenClock(time.time())
    server = live_server(app_kwargs={"clock": clock})
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    clock.advance(61)
    r = redeem(server, client, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "expired" in r.json()["error_description"]


@pytest.mark.parametrize("how", ["basic", "post", "none"])
def test_a_wrong_or_missing_client_secret_is_invalid_client(server: LiveServer, how: str) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": verifier,
    }
    auth = None
    if how == "basic":
        auth = (client.client_id, "not-the-secret")
    else:
        form["client_id"] = client.client_id
        if how == "post":
            form["client_secret"] = "not-the-secret"
    r = httpx.post(f"{server.url}/oauth/token", data=form, auth=auth, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    # client_secret_post with the right secret works
    form.update(client_id=client.client_id, client_secret=client.secret or "")
    assert httpx.post(f"{server.url}/oauth/token", data=form, timeout=10).status_code == 200


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(
    server: LiveServer,
) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    first = redeem(server, client, code, verifier).json()
    time.sleep(0.01)
    rotated = token(
        server, client, grant_type="refresh_token", refresh_token=first["refresh_token"]
    ).json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert userinfo(server, rotated["access_token"]).status_code == 200
    assert userinfo(server, first["access_token"]).status_code == 401  # replaced
    # another client cannot use it, and that changes nothing
    other = register(server, first_party=True)
    stolen = token(
        server, other, grant_type="refresh_token", refresh_token=rotated["refresh_token"]
    )
    assert stolen.json()["error"] == "invalid_grant"
    assert userinfo(server, rotated["access_token"]).status_code == 200


def test_unsupported_grant_and_missing_parameters_are_oauth_errors(server: LiveServer) -> None:
    client = register(server)
    for form, error in (
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "made-up"}, "invalid_grant"),
        ({"grant_type": DEVICE_GRANT, "device_code": "made-up"}, "invalid_grant"),
    ):
        r = token(server, client, **form)
        assert r.status_code == 400 and r.json()["error"] == error, (form, r.text)
        assert r.json()["error_description"]


# -- tokens are a session's ----------------------------------------------------------------


def test_a_client_token_is_not_a_qrlogin_session(server: LiveServer) -> None:
    """An app's access token reads userinfo only: not qrlogin's own API, and it cannot
    approve sign-ins."""
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    tokens = redeem(server, client, code, verifier).json()
    bearer = {"authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(f"{server.url}/api/v1/me", headers=bearer, timeout=10).status_code == 401
    linked = httpx.post(
        f"{server.url}/api/v1/link", json={"user_code": "123456"}, headers=bearer, timeout=10
    )
    assert linked.status_code == 401
    own = httpx.post(
        f"{server.url}/api/v1/token/refresh",
        json={"refresh_token": tokens["refresh_token"]},
        timeout=10,
    )
    assert own.status_code == 401


def test_tokens_of_a_revoked_session_are_inactive(server: LiveServer) -> None:
    client = register(server, name="Photo Shop", first_party=True)
    b = browser(server, "bob@example.com")
    code, verifier, _ = code_for(b, client)
    tokens = redeem(server, client, code, verifier).json()
    # the grant is one of the user's devices, named after the app; revoke it there
    phone = sign_in(server, "bob@example.com")
    devices = phone.http.get("/api/v1/sessions").json()
    listed = devices["sessions"] if isinstance(devices, dict) else devices
    grant = next(d for d in listed if d["device_name"] == "Photo Shop")
    assert phone.http.delete(f"/api/v1/sessions/{grant['id']}").status_code == 204
    assert introspect(server, client, tokens["access_token"]) == {"active": False}
    assert introspect(server, client, tokens["refresh_token"]) == {"active": False}
    assert userinfo(server, tokens["access_token"]).status_code == 401


def test_revocation_ends_the_grant_and_introspection_is_per_client(server: LiveServer) -> None:
    client = register(server, first_party=True)
    other = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    tokens = redeem(server, client, code, verifier).json()
    assert introspect(server, other, tokens["access_token"]) == {"active": False}
    active = introspect(server, client, tokens["refresh_token"])
    assert active["active"] is True and active["client_id"] == client.client_id
    # another client's revocation is a no-op (200 all the same, RFC 7009 §2.2)
    r = httpx.post(
        f"{server.url}/oauth/revoke",
        data={"token": tokens["access_token"]},
        auth=other.auth,
        timeout=10,
    )
    assert r.status_code == 200
    assert introspect(server, client, tokens["access_token"])["active"] is True
    r = httpx.post(
        f"{server.url}/oauth/revoke",
        data={"token": tokens["refresh_token"]},
        auth=client.auth,
        timeout=10,
    )
    assert r.status_code == 200
    assert introspect(server, client, tokens["access_token"]) == {"active": False}
    assert introspect(server, client, "not-a-token") == {"active": False}
    unauthenticated = httpx.post(
        f"{server.url}/oauth/introspect", data={"token": tokens["access_token"]}, timeout=10
    )
    assert unauthenticated.status_code == 401


def test_userinfo_without_or_with_a_bad_token_is_invalid_token(server: LiveServer) -> None:
    for headers in ({}, {"authorization": "Bearer nope"}):
        r = httpx.get(f"{server.url}/oauth/userinfo", headers=headers, timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert r.headers["www-authenticate"].startswith("Bearer")


# -- RP-initiated logout -----------------------------------------------------------------


def test_logout_with_the_id_token_hint_signs_out_and_returns_with_state(
    server: LiveServer,
) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    tokens = redeem(server, client, code, verifier).json()
    r = b.get(
        "/oauth/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "http://127.0.0.1:9/",
            "state": "bye",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "http://127.0.0.1:9/?state=bye"
    assert b.get("/api/v1/me").status_code == 401
    assert userinfo(server, tokens["access_token"]).status_code == 401


def test_logout_to_an_unregistered_uri_redirects_nowhere(server: LiveServer) -> None:
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    tokens = redeem(server, client, code, verifier).json()
    r = b.get(
        "/oauth/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://evil.example/",
        },
    )
    assert r.status_code == 400 and "location" not in r.headers
    forged = b.get("/oauth/logout", params={"id_token_hint": tokens["id_token"][:-4] + "AAAA"})
    assert forged.status_code == 400 and "location" not in forged.headers
    assert b.get("/api/v1/me").status_code == 200  # still signed in after both


def test_logout_without_a_hint_asks_first(server: LiveServer) -> None:
    b = browser(server)
    page = b.get("/oauth/logout")
    assert page.status_code == 200 and 'id="sign-out"' in page.text and 'id="stay"' in page.text
    assert b.get("/api/v1/me").status_code == 200  # asking changed nothing
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    r = b.post("/oauth/logout", data={"csrf": csrf, "confirm": "yes"})
    assert r.status_code == 200 and "signed out" in r.text
    assert b.get("/api/v1/me").status_code == 401


# -- the device grant ----------------------------------------------------------------------


def device_start(server: LiveServer, client: Client) -> dict[str, Any]:
    data = {"scope": "openid email"}
    if client.secret is None:
        data["client_id"] = client.client_id
    r = httpx.post(
        f"{server.url}/oauth/device_authorization", data=data, auth=client.auth, timeout=10
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def poll(server: LiveServer, client: Client, device_code: str) -> httpx.Response:
    return token(server, client, grant_type=DEVICE_GRANT, device_code=device_code)


def test_device_grant_pending_then_approved_by_user_code(server: LiveServer) -> None:
    client = register(server, name="TV App", public=True, redirect_uris=())
    started = device_start(server, client)
    assert started["verification_uri"] == f"{server.url}/link"
    assert started["interval"] == 1 and started["expires_in"] > 200
    assert poll(server, client, started["device_code"]).json()["error"] == "authorization_pending"
    phone = sign_in(server, "ann@example.com")
    scanned = phone.http.post("/api/v1/link", json={"user_code": started["user_code"]}).json()
    assert phone.approve(scanned["handle"]) is None  # a device grant takes no confirm code
    time.sleep(1.05)
    r = poll(server, client, started["device_code"])
    assert r.status_code == 200, r.text
    claims = verify_id_token(server, r.json()["id_token"])
    assert claims["aud"] == client.client_id and claims["email"] == "ann@example.com"
    assert claims["amr"] == ["qr"] and "nonce" not in claims
    time.sleep(1.05)
    again = poll(server, client, started["device_code"])
    assert again.json()["error"] == "invalid_grant"  # used


def test_polling_faster_than_the_interval_is_slow_down(server: LiveServer) -> None:
    client = register(server, public=True, redirect_uris=())
    started = device_start(server, client)
    assert poll(server, client, started["device_code"]).json()["error"] == "authorization_pending"
    fast = poll(server, client, started["device_code"])
    assert fast.status_code == 400 and fast.json()["error"] == "slow_down"
    time.sleep(1.05)
    assert poll(server, client, started["device_code"]).json()["error"] == "authorization_pending"


def test_a_denied_device_request_is_access_denied(server: LiveServer) -> None:
    client = register(server, public=True, redirect_uris=())
    started = device_start(server, client)
    phone = sign_in(server)
    scanned = phone.http.post("/api/v1/link", json={"user_code": started["user_code"]}).json()
    phone.deny(scanned["handle"])
    r = poll(server, client, started["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "access_denied"


def test_an_expired_device_code_is_expired_token(live_server: Start) -> None:
    clock = FrozenClock(time.time())
    server = live_server(app_kwargs={"clock": clock}, device_poll_interval=0)
    client = register(server, public=True, redirect_uris=())
    started = device_start(server, client)
    clock.advance(started["expires_in"] + 1)
    assert poll(server, client, started["device_code"]).json()["error"] == "expired_token"


def test_a_device_code_is_bound_to_its_client(server: LiveServer) -> None:
    client = register(server, public=True, redirect_uris=())
    other = register(server, public=True, redirect_uris=())
    started = device_start(server, client)
    assert poll(server, other, started["device_code"]).json()["error"] == "invalid_grant"


def test_verification_uri_complete_opens_the_approval_with_the_app_and_code(
    server: LiveServer,
) -> None:
    client = register(server, name="TV App", public=True, redirect_uris=())
    started = device_start(server, client)
    b = browser(server, "ann@example.com")
    r = b.get(started["verification_uri_complete"])
    assert r.status_code == 303 and r.headers["location"].startswith("/q/")
    page = b.get(r.headers["location"])
    assert "TV App" in page.text
    assert started["user_code"] in page.text  # to compare with the device (RFC 8628 §5.4)
    assert 'id="approve"' in page.text and 'id="deny"' in page.text
    # scanning never approves by itself
    assert poll(server, client, started["device_code"]).json()["error"] == "authorization_pending"


def test_a_device_may_wait_on_the_event_stream(server: LiveServer) -> None:
    client = register(server, public=True, redirect_uris=())
    started = device_start(server, client)
    headers = {"authorization": f"Bearer {started['device_code']}"}
    with httpx.stream("GET", started["qrlogin_events_uri"], headers=headers, timeout=10) as s:
        assert s.status_code == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in s.iter_lines() if line.startswith("data:"))
    assert '"status":"pending"' in first.replace(" ", "")


# -- keys ------------------------------------------------------------------------------------


def test_key_rotation_keeps_the_old_key_published_and_signs_with_the_new(
    live_server: Start,
) -> None:
    from tests.oauth.provider_support import cli

    server = live_server()
    client = register(server, first_party=True)
    b = browser(server)
    code, verifier, _ = code_for(b, client)
    before = redeem(server, client, code, verifier).json()["id_token"]
    old_kid = httpx.get(f"{server.url}/oauth/jwks", timeout=10).json()["keys"]
    assert cli(server, "keys", "rotate", "--alg", "RS256")[0] == 0
    server.app.state.services.oauth.keys._cache = None  # what its 60 s cache would do
    keys = httpx.get(f"{server.url}/oauth/jwks", timeout=10).json()["keys"]
    rsa = [k["kid"] for k in keys if k["alg"] == "RS256"]
    assert len(rsa) == 2 and {k["kid"] for k in old_kid} <= {k["kid"] for k in keys}
    assert verify_id_token(server, before)["aud"] == client.client_id  # still verifies
    code, verifier, _ = code_for(b, client)
    after = redeem(server, client, code, verifier).json()["id_token"]
    import base64 as _b64
    import json as _json

    header = _json.loads(_b64.urlsafe_b64decode(after.split(".")[0] + "=="))
    assert header["kid"] == rsa[0] and header["kid"] not in {k["kid"] for k in old_kid}


def test_a_device_grant_is_not_exchanged_through_the_requester_api(server: LiveServer) -> None:
    """The device code is a requester secret, but only its client, at the token endpoint,
    may turn the approval into tokens (a confidential client's secret is not bypassed)."""
    client = register(server, redirect_uris=())
    started = device_start(server, client)
    phone = sign_in(server)
    scanned = phone.http.post("/api/v1/link", json={"user_code": started["user_code"]}).json()
    phone.approve(scanned["handle"])
    request_id = started["qrlogin_events_uri"].split("/")[-2]
    r = httpx.post(
        f"{server.url}/api/v1/login-requests/{request_id}/session",
        json={},
        headers={"authorization": f"Bearer {started['device_code']}"},
        timeout=10,
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_secret"
    assert poll(server, client, started["device_code"]).status_code == 200


def test_login_hint_prefills_the_email_sign_in(server: LiveServer) -> None:
    client = register(server)
    _, challenge = pkce()
    anon = httpx.Client(base_url=server.url, timeout=10, headers={"accept": "text/html"})
    r = anon.get(
        "/oauth/authorize", params=auth_params(client, challenge, login_hint="ann@example.com")
    )
    page = anon.get(r.headers["location"]).text
    link = page.split('id="email-signin" href="')[1].split('"')[0].replace("&amp;", "&")
    signin = anon.get(link).text
    assert 'value="ann@example.com"' in signin
    assert 'name="next" value="/oauth/authorize?' in signin  # and back to the app afterwards
