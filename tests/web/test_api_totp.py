"""TOTP, recovery codes and the second-factor step of an email sign-in over the JSON API
(web/api_totp.py): enrol, verify, the 401 ``second_factor_required`` and its mfa token
(single use, this browser only, 5 minutes), 50 parallel uses of one code, step-up, turning
TOTP off and new recovery codes. Codes come from pyotp with the secret the API returned."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from totp_support import SECOND, STEP, email_step, enrolled, error_of, mfa_token
from web_support import BROWSER, Site

from qrlogin.store.tables import sessions

REQUIRED = "/api/v1/me/factors/required"
DISABLE = "/api/v1/me/totp/disable"


async def amr_of(site: Site, user_id: str) -> list[str]:
    return [r["amr"] for r in await site.rows(sessions) if r["user_id"] == user_id]


# -- enrolment -----------------------------------------------------------------------------


async def test_enrolment_turns_totp_on_and_the_summary_shows_it(site: Site) -> None:
    account = await enrolled(site)

    assert len(account.recovery_codes) == len(set(account.recovery_codes)) == 10
    summary = await account.device.get("/api/v1/me/factors")
    assert summary.json() == {
        "methods": ["totp", "recovery"],
        "passkeys": 0,
        "totp": True,
        "recovery_codes_left": 10,
        "mfa_required": False,
    }


async def test_a_wrong_first_code_is_refused_and_totp_stays_off(site: Site) -> None:
    me = await site.sign_in(kind="browser")
    await me.client.post("/api/v1/me/totp", headers=BROWSER)
    wrong = await me.client.post("/api/v1/me/totp/verify", json={"code": "000000"}, headers=BROWSER)
    assert error_of(wrong) == (400, "invalid_code")
    assert (await me.client.get("/api/v1/me/factors")).json()["totp"] is False


async def test_setting_up_while_totp_is_on_is_refused(site: Site) -> None:
    account = await enrolled(site)
    again = await account.device.post("/api/v1/me/totp", headers=BROWSER)
    assert error_of(again) == (409, "invalid_state")


async def test_cookie_writes_need_the_browser_header_and_a_session(site: Site) -> None:
    me = await site.sign_in(kind="browser")
    for path in ("/api/v1/me/totp", "/api/v1/me/totp/disable", "/api/v1/me/recovery-codes"):
        assert error_of(await me.client.post(path)) == (403, "csrf_failed")
        assert error_of(await site.client().post(path, headers=BROWSER)) == (401, "not_signed_in")
    verify = await me.client.post("/api/v1/me/verify", json={"code": "123456"})
    assert error_of(verify) == (403, "csrf_failed")


@pytest.mark.parametrize(
    "body",
    [{}, {"code": ""}, {"code": 123456}, {"code": "1" * 40}, {"code": "123456", "extra": 1}],
)
async def test_malformed_code_bodies_are_refused_with_400(site: Site, body: Any) -> None:
    me = await site.sign_in()
    response = await me.client.post("/api/v1/me/totp/verify", json=body, headers=me.headers())
    assert error_of(response) == (400, "invalid_request")


# -- the second-factor step ------------------------------------------------------------------


async def test_email_sign_in_then_a_totp_code_gives_a_session_made_by_email_and_otp(
    site: Site, requester_kind: str
) -> None:
    account = await enrolled(site)
    client, response = await email_step(site, account.email, kind=requester_kind)
    assert error_of(response) == (401, "second_factor_required")
    assert response.json()["methods"] == ["totp", "recovery"]
    assert "set-cookie" not in response.headers or "qrl_session" not in str(
        response.headers.get_list("set-cookie")
    )

    headers = BROWSER if requester_kind == "browser" else {}
    body = {"mfa_token": response.json()["mfa_token"], "code": account.code(site)}
    done = await client.post(SECOND, json=body, headers=headers)

    assert done.status_code == 200, done.text
    if requester_kind == "browser":
        assert done.json()["access_token"] is None
        assert any("qrl_session=" in c for c in done.headers.get_list("set-cookie"))
        me = await client.get("/api/v1/me")
    else:
        token = done.json()["access_token"]
        me = await client.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.json()["user"]["id"] == account.user_id
    assert "email otp" in await amr_of(site, account.user_id)


async def test_a_recovery_code_finishes_a_sign_in_once(site: Site) -> None:
    account = await enrolled(site)
    client, token = await mfa_token(site, account.email)
    code = account.recovery_codes[3]
    assert (await client.post(SECOND, json={"mfa_token": token, "code": code})).status_code == 200
    assert "email recovery" in await amr_of(site, account.user_id)

    again_client, again = await mfa_token(site, account.email)
    refused = await again_client.post(SECOND, json={"mfa_token": again, "code": code})
    assert error_of(refused) == (400, "invalid_code")
    left = (await account.device.get("/api/v1/me/factors")).json()["recovery_codes_left"]
    assert left == 9


async def test_the_mfa_token_works_once(site: Site) -> None:
    account = await enrolled(site)
    client, token = await mfa_token(site, account.email)
    first = await client.post(SECOND, json={"mfa_token": token, "code": account.code(site)})
    assert first.status_code == 200
    site.clock.advance(STEP)
    second = await client.post(SECOND, json={"mfa_token": token, "code": account.code(site)})
    assert error_of(second) == (401, "invalid_mfa_token")


async def test_the_mfa_token_is_refused_in_another_browser(site: Site) -> None:
    account = await enrolled(site)
    _, token = await mfa_token(site, account.email)
    elsewhere = site.client()  # another qrl_browser cookie (or none), same IP
    elsewhere.cookies.set("qrl_browser", "someone-elses-browser")
    refused = await elsewhere.post(SECOND, json={"mfa_token": token, "code": account.code(site)})
    assert error_of(refused) == (401, "invalid_mfa_token")
    assert await amr_of(site, account.user_id) == ["email"]  # only the enrolling device


async def test_the_mfa_token_expires_after_five_minutes(site: Site) -> None:
    account = await enrolled(site)
    client, token = await mfa_token(site, account.email)
    site.clock.advance(5 * 60 + 1)
    late = await client.post(SECOND, json={"mfa_token": token, "code": account.code(site)})
    assert error_of(late) == (401, "invalid_mfa_token")


async def test_five_wrong_codes_end_the_mfa_token(site: Site) -> None:
    account = await enrolled(site)
    client, token = await mfa_token(site, account.email)
    for _ in range(5):
        wrong = await client.post(SECOND, json={"mfa_token": token, "code": "000000"})
        assert error_of(wrong) == (400, "invalid_code")
    right = await client.post(SECOND, json={"mfa_token": token, "code": account.code(site)})
    assert error_of(right) == (401, "invalid_mfa_token")


async def test_an_unknown_mfa_token_is_refused_like_a_used_one(site: Site) -> None:
    refused = await site.client().post(SECOND, json={"mfa_token": "nope", "code": "123456"})
    assert error_of(refused) == (401, "invalid_mfa_token")


@pytest.mark.backends
async def test_fifty_parallel_uses_of_one_code_give_exactly_one_session(
    make_site: Any,
) -> None:
    """Ten sign-ins waiting for their second factor, each mfa token sent five times at once
    with the one valid code: one session, whichever call wins. (IP and address limits off:
    ten sign-ins to one address in a row are more than they allow.)"""
    site = await make_site(rate_limits=False)
    account = await enrolled(site)
    waiting = [await mfa_token(site, account.email) for _ in range(10)]
    before = len(await amr_of(site, account.user_id))
    code = account.code(site)

    replies = await asyncio.gather(
        *(
            client.post(SECOND, json={"mfa_token": token, "code": code})
            for client, token in waiting
            for _ in range(5)
        )
    )

    assert [r.status_code for r in replies].count(200) == 1
    assert {error_of(r) for r in replies if r.status_code != 200} <= {
        (400, "invalid_code"),
        (401, "invalid_mfa_token"),
    }
    assert len(await amr_of(site, account.user_id)) == before + 1


# -- step-up, turning off, new recovery codes ------------------------------------------------


async def test_turning_totp_off_needs_a_fresh_second_factor(site: Site) -> None:
    account = await enrolled(site)
    disable = "/api/v1/me/totp/disable"
    no_code = await account.device.post(disable, headers=BROWSER)
    assert error_of(no_code) == (403, "step_up_required")
    assert no_code.json()["methods"] == ["totp", "recovery"]
    wrong = await account.device.post(disable, json={"code": "000000"}, headers=BROWSER)
    assert error_of(wrong) == (400, "invalid_code")

    done = await account.device.post(disable, json={"code": account.code(site)}, headers=BROWSER)

    assert done.status_code == 204
    summary = (await account.device.get("/api/v1/me/factors")).json()
    assert summary["totp"] is False and summary["recovery_codes_left"] == 0
    # an email code alone signs in again
    _, plain = await email_step(site, account.email)
    assert plain.status_code == 200


async def test_a_step_up_lets_the_session_turn_totp_off_without_a_code(site: Site) -> None:
    account = await enrolled(site)
    verify = await account.device.post(
        "/api/v1/me/verify", json={"code": account.code(site)}, headers=BROWSER
    )
    assert verify.status_code == 200 and verify.json() == {"verified_at": site.clock.now()}
    site.clock.advance(4 * 60)
    off = await account.device.post("/api/v1/me/totp/disable", headers=BROWSER)
    assert off.status_code == 204


async def test_a_step_up_older_than_five_minutes_is_not_enough(site: Site) -> None:
    account = await enrolled(site)
    await account.device.post(
        "/api/v1/me/verify", json={"code": account.code(site)}, headers=BROWSER
    )
    site.clock.advance(5 * 60 + 1)
    off = await account.device.post("/api/v1/me/totp/disable", headers=BROWSER)
    assert error_of(off) == (403, "step_up_required")


async def test_an_account_without_a_second_factor_cannot_require_one(site: Site) -> None:
    me = await site.sign_in(kind="browser")
    refused = await me.client.post(REQUIRED, json={"required": True}, headers=BROWSER)
    assert error_of(refused) == (409, "invalid_state")
    assert (await me.client.get("/api/v1/me/factors")).json()["mfa_required"] is False


async def test_the_last_factor_of_an_account_that_requires_one_stays(site: Site) -> None:
    account = await enrolled(site)
    device = account.device
    on = await device.post(REQUIRED, json={"required": True}, headers=BROWSER)
    assert on.status_code == 200 and on.json()["mfa_required"] is True

    off = await device.post(DISABLE, json={"code": account.code(site)}, headers=BROWSER)
    assert error_of(off) == (409, "last_factor")
    assert (await device.get("/api/v1/me/factors")).json()["totp"] is True

    # refused before the code was used: it still works
    body = {"required": False, "code": account.code(site)}
    # no longer requiring it weakens the account: a fresh second factor first
    unproved = await device.post(REQUIRED, json={"required": False}, headers=BROWSER)
    assert error_of(unproved) == (403, "step_up_required")
    stopped = await device.post(REQUIRED, json=body, headers=BROWSER)
    assert stopped.status_code == 200 and stopped.json()["mfa_required"] is False
    assert (await device.post(DISABLE, headers=BROWSER)).status_code == 204  # just verified
    activity = (await device.get("/api/v1/me/activity")).json()["activity"]
    events = [a["event"] for a in activity]
    assert {"factor.required", "factor.optional", "factor.removed"} <= set(events)


async def test_new_recovery_codes_replace_the_old_ones(site: Site) -> None:
    account = await enrolled(site)
    fresh = await account.device.post(
        "/api/v1/me/recovery-codes", json={"code": account.recovery_codes[0]}, headers=BROWSER
    )
    assert fresh.status_code == 200, fresh.text
    codes = fresh.json()["recovery_codes"]
    assert len(codes) == 10 and set(codes).isdisjoint(account.recovery_codes)

    client, token = await mfa_token(site, account.email)
    old = await client.post(SECOND, json={"mfa_token": token, "code": account.recovery_codes[1]})
    assert error_of(old) == (400, "invalid_code")
    new = await client.post(SECOND, json={"mfa_token": token, "code": codes[0]})
    assert new.status_code == 200


async def test_every_factor_change_mails_the_owner(site: Site) -> None:
    account = await enrolled(site)
    await account.device.post(
        "/api/v1/me/totp/disable", json={"code": account.code(site)}, headers=BROWSER
    )
    await site.services.factors.drain()
    subjects = [m.subject for m in site.outbox if m.to == account.email]
    assert any("added to" in s for s in subjects)
    assert any("removed from" in s for s in subjects)


async def test_an_approver_with_totp_steps_up_with_a_code_before_it_approves(
    site: Site,
) -> None:
    account = await enrolled(site)
    requester = await site.new_requester("api")
    headers = BROWSER
    scanned = await account.device.get(f"/api/v1/scan/{requester.handle}", headers=headers)
    assert scanned.status_code == 200, scanned.text
    approve = f"/api/v1/scan/{requester.handle}/approve"

    refused = await account.device.post(approve, headers=headers)
    assert error_of(refused) == (403, "step_up_required")
    assert refused.json()["methods"] == ["totp"]

    verified = await account.device.post(
        "/api/v1/me/verify", json={"code": account.code(site)}, headers=headers
    )
    assert verified.status_code == 200, verified.text
    approved = await account.device.post(approve, headers=headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"


async def test_a_wrong_step_up_code_is_refused_and_counts_toward_the_lock(site: Site) -> None:
    account = await enrolled(site)
    for _ in range(5):
        wrong = await account.device.post(
            "/api/v1/me/verify", json={"code": "000000"}, headers=BROWSER
        )
        assert error_of(wrong) == (400, "invalid_code")
    right = await account.device.post(
        "/api/v1/me/verify", json={"code": account.code(site)}, headers=BROWSER
    )
    assert error_of(right) == (400, "invalid_code")  # locked: the same reply
    site.clock.advance(15 * 60)
    again = await account.device.post(
        "/api/v1/me/verify", json={"code": account.code(site)}, headers=BROWSER
    )
    assert again.status_code == 200, again.text


async def test_the_schema_says_the_email_step_may_answer_second_factor_required(
    site: Site,
) -> None:
    spec = (await site.client().get("/openapi.json")).json()
    for path in ("/api/v1/auth/email/verify", "/api/v1/auth/email/pickup"):
        unauthorized = spec["paths"][path]["post"]["responses"]["401"]["description"]
        assert unauthorized.startswith("second_factor_required"), path
    second = spec["paths"]["/api/v1/auth/second-factor"]["post"]["responses"]
    assert {"200", "400", "401"} <= set(second)
