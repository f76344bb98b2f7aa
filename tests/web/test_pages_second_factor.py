"""The pages of the second factor (web/pages.py): /signin's second-factor step after the
email code or the link in the same browser, its form (wrong code, expired token), the step
that signin.js posts to after a picked-up link, and the account page's TOTP section."""

from __future__ import annotations

import re

import httpx
from totp_support import Account, enrolled, latest_code
from web_support import Site, csrf_of, link_token_in, set_cookies

TOKEN_RE = re.compile(r'name="mfa_token" value="([^"]+)"')


async def email_code_form(site: Site, email: str, nxt: str = "") -> tuple[httpx.AsyncClient, str]:
    """A new browser fills in /signin and then its code; the reply's page."""
    client = site.client()
    signin = await client.get("/signin")
    asked = await client.post(
        "/signin", data={"csrf": csrf_of(signin.text), "email": email, "next": nxt}
    )
    assert asked.status_code == 200, asked.text
    code = latest_code(site, email)
    data = {"csrf": csrf_of(asked.text), "email": email, "code": code, "next": nxt}
    step = await client.post("/signin/code", data=data)
    assert step.status_code == 200, step.text
    return client, step.text


def token_in(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "the page has no mfa token field"
    return match.group(1)


async def submit(
    client: httpx.AsyncClient, html: str, code: str | None, nxt: str = ""
) -> httpx.Response:
    data = {"csrf": csrf_of(html), "mfa_token": token_in(html), "next": nxt}
    if code is not None:
        data["code"] = code
    return await client.post("/signin/second-factor", data=data)


async def test_the_email_code_leads_to_the_second_factor_step_not_a_session(site: Site) -> None:
    account = await enrolled(site)
    client, html = await email_code_form(site, account.email)

    assert 'id="second-factor-form"' in html
    assert 'action="/signin/second-factor"' in html
    assert "Code from your authenticator app or a recovery code" in html
    assert token_in(html)
    assert "qrl_session" not in client.cookies
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_a_right_code_signs_in_and_goes_on_to_next(site: Site) -> None:
    account = await enrolled(site)
    client, html = await email_code_form(site, account.email, "/account/devices")

    done = await submit(client, html, account.code(site), "/account/devices")

    assert done.status_code == 303
    assert done.headers["location"] == "/account/devices"
    assert "qrl_session" in set_cookies(done)
    assert (await client.get("/api/v1/me")).json()["user"]["id"] == account.user_id


async def test_a_wrong_code_shows_the_step_again_with_the_token_kept(site: Site) -> None:
    account = await enrolled(site)
    client, html = await email_code_form(site, account.email)

    wrong = await submit(client, html, "000000")

    assert wrong.status_code == 400
    assert 'role="alert"' in wrong.text
    assert "Type the code your authenticator app shows now" in wrong.text
    assert token_in(wrong.text) == token_in(html)
    done = await submit(client, wrong.text, account.recovery_codes[0])
    assert done.status_code == 303 and done.headers["location"] == "/account"


async def test_an_expired_token_goes_back_to_signing_in_with_a_message(site: Site) -> None:
    account = await enrolled(site)
    client, html = await email_code_form(site, account.email)
    site.clock.advance(5 * 60 + 1)

    late = await submit(client, html, account.code(site))

    assert late.status_code == 400
    assert 'action="/signin"' in late.text and 'id="email"' in late.text
    assert "expired or was already used" in late.text


async def test_the_link_in_the_same_browser_leads_to_the_second_factor_step(site: Site) -> None:
    account = await enrolled(site)
    client = site.client()
    signin = await client.get("/signin")
    await client.post("/signin", data={"csrf": csrf_of(signin.text), "email": account.email})
    mail = next(m for m in site.outbox if m.to == account.email and "sign-in code" in m.text)
    link = f"/auth/email/{link_token_in(mail)}"
    confirm = await client.get(link)

    step = await client.post(link, data={"csrf": csrf_of(confirm.text)})

    assert step.status_code == 200
    assert 'id="second-factor-form"' in step.text
    done = await submit(client, step.text, account.code(site))
    assert done.status_code == 303 and done.headers["location"] == "/account"


async def test_the_step_shows_for_a_token_posted_without_a_code(site: Site) -> None:
    """What signin.js does when a picked-up link answers second_factor_required."""
    account = await enrolled(site)
    client, html = await email_code_form(site, account.email)

    shown = await submit(client, html, None)

    assert shown.status_code == 200 and token_in(shown.text) == token_in(html)
    assert 'id="second-factor-form"' in shown.text


async def test_the_account_page_offers_to_set_up_totp_and_then_shows_it_on(site: Site) -> None:
    me = await site.sign_in(kind="browser")
    off = await me.client.get("/account")
    assert "Set up an authenticator app" in off.text and 'src="/static/totp.js"' in off.text

    account: Account = await enrolled(site)
    on = await account.device.get("/account")
    assert 'id="totp-status"' in on.text and 'id="totp-off-form"' in on.text
    assert re.search(r'id="recovery-left">10<', on.text)
    assert "Set up an authenticator app" not in on.text


async def test_a_link_confirmed_elsewhere_is_picked_up_into_the_second_factor_step(
    site: Site,
) -> None:
    """The asking browser's poll (signin.js) gets 401 second_factor_required; its token,
    posted to the step, shows the form there, and the code finishes it in that browser."""
    account = await enrolled(site)
    client = site.client()
    signin = await client.get("/signin")
    asked = await client.post(
        "/signin", data={"csrf": csrf_of(signin.text), "email": account.email}
    )
    mail = next(m for m in site.outbox if m.to == account.email and "sign-in code" in m.text)
    link = f"/auth/email/{link_token_in(mail)}"
    phone = site.client()
    confirm = await phone.get(link)
    handed = await phone.post(link, data={"csrf": csrf_of(confirm.text)})
    assert handed.status_code == 200 and "qrl_session" not in phone.cookies

    picked = await client.post("/api/v1/auth/email/pickup", headers={"qrlogin-client": "browser"})

    assert picked.status_code == 401
    assert picked.json()["error"] == "second_factor_required"
    data = {"csrf": csrf_of(asked.text), "mfa_token": picked.json()["mfa_token"], "next": ""}
    step = await client.post("/signin/second-factor", data=data)
    assert step.status_code == 200 and 'id="second-factor-form"' in step.text
    done = await submit(client, step.text, account.code(site))
    assert done.status_code == 303 and "qrl_session" in set_cookies(done)
