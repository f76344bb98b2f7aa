"""The passkeys API (web/api_passkeys.py) driven by a software authenticator
(tests/webauthn_support.py): add, list, rename and remove passkeys; sign in with one alone or
as the second factor of an email sign-in; the step-up before an approval; and a stable JSON
error for every refusal."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from limits import parse
from web_support import BROWSER, PUBLIC_URL, Approver, Site, code_in

from qrlogin.core.errors import StepUpRequired
from qrlogin.limiter import Limits
from qrlogin.store.records import AuditEntry
from qrlogin.store.tables import passkeys, sessions
from webauthn_support import SoftAuthenticator

MINE = "/api/v1/me/passkeys"
SIGN_IN_OPTIONS = "/api/v1/auth/passkey/options"
SIGN_IN = "/api/v1/auth/passkey/verify"
STEP_UP_OPTIONS = "/api/v1/me/verify/passkey/options"
STEP_UP = "/api/v1/me/verify/passkey"


def authenticator(**kw: Any) -> SoftAuthenticator:
    return SoftAuthenticator(rp_id="testserver", origin=PUBLIC_URL, **kw)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"]
    return response.status_code, body["error"]


async def add_passkey(
    who: Approver, key: SoftAuthenticator, name: str = "Laptop"
) -> dict[str, Any]:
    options = await who.client.post(f"{MINE}/options", headers=who.headers())
    assert options.status_code == 200, options.text
    body = options.json()
    added = await who.client.post(
        MINE,
        json={"credential": key.create(body["options"]), "token": body["token"], "name": name},
        headers=who.headers(),
    )
    assert added.status_code == 201, added.text
    passkey: dict[str, Any] = added.json()
    return passkey


async def passkey_sign_in(
    client: httpx.AsyncClient,
    key: SoftAuthenticator,
    *,
    browser: bool = True,
    mfa_token: str | None = None,
) -> httpx.Response:
    asked = {} if mfa_token is None else {"mfa_token": mfa_token}
    options = await client.post(SIGN_IN_OPTIONS, json=asked)
    assert options.status_code == 200, options.text
    body = options.json()
    sent = {"credential": key.get(body["options"]), "token": body["token"], **asked}
    return await client.post(SIGN_IN, json=sent, headers=BROWSER if browser else {})


async def email_step(site: Site, email: str, client: httpx.AsyncClient) -> httpx.Response:
    started = await client.post("/api/v1/auth/email/start", json={"email": email})
    assert started.status_code == 202
    code = code_in(site.last_mail(email))
    return await client.post(
        "/api/v1/auth/email/verify", json={"email": email, "code": code}, headers=BROWSER
    )


async def session_row(site: Site, session_id: str | None = None) -> dict[str, Any]:
    rows = await site.rows(sessions)
    return rows[-1] if session_id is None else next(r for r in rows if r["id"] == session_id)


# -- the signed-in user's passkeys ---------------------------------------------------------


async def test_a_passkey_is_added_listed_renamed_and_removed(
    site: Site, requester_kind: str
) -> None:
    ann = await site.sign_in(kind=requester_kind)
    key = authenticator(synced=False)

    added = await add_passkey(ann, key)
    listed = await ann.client.get(MINE, headers=ann.headers())
    renamed = await ann.client.patch(
        f"{MINE}/{added['id']}", json={"name": "Work laptop"}, headers=ann.headers()
    )
    removed = await ann.client.delete(f"{MINE}/{added['id']}", headers=ann.headers())
    after = await ann.client.get(MINE, headers=ann.headers())

    assert added["name"] == "Laptop"
    assert added["synced"] is False and added["backed_up"] is False
    assert added["last_used_at"] is None
    assert listed.json() == {"passkeys": [added]}
    assert renamed.status_code == 200 and renamed.json()["name"] == "Work laptop"
    assert removed.status_code == 204
    assert after.json() == {"passkeys": []}
    await site.services.factors.drain()
    subjects = [m.subject for m in site.outbox if m.to == ann.email]
    assert any("added to" in s for s in subjects) and any("removed from" in s for s in subjects)


async def test_creation_options_are_webauthn_json_for_this_site(site: Site) -> None:
    ann = await site.sign_in(kind="browser")

    reply = await ann.client.post(f"{MINE}/options", headers=ann.headers())

    options = reply.json()["options"]
    assert options["rp"]["id"] == "testserver"
    assert options["user"]["name"] == ann.email
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert isinstance(options["challenge"], str) and isinstance(reply.json()["token"], str)


async def test_a_cookie_authenticated_passkey_change_needs_the_browser_header(
    site: Site,
) -> None:
    ann = await site.sign_in(kind="browser")
    added = await add_passkey(ann, authenticator())

    for method, path in [
        ("POST", f"{MINE}/options"),
        ("DELETE", f"{MINE}/{added['id']}"),
        ("POST", STEP_UP_OPTIONS),
    ]:
        response = await ann.client.request(method, path)
        assert error_of(response) == (403, "csrf_failed"), path
    assert len((await ann.client.get(MINE)).json()["passkeys"]) == 1


async def test_the_last_factor_of_an_account_requiring_one_is_not_removed(site: Site) -> None:
    ann = await site.sign_in(kind="browser")
    added = await add_passkey(ann, authenticator())
    entry = AuditEntry(event="factor.required", created_at=0.0, user_id=ann.user["id"])
    assert await site.services.store.set_mfa_required(ann.user["id"], True, entry)

    refused = await ann.client.delete(f"{MINE}/{added['id']}", headers=ann.headers())

    assert error_of(refused) == (409, "last_factor")
    assert len((await ann.client.get(MINE)).json()["passkeys"]) == 1


async def test_another_accounts_passkey_cannot_be_renamed_or_removed(site: Site) -> None:
    ann, bob = await site.sign_in(kind="browser"), await site.sign_in(kind="browser")
    bobs = await add_passkey(bob, authenticator())

    renamed = await ann.client.patch(
        f"{MINE}/{bobs['id']}", json={"name": "mine now"}, headers=ann.headers()
    )
    removed = await ann.client.delete(f"{MINE}/{bobs['id']}", headers=ann.headers())

    assert error_of(renamed) == error_of(removed) == (404, "not_found")
    assert (await bob.client.get(MINE)).json()["passkeys"][0]["name"] == "Laptop"


async def test_a_credential_for_another_origin_or_a_used_token_is_refused(site: Site) -> None:
    ann = await site.sign_in(kind="browser")
    key = authenticator()
    options = (await ann.client.post(f"{MINE}/options", headers=ann.headers())).json()
    foreign = key.create(options["options"], origin="http://evil.example")

    first = await ann.client.post(
        MINE, json={"credential": foreign, "token": options["token"]}, headers=ann.headers()
    )
    again = await ann.client.post(
        MINE,
        json={"credential": key.create(options["options"]), "token": options["token"]},
        headers=ann.headers(),
    )

    assert error_of(first) == error_of(again) == (400, "passkey_refused")
    assert (await ann.client.get(MINE)).json() == {"passkeys": []}


# -- signing in with a passkey -------------------------------------------------------------


async def test_a_passkey_alone_signs_a_new_browser_in(site: Site) -> None:
    ann = await site.sign_in(kind="browser")
    key = authenticator()
    await add_passkey(ann, key)
    laptop = site.client()

    signed_in = await passkey_sign_in(laptop, key)

    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["access_token"] is None  # a browser: the cookie holds it
    me = await laptop.get("/api/v1/me")
    assert me.json()["user"]["id"] == ann.user["id"]
    row = await session_row(site, me.json()["session_id"])
    assert (row["amr"], row["linked_by"]) == ("passkey", "passkey")
    assert row["verified_at"] is not None


async def test_an_api_client_signing_in_with_a_passkey_gets_tokens(site: Site) -> None:
    ann = await site.sign_in()
    key = authenticator()
    await add_passkey(ann, key)

    signed_in = await passkey_sign_in(site.client(), key, browser=False)

    token = signed_in.json()["access_token"]
    assert token and signed_in.json()["refresh_token"]
    me = await site.client().get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.json()["user"]["id"] == ann.user["id"]


async def test_request_options_offer_any_passkey_of_the_site(site: Site) -> None:
    reply = await site.client().post(SIGN_IN_OPTIONS)

    assert reply.status_code == 200
    assert reply.json()["options"]["allowCredentials"] == []
    assert reply.json()["options"]["rpId"] == "testserver"


async def test_sign_in_options_are_limited_per_address(site: Site) -> None:
    allowed = parse(Limits().passkey_options_per_ip).amount
    client = site.client(ip="198.51.100.7")
    for _ in range(allowed):
        assert (await client.post(SIGN_IN_OPTIONS)).status_code == 200

    refused = await client.post(SIGN_IN_OPTIONS)
    elsewhere = await site.client(ip="198.51.100.8").post(SIGN_IN_OPTIONS)

    assert error_of(refused) == (429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    assert elsewhere.status_code == 200


async def test_a_sign_in_challenge_from_another_browser_is_refused(site: Site) -> None:
    ann = await site.sign_in()
    key = authenticator()
    await add_passkey(ann, key)
    asked = (await site.client().post(SIGN_IN_OPTIONS)).json()

    stolen = await site.client().post(
        SIGN_IN, json={"credential": key.get(asked["options"]), "token": asked["token"]}
    )

    assert error_of(stolen) == (400, "passkey_refused")


async def test_a_cloned_authenticator_is_refused(site: Site) -> None:
    ann = await site.sign_in()
    key = authenticator()
    await add_passkey(ann, key)
    client = site.client()
    assert (await passkey_sign_in(client, key)).status_code == 200
    assert (await passkey_sign_in(client, key)).status_code == 200
    key.sign_count = 0  # the clone sends 1 next: behind the stored 2

    refused = await passkey_sign_in(client, key)

    assert error_of(refused) == (400, "passkey_refused")


async def test_every_malformed_sign_in_gets_a_stable_error(site: Site) -> None:
    client = site.client()
    asked = (await client.post(SIGN_IN_OPTIONS)).json()

    for body, expected in [
        ({"credential": {}, "token": asked["token"]}, (400, "passkey_refused")),
        ({"credential": {"id": 5, "response": "x"}, "token": "x"}, (400, "passkey_refused")),
        ({"credential": "not an object", "token": "x"}, (400, "invalid_request")),
        ({"credential": {}, "token": "x", "extra": 1}, (400, "invalid_request")),
        ({"credential": {}, "token": "x", "mfa_token": "nope"}, (401, "invalid_mfa_token")),
    ]:
        response = await client.post(SIGN_IN, json=body, headers=BROWSER)
        assert error_of(response) == expected, body


# -- a passkey as the second factor of an email sign-in --------------------------------------


async def test_an_account_with_a_passkey_finishes_an_email_sign_in_with_it(site: Site) -> None:
    ann = await site.sign_in(kind="browser")
    key = authenticator()
    await add_passkey(ann, key)
    laptop = site.client()

    held = await email_step(site, ann.email, laptop)
    assert error_of(held) == (401, "second_factor_required")
    assert held.json()["methods"] == ["passkey"]
    mfa_token = held.json()["mfa_token"]
    options = (await laptop.post(SIGN_IN_OPTIONS, json={"mfa_token": mfa_token})).json()
    assert [c["id"] for c in options["options"]["allowCredentials"]] == [key.id]
    finished = await laptop.post(
        SIGN_IN,
        json={
            "credential": key.get(options["options"]),
            "token": options["token"],
            "mfa_token": mfa_token,
        },
        headers=BROWSER,
    )

    assert finished.status_code == 200, finished.text
    me = (await laptop.get("/api/v1/me")).json()
    assert me["user"]["id"] == ann.user["id"]
    assert (await session_row(site, me["session_id"]))["amr"] == "email passkey"
    again = await laptop.post(SIGN_IN_OPTIONS, json={"mfa_token": mfa_token})
    assert error_of(again) == (401, "invalid_mfa_token")  # the mfa token worked once


async def test_another_accounts_passkey_does_not_finish_an_email_sign_in(site: Site) -> None:
    ann, bob = await site.sign_in(kind="browser"), await site.sign_in(kind="browser")
    await add_passkey(ann, authenticator())
    bobs_key = authenticator()
    await add_passkey(bob, bobs_key)
    laptop = site.client()
    mfa_token = (await email_step(site, ann.email, laptop)).json()["mfa_token"]

    refused = await passkey_sign_in(laptop, bobs_key, mfa_token=mfa_token)

    assert error_of(refused) == (400, "passkey_refused")
    assert (await laptop.get("/api/v1/me")).status_code == 401


async def test_refused_passkeys_use_up_the_mfa_tokens_tries(site: Site) -> None:
    ann = await site.sign_in(kind="browser")
    await add_passkey(ann, authenticator())
    stranger_key = authenticator()  # a passkey the server does not know
    laptop = site.client()
    mfa_token = (await email_step(site, ann.email, laptop)).json()["mfa_token"]

    for _ in range(site.services.policy.mfa_token_attempts):
        refused = await passkey_sign_in(laptop, stranger_key, mfa_token=mfa_token)
        assert error_of(refused) == (400, "passkey_refused")
    spent = await laptop.post(SIGN_IN_OPTIONS, json={"mfa_token": mfa_token})

    assert error_of(spent) == (401, "invalid_mfa_token")


async def test_an_mfa_token_from_another_browser_gets_no_options(site: Site) -> None:
    ann = await site.sign_in(kind="browser")
    await add_passkey(ann, authenticator())
    mfa_token = (await email_step(site, ann.email, site.client())).json()["mfa_token"]

    elsewhere = await site.client().post(SIGN_IN_OPTIONS, json={"mfa_token": mfa_token})

    assert error_of(elsewhere) == (401, "invalid_mfa_token")


# -- step-up -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["api", "browser"])
async def test_a_step_up_with_the_users_passkey_lets_an_approval_through(
    make_site: Any, kind: str
) -> None:
    site: Site = await make_site(approve_step_up="always")
    ann = await site.sign_in(kind=kind)
    key = authenticator()
    await add_passkey(ann, key)
    factors = site.services.factors
    session_id = (await ann.me()).json()["session_id"]
    with pytest.raises(StepUpRequired):
        await factors.require_step_up(ann.user["id"], session_id)

    asked = await ann.client.post(STEP_UP_OPTIONS, headers=ann.headers())
    assert asked.json()["options"]["userVerification"] == "required"
    body = {"credential": key.get(asked.json()["options"]), "token": asked.json()["token"]}
    verified = await ann.client.post(STEP_UP, json=body, headers=ann.headers())

    assert verified.status_code == 204, verified.text
    await factors.require_step_up(ann.user["id"], session_id)  # passes, once
    with pytest.raises(StepUpRequired):
        await factors.require_step_up(ann.user["id"], session_id)


async def test_a_step_up_with_another_accounts_passkey_is_refused(site: Site) -> None:
    ann, bob = await site.sign_in(), await site.sign_in()
    await add_passkey(ann, authenticator())
    bobs_key = authenticator()
    await add_passkey(bob, bobs_key)

    asked = (await ann.client.post(STEP_UP_OPTIONS, headers=ann.headers())).json()
    body = {"credential": bobs_key.get(asked["options"]), "token": asked["token"]}
    refused = await ann.client.post(STEP_UP, json=body, headers=ann.headers())

    assert error_of(refused) == (400, "passkey_refused")
    row = await session_row(site, (await ann.me()).json()["session_id"])
    assert row["verified_at"] is None


async def test_a_step_up_without_user_verification_is_refused(site: Site) -> None:
    ann = await site.sign_in()
    key = authenticator()
    await add_passkey(ann, key)
    key.user_verified = False

    asked = (await ann.client.post(STEP_UP_OPTIONS, headers=ann.headers())).json()
    body = {"credential": key.get(asked["options"]), "token": asked["token"]}
    refused = await ann.client.post(STEP_UP, json=body, headers=ann.headers())

    assert error_of(refused) == (400, "passkey_refused")


# -- what the API document says ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{MINE}/options"),
        ("POST", MINE),
        ("GET", MINE),
        ("PATCH", f"{MINE}/x1"),
        ("DELETE", f"{MINE}/x1"),
        ("POST", STEP_UP_OPTIONS),
        ("POST", STEP_UP),
    ],
)
async def test_the_users_passkey_calls_need_a_session_first(
    site: Site, method: str, path: str
) -> None:
    response = await site.client().request(method, path, headers=BROWSER)

    assert error_of(response) == (401, "not_signed_in")


async def test_the_passkey_operations_document_their_refusals(site: Site) -> None:
    spec = (await site.client().get("/openapi.json")).json()["paths"]

    assert {"400", "401", "403"} <= set(spec[MINE]["post"]["responses"])
    assert "409" in spec[f"{MINE}/{{passkey_id}}"]["delete"]["responses"]
    assert {"400", "401"} <= set(spec[SIGN_IN]["post"]["responses"])
    assert "passkey_refused" in spec[STEP_UP]["post"]["responses"]["400"]["description"]


# -- the pages that use it -----------------------------------------------------------------


async def test_the_signin_page_offers_passkeys_in_the_email_fields_autofill(site: Site) -> None:
    page = (await site.client().get("/signin")).text

    assert 'autocomplete="username webauthn"' in page
    assert 'id="passkey-signin" hidden>Sign in with a passkey</button>' in page
    assert '<script src="/static/passkeys.js" data-base="" defer></script>' in page


async def test_the_account_page_has_the_passkeys_section(site: Site) -> None:
    ann = await site.sign_in(kind="browser")

    page = (await ann.client.get("/account")).text

    assert 'id="passkeys"' in page and 'id="passkey-add" hidden' in page
    assert page.count("/static/passkeys.js") == 1
    script = await site.client().get("/static/passkeys.js")
    assert script.status_code == 200 and "parseRequestOptionsFromJSON" in script.text


@pytest.mark.backends
async def test_of_two_sign_ins_racing_on_one_counter_exactly_one_gets_in(site: Site) -> None:
    ann = await site.sign_in()
    key = authenticator()
    await add_passkey(ann, key)
    client = site.client()
    sent = []
    for bump in (True, False):  # two copies of one key, both sending the next counter
        asked = (await client.post(SIGN_IN_OPTIONS)).json()
        credential = key.get(asked["options"], bump=bump)
        sent.append({"credential": credential, "token": asked["token"]})

    replies = await asyncio.gather(*(client.post(SIGN_IN, json=body) for body in sent))

    assert sorted(r.status_code for r in replies) == [200, 400]
    assert (await site.rows(passkeys))[0]["sign_count"] == key.sign_count
