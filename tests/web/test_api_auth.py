"""First-device sign-in by email (start, verify, pickup) and the signed-in user's own session
(me, logout)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from web_support import BROWSER, PUBLIC_URL, Site, code_in, link_token_in, set_cookies

from qrlogin.store.tables import email_logins, sessions, users

START = "/api/v1/auth/email/start"
VERIFY = "/api/v1/auth/email/verify"
PICKUP = "/api/v1/auth/email/pickup"


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"]
    return response.status_code, body["error"]


# -- start ---------------------------------------------------------------------------------


async def test_start_replies_202_alike_for_new_and_known_addresses(site: Site) -> None:
    known = await site.sign_in()
    client = site.client()

    for_known = await client.post(START, json={"email": known.email})
    for_new = await client.post(START, json={"email": site.new_email()})

    assert for_known.status_code == for_new.status_code == 202
    assert for_known.json() == for_new.json()
    assert for_new.json()["status"] == "sent"


async def test_start_sends_one_mail_with_a_code_and_a_link(site: Site) -> None:
    email = site.new_email()

    await site.client().post(START, json={"email": email}, headers={"host": "evil.example"})

    assert [m.to for m in site.outbox] == [email]
    mail = site.outbox[0]
    code = code_in(mail)
    assert code in mail.subject
    assert f"{PUBLIC_URL}/auth/email/{link_token_in(mail)}" in mail.text
    assert "evil.example" not in mail.text


async def test_start_normalizes_the_address(site: Site) -> None:
    await site.client().post(START, json={"email": "  Mixed.Case@Example.COM "})

    assert site.outbox[0].to == "mixed.case@example.com"


@pytest.mark.parametrize(
    "content",
    [
        b"{oops",
        b"[]",
        b'{"email": 42}',
        b'{"email": null}',
        b"{}",
        b'{"email": "a@example.com", "user_id": "usr_x"}',
        json.dumps({"email": "a" * 310 + "@example.com"}).encode(),
        b'{"email": "not an address"}',
        b'{"email": "a@example.com", "next": 5}',
    ],
)
async def test_bad_start_input_is_refused_with_400_and_sends_nothing(
    site: Site, content: bytes
) -> None:
    response = await site.client().post(
        START, content=content, headers={"content-type": "application/json"}
    )

    assert error_of(response) == (400, "invalid_request")
    assert await site.count(email_logins) == 0
    assert site.outbox == []


# -- verify --------------------------------------------------------------------------------


async def test_verify_with_the_code_starts_a_session(site: Site) -> None:
    email = site.new_email("ada")
    client = site.client()
    await client.post(START, json={"email": email})

    response = await client.post(VERIFY, json={"email": email, "code": code_in(site.outbox[0])})

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 30 * 24 * 3600
    assert body["user"]["display_name"] == email.split("@")[0]
    assert body["user"]["id"].startswith("usr_")
    me = await client.get("/api/v1/me", headers={"authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["user"] == {**body["user"], "email": email}
    assert me.json()["expires_at"] == site.clock.now() + 30 * 24 * 3600


async def test_browser_verify_sets_the_session_cookie_and_no_token(site: Site) -> None:
    email = site.new_email()
    client = site.client()
    await client.post(START, json={"email": email})

    response = await client.post(
        VERIFY, json={"email": email, "code": code_in(site.outbox[0])}, headers=BROWSER
    )

    assert response.status_code == 200
    assert response.json()["access_token"] is None
    assert response.json().get("refresh_token") is None
    cookie = set_cookies(response)["qrl_session"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert client.cookies["qrl_session"] not in response.text
    assert (await client.get("/api/v1/me")).status_code == 200


async def test_a_known_address_signs_in_to_the_same_user_with_a_new_session(site: Site) -> None:
    first = await site.sign_in()

    again = await site.sign_in(first.email)

    assert again.user == first.user
    assert again.token != first.token
    assert await site.count(users) == 1
    assert await site.count(sessions) == 2


async def test_the_code_works_once(site: Site) -> None:
    email = site.new_email()
    client = site.client()
    await client.post(START, json={"email": email})
    code = code_in(site.outbox[0])
    assert (await client.post(VERIFY, json={"email": email, "code": code})).status_code == 200

    replay = await client.post(VERIFY, json={"email": email, "code": code})

    assert error_of(replay) == (400, "invalid_code")


async def test_the_code_expires_after_ten_minutes(site: Site) -> None:
    email = site.new_email()
    client = site.client()
    await client.post(START, json={"email": email})
    site.clock.advance(601)

    response = await client.post(VERIFY, json={"email": email, "code": code_in(site.outbox[0])})

    assert error_of(response) == (400, "invalid_code")


async def test_every_failed_verify_gets_the_same_reply(site: Site) -> None:
    email = site.new_email()
    client = site.client()
    await client.post(START, json={"email": email})
    code = code_in(site.outbox[0])
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    replies = [
        await client.post(VERIFY, json={"email": email, "code": wrong}),
        await client.post(VERIFY, json={"email": site.new_email(), "code": code}),
        await client.post(VERIFY, json={"email": email, "code": "abc"}),
    ]

    assert {error_of(r) for r in replies} == {(400, "invalid_code")}
    assert len({r.text for r in replies}) == 1


async def test_five_wrong_codes_burn_the_code(site: Site) -> None:
    email = site.new_email()
    client = site.client()
    await client.post(START, json={"email": email})
    code = code_in(site.outbox[0])
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        await client.post(VERIFY, json={"email": email, "code": wrong})

    response = await client.post(VERIFY, json={"email": email, "code": code})

    assert error_of(response) == (400, "invalid_code")
    assert await site.count(sessions) == 0


@pytest.mark.parametrize(
    "content",
    [
        b"{oops",
        b'{"email": "a@example.com"}',
        b'{"email": "a@example.com", "code": 123456}',
        b'{"email": "a@example.com", "code": "123456", "user_id": "usr_x"}',
        json.dumps({"email": "a@example.com", "code": "1" * 21}).encode(),
    ],
)
async def test_bad_verify_input_is_refused_with_400_and_writes_nothing(
    site: Site, content: bytes
) -> None:
    await site.client().post(START, json={"email": "a@example.com"})
    before = await site.rows(email_logins)

    response = await site.client().post(
        VERIFY, content=content, headers={"content-type": "application/json"}
    )

    assert error_of(response) == (400, "invalid_request")
    assert await site.rows(email_logins) == before
    assert await site.count(sessions) == 0


# -- pickup (the full hand-off is in test_pages.py) ----------------------------------------


async def test_pickup_with_nothing_confirmed_is_authorization_pending(site: Site) -> None:
    client = site.client()
    await client.get("/signin")  # the page gives this browser its binding cookie
    await client.post(START, json={"email": site.new_email()})

    response = await client.post(PICKUP, headers=BROWSER)

    assert error_of(response) == (409, "authorization_pending")


async def test_pickup_without_the_browser_header_is_refused(site: Site) -> None:
    response = await site.client().post(PICKUP)

    assert error_of(response) == (403, "csrf_failed")


# -- me and logout -------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer "])
async def test_me_without_a_live_session_is_401(site: Site, auth: str | None) -> None:
    headers = {"authorization": auth} if auth else {}

    response = await site.client().get("/api/v1/me", headers=headers)

    assert error_of(response) == (401, "not_signed_in")


async def test_logout_revokes_the_session_at_once(site: Site) -> None:
    approver = await site.sign_in()
    other = await site.sign_in(approver.email)

    response = await approver.client.post("/api/v1/logout", headers=approver.headers())

    assert response.status_code == 204
    assert error_of(await approver.me()) == (401, "not_signed_in")
    assert (await other.me()).status_code == 200  # only this device signs out
    again = await approver.client.post("/api/v1/logout", headers=approver.headers())
    assert error_of(again) == (401, "not_signed_in")


async def test_cookie_logout_needs_the_browser_header_and_clears_the_cookie(site: Site) -> None:
    approver = await site.sign_in(kind="browser")

    refused = await approver.client.post("/api/v1/logout")
    assert error_of(refused) == (403, "csrf_failed")
    assert (await approver.me()).status_code == 200

    response = await approver.client.post("/api/v1/logout", headers=BROWSER)

    assert response.status_code == 204
    assert re.search(r"Max-Age=0|expires=", set_cookies(response)["qrl_session"])
    assert "qrl_session" not in approver.client.cookies
    assert error_of(await approver.me()) == (401, "not_signed_in")
