"""Server-rendered pages: /login, the approval page /q/{handle}, /signin by code and by link,
/account, /logout, /dev/outbox; CSRF on every form, security headers and cookie attributes."""

from __future__ import annotations

import re

import httpx
import pytest
from web_support import (
    BROWSER,
    CHROME_ON_WINDOWS,
    SAFARI_ON_IPHONE,
    Approver,
    Site,
    code_in,
    csrf_of,
    link_token_in,
    set_cookies,
)

from qrlogin.store.tables import email_logins, sessions, users


async def page(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, str]:
    """GET a page; the response and the CSRF token in its forms."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response, csrf_of(response.text)


async def ask_for_mail(site: Site, client: httpx.AsyncClient, email: str, nxt: str = "") -> str:
    """Fill in /signin; the CSRF token of the code step."""
    _, csrf = await page(client, f"/signin?next={nxt}" if nxt else "/signin")
    response = await client.post("/signin", data={"csrf": csrf, "email": email, "next": nxt})
    assert response.status_code == 200, response.text
    assert 'action="/signin/code"' in response.text
    return csrf_of(response.text)


async def phone(site: Site) -> Approver:
    return await site.sign_in(kind="browser", user_agent=SAFARI_ON_IPHONE)


# -- requester page ------------------------------------------------------------------------


async def test_login_page_renders_and_gives_the_browser_its_cookies(site: Site) -> None:
    client = site.client()

    response = await client.get("/login")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<qr-login" in response.text
    assert '<script type="module" src="/static/qrlogin.js"' in response.text
    assert {"qrl_csrf", "qrl_browser"} <= set(set_cookies(response))


async def test_login_page_says_what_it_needs_without_javascript_and_shows_a_loading_line(
    site: Site,
) -> None:
    response = await site.client().get("/login")

    widget = response.text[response.text.index("<qr-login") : response.text.index("</qr-login>")]
    assert "Getting a sign-in code…" in widget
    noscript = widget[widget.index("<noscript>") : widget.index("</noscript>")]
    assert "needs JavaScript" in noscript
    assert 'href="/signin"' in noscript


async def test_qr_svg_encodes_the_qr_url_for_the_requester_only(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)

    response = await requester.client.get(f"{requester.path}/qr.svg", headers=requester.headers())
    stranger = await site.client().get(f"{requester.path}/qr.svg")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in response.text
    assert requester.created["qr_url"] in response.text
    assert stranger.status_code == 401
    assert requester.handle not in stranger.text


@pytest.mark.parametrize(("signed_in", "where"), [(False, "/login"), (True, "/account")])
async def test_home_sends_you_where_you_belong(site: Site, signed_in: bool, where: str) -> None:
    client = (await phone(site)).client if signed_in else site.client()

    response = await client.get("/")

    assert response.status_code == 303
    assert response.headers["location"] == where


# -- approval page -------------------------------------------------------------------------


async def test_approval_page_signed_out_holds_the_request_and_sends_to_signin(site: Site) -> None:
    requester = await site.new_requester("api")

    response = await site.client().get(f"/q/{requester.handle}")

    assert response.status_code == 303
    # back through the hold cookie, not the handle (it rotates away while the phone signs in)
    assert response.headers["location"] == "/signin?next=/q/continue"
    hold = set_cookies(response)["qrl_hold"]
    assert "HttpOnly" in hold and re.search(r"Max-Age=\d+", hold)
    state = await requester.current()
    assert state["status"] == "pending"  # nothing is claimed before someone is signed in
    assert state["approver_signing_in"] is True
    # a handle alone learns nothing: an unknown one gets the same reply (its hold is empty)
    unknown = await site.client().get("/q/" + "A" * len(requester.handle))
    assert (unknown.status_code, unknown.headers["location"], unknown.content) == (
        response.status_code,
        response.headers["location"],
        response.content,
    )
    assert "qrl_hold" in set_cookies(unknown)


async def test_first_run_dead_end_the_approval_survives_signing_in_past_a_rotation(
    site: Site,
) -> None:
    requester = await site.new_requester("api", user_agent=CHROME_ON_WINDOWS)
    client = site.client()
    first = await client.get(f"/q/{requester.handle}")
    signin, _ = await page(client, first.headers["location"])
    assert re.search(
        r"To approve the sign-in on <strong>Chrome on Windows</strong>, first sign in", signin.text
    )
    email = site.new_email()
    csrf = await ask_for_mail(site, client, email, "/q/continue")
    site.clock.advance(95)  # reading the mail: the QR's handle rotated three times meanwhile
    stale = await (await phone(site)).client.get(f"/q/{requester.handle}")
    assert stale.status_code == 404

    response = await client.post(
        "/signin/code",
        data={
            "csrf": csrf,
            "email": email,
            "code": code_in(site.last_mail(email)),
            "next": "/q/continue",
        },
    )
    assert response.headers["location"] == "/q/continue"
    resumed = await client.get("/q/continue")

    assert resumed.status_code == 303
    approval, _ = await page(client, resumed.headers["location"])
    assert 'id="approve"' in approval.text
    assert (await requester.current())["status"] == "scanned"
    assert "qrl_hold" in set_cookies(resumed) and "Max-Age=0" in set_cookies(resumed)["qrl_hold"]


async def test_approval_page_shows_the_requester_with_approve_and_deny(site: Site) -> None:
    requester = await site.new_requester(
        "api", device_name="Office PC", ip="203.0.113.5", user_agent=CHROME_ON_WINDOWS
    )
    approver = await phone(site)
    site.clock.advance(25)  # within the handle's 30 s life: nobody needs to have rotated it

    response, csrf = await page(approver.client, f"/q/{requester.handle}")

    html = response.text
    assert re.search(r'id="req-device">Office PC<', html)
    assert re.search(r'id="req-browser">Chrome on Windows<', html)
    assert re.search(r'id="req-ip">203\.0\.113\.5<', html)
    assert re.search(r'id="req-age">25 seconds ago<', html)
    assert re.search(r'id="req-network">A different network<', html)
    for action, label in (("approve", "Approve"), ("deny", "Deny")):
        form = re.search(
            rf'<form method="post" action="/q/{requester.handle}/{action}">(.*?)</form>', html, re.S
        )
        assert form, action
        assert f'value="{csrf}"' in form.group(1)
        assert f">{label}</button>" in form.group(1)
    assert (await requester.current())["status"] == "scanned"


async def test_approval_page_on_the_same_network_says_so(site: Site) -> None:
    requester = await site.new_requester("api")
    approver = await phone(site)

    response, _ = await page(approver.client, f"/q/{requester.handle}")

    assert re.search(r'id="req-network">Same network as this phone<', response.text)


async def test_approve_form_shows_the_confirm_code_that_signs_the_requester_in(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await phone(site)
    _, csrf = await page(approver.client, f"/q/{requester.handle}")

    response = await approver.client.post(f"/q/{requester.handle}/approve", data={"csrf": csrf})

    # redirect after POST: Back and reload show the page again, never "resubmit the form?"
    assert response.status_code == 303
    assert response.headers["location"] == f"/q/{requester.handle}"
    shown = await approver.client.get(response.headers["location"])
    match = re.search(r'id="confirm-code"[^>]*>(\d{3}) (\d{3})<', shown.text)
    assert match, shown.text
    assert (await requester.current())["status"] == "approved"
    exchanged = await requester.exchange("".join(match.groups()))
    assert exchanged.status_code == 200
    assert exchanged.json()["user"]["id"] == approver.user["id"]
    # the approval page, reloaded, now says how it ended
    ended = await approver.client.get(f"/q/{requester.handle}")
    assert ended.status_code == 200
    assert re.search(r"<h1[^>]*>Signed in on [^<]+ ✓</h1>", ended.text), ended.text
    assert 'id="done"' in ended.text


async def test_deny_form_denies(site: Site) -> None:
    requester = await site.new_requester("api")
    approver = await phone(site)
    _, csrf = await page(approver.client, f"/q/{requester.handle}")

    response = await approver.client.post(f"/q/{requester.handle}/deny", data={"csrf": csrf})

    assert response.status_code == 303
    shown = await approver.client.get(response.headers["location"])
    assert 'id="denied-text"' in shown.text
    assert (await requester.current())["status"] == "denied"


@pytest.mark.parametrize("token", ["missing", "wrong", "another browser's"])
@pytest.mark.parametrize("action", ["approve", "deny"])
async def test_approval_form_without_the_right_csrf_token_is_refused(
    site: Site, action: str, token: str
) -> None:
    requester = await site.new_requester("api")
    approver = await phone(site)
    _, csrf = await page(approver.client, f"/q/{requester.handle}")
    data = {
        "missing": {},
        "wrong": {"csrf": csrf[:-4] + "0000"},
        "another browser's": {"csrf": (await page(site.client(), "/signin"))[1]},
    }[token]

    response = await approver.client.post(f"/q/{requester.handle}/{action}", data=data)

    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"
    assert (await requester.current())["status"] == "scanned"


async def test_approval_page_for_an_unusable_handle_says_so(site: Site) -> None:
    approver = await phone(site)

    response = await approver.client.get("/q/AAAAAAAAAAAAAAAAAAAAAA")

    assert response.status_code == 404
    assert "This code cannot be used" in response.text


async def test_unknown_approval_action_is_not_found(site: Site) -> None:
    requester = await site.new_requester("api")
    approver = await phone(site)
    _, csrf = await page(approver.client, f"/q/{requester.handle}")

    response = await approver.client.post(f"/q/{requester.handle}/grant", data={"csrf": csrf})

    assert response.status_code == 404
    assert (await requester.current())["status"] == "scanned"


async def test_back_and_reload_a_typed_code_redirects_after_post_to_the_approval_page(
    site: Site,
) -> None:
    requester = await site.new_requester("api")
    approver = await phone(site)
    _, csrf = await page(approver.client, "/link")

    response = await approver.client.post(
        "/link", data={"csrf": csrf, "user_code": requester.created["user_code"]}
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/q/{requester.handle}"
    shown, _ = await page(approver.client, response.headers["location"])
    assert 'id="approve"' in shown.text
    assert (await requester.current())["status"] == "scanned"


@pytest.mark.parametrize(
    ("method", "path", "status", "title"),
    [
        ("GET", "/q/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/approve", 405, "cannot be opened like that"),
        ("GET", "/no/such/page", 404, "Page not found"),
    ],
)
async def test_wrong_methods_and_unknown_pages_get_an_html_page_the_api_keeps_json(
    site: Site, method: str, path: str, status: int, title: str
) -> None:
    client = site.client()

    person = await client.request(method, path, headers={"accept": "text/html,*/*"})
    api = await client.request(method, f"/api/v1{path}", headers={"accept": "text/html,*/*"})
    program = await client.request(method, path)

    assert person.status_code == status
    assert person.headers["content-type"].startswith("text/html")
    assert title in person.text and 'href="/"' in person.text
    assert api.headers["content-type"].startswith("application/json")
    assert program.status_code == status
    assert program.headers["content-type"].startswith("application/json")


# -- sign in by code -----------------------------------------------------------------------


async def test_signin_by_code_through_the_forms_lands_on_account(site: Site) -> None:
    client = site.client()
    email = site.new_email("grace")
    csrf = await ask_for_mail(site, client, email)

    response = await client.post(
        "/signin/code",
        data={"csrf": csrf, "email": email, "code": code_in(site.last_mail(email)), "next": ""},
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    assert "HttpOnly" in set_cookies(response)["qrl_session"]
    account, _ = await page(client, "/account")
    assert re.search(rf'id="email">{re.escape(email)}<', account.text)
    assert re.search(r'id="display-name">grace\d+<', account.text)


async def test_signin_from_a_qr_link_comes_back_to_the_approval_page(site: Site) -> None:
    requester = await site.new_requester("api")
    client = site.client()
    first = await client.get(f"/q/{requester.handle}")
    email = site.new_email()
    csrf = await ask_for_mail(site, client, email, first.headers["location"].split("next=")[1])

    response = await client.post(
        "/signin/code",
        data={
            "csrf": csrf,
            "email": email,
            "code": code_in(site.last_mail(email)),
            "next": "/q/continue",
        },
    )

    assert response.headers["location"] == "/q/continue"
    resumed = await client.get(response.headers["location"])
    assert resumed.headers["location"] == f"/q/{requester.handle}"
    approval, _ = await page(client, resumed.headers["location"])
    assert 'id="approve"' in approval.text


async def test_a_hold_whose_request_was_picked_up_elsewhere_says_so(site: Site) -> None:
    requester = await site.new_requester("api")
    client = site.client()
    await client.get(f"/q/{requester.handle}")
    await (await phone(site)).client.get(f"/q/{requester.handle}")  # another phone claims it
    email = site.new_email()
    csrf = await ask_for_mail(site, client, email, "/q/continue")
    await client.post(
        "/signin/code",
        data={
            "csrf": csrf,
            "email": email,
            "code": code_in(site.last_mail(email)),
            "next": "/q/continue",
        },
    )

    resumed = await client.get("/q/continue")

    assert resumed.status_code == 404
    assert "This sign-in is no longer waiting" in resumed.text


OFF_SITE = [
    "//evil.example/q/x",
    "https://evil.example/",
    "/\\evil.example",
    # issue 11 item 1: what a browser drops or reads as a slash
    "/\t/evil.example/phish",
    "/\n/evil.example/phish",
    "/\r/evil.example/phish",
    " //evil.example",
    "\x00//evil.example",
    "/\t\\evil.example",
]


@pytest.mark.parametrize("nxt", OFF_SITE, ids=range(len(OFF_SITE)))
async def test_signin_never_redirects_off_site(site: Site, nxt: str) -> None:
    client = site.client()
    email = site.new_email()
    csrf = await ask_for_mail(site, client, email)

    response = await client.post(
        "/signin/code",
        data={"csrf": csrf, "email": email, "code": code_in(site.last_mail(email)), "next": nxt},
    )

    assert response.headers["location"] == "/account"


async def test_wrong_code_on_the_form_shows_an_error_and_signs_nobody_in(site: Site) -> None:
    client = site.client()
    email = site.new_email()
    csrf = await ask_for_mail(site, client, email)
    wrong = f"{(int(code_in(site.last_mail(email))) + 1) % 10**6:06d}"

    response = await client.post(
        "/signin/code", data={"csrf": csrf, "email": email, "code": wrong, "next": ""}
    )

    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert "qrl_session" not in client.cookies
    assert await site.count(sessions) == 0


async def test_bad_address_on_the_form_shows_an_error(site: Site) -> None:
    client = site.client()
    _, csrf = await page(client, "/signin")

    response = await client.post("/signin", data={"csrf": csrf, "email": "nobody", "next": ""})

    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert site.outbox == []


@pytest.mark.parametrize("path", ["/signin", "/signin/code", "/logout"])
async def test_signin_forms_without_a_csrf_token_are_refused(site: Site, path: str) -> None:
    client = site.client()
    await page(client, "/signin")
    email = site.new_email()

    response = await client.post(path, data={"email": email, "code": "123456", "next": ""})

    assert response.status_code == 403
    assert site.outbox == []
    assert await site.count(email_logins) == 0


async def test_account_signed_out_redirects_to_signin(site: Site) -> None:
    response = await site.client().get("/account")

    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/account"


async def test_sign_out_form_revokes_the_session(site: Site) -> None:
    approver = await phone(site)
    token = approver.client.cookies["qrl_session"]
    _, csrf = await page(approver.client, "/account")

    response = await approver.client.post("/logout", data={"csrf": csrf})

    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    assert "qrl_session" not in approver.client.cookies
    me = await site.client().get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 401


# -- sign in by link -----------------------------------------------------------------------


async def test_link_page_shows_a_confirm_button_and_changes_nothing(site: Site) -> None:
    client = site.client()
    email = site.new_email()
    await ask_for_mail(site, client, email)
    token = link_token_in(site.last_mail(email))
    before = [await site.rows(t) for t in (email_logins, users, sessions)]

    for visitor in (client, site.client(), site.client()):  # the asker, then mail scanners
        response, _ = await page(visitor, f"/auth/email/{token}")
        assert f'action="/auth/email/{token}"' in response.text
        assert 'id="confirm"' in response.text

    assert [await site.rows(t) for t in (email_logins, users, sessions)] == before


async def test_code_still_works_after_the_link_was_looked_at(site: Site) -> None:
    client = site.client()
    email = site.new_email()
    csrf = await ask_for_mail(site, client, email)
    mail = site.last_mail(email)
    await page(site.client(), f"/auth/email/{link_token_in(mail)}")

    response = await client.post(
        "/signin/code", data={"csrf": csrf, "email": email, "code": code_in(mail), "next": ""}
    )

    assert response.status_code == 303


async def test_link_post_signs_in_the_asking_browser_once(site: Site) -> None:
    client = site.client()
    email = site.new_email()
    await ask_for_mail(site, client, email)
    token = link_token_in(site.last_mail(email))
    await page(site.client(), f"/auth/email/{token}")  # a mail scanner got there first
    _, csrf = await page(client, f"/auth/email/{token}")

    response = await client.post(f"/auth/email/{token}", data={"csrf": csrf})

    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    assert (await client.get("/api/v1/me")).status_code == 200
    again = await client.post(f"/auth/email/{token}", data={"csrf": csrf})
    assert again.status_code == 404
    assert "cannot be used" in again.text
    assert (await client.get(f"/auth/email/{token}")).status_code == 404
    assert await site.count(sessions) == 1


async def test_link_post_goes_back_to_where_signin_started(site: Site) -> None:
    requester = await site.new_requester("api")
    client = site.client()
    email = site.new_email()
    await ask_for_mail(site, client, email, f"/q/{requester.handle}")
    token = link_token_in(site.last_mail(email))
    _, csrf = await page(client, f"/auth/email/{token}")

    response = await client.post(f"/auth/email/{token}", data={"csrf": csrf})

    assert response.headers["location"] == f"/q/{requester.handle}"


async def test_link_post_without_csrf_is_refused_and_the_link_still_works(site: Site) -> None:
    client = site.client()
    email = site.new_email()
    await ask_for_mail(site, client, email)
    token = link_token_in(site.last_mail(email))
    _, csrf = await page(client, f"/auth/email/{token}")

    refused = await client.post(f"/auth/email/{token}")

    assert refused.status_code == 403
    assert (await client.post(f"/auth/email/{token}", data={"csrf": csrf})).status_code == 303


async def test_link_opened_in_another_browser_hands_off_to_the_asking_one(site: Site) -> None:
    asking = site.client(user_agent=CHROME_ON_WINDOWS, ip="203.0.113.5")
    email = site.new_email()
    await ask_for_mail(site, asking, email)
    token = link_token_in(site.last_mail(email))
    assert (await asking.post("/api/v1/auth/email/pickup", headers=BROWSER)).status_code == 409
    other = site.client(user_agent=SAFARI_ON_IPHONE)

    shown, csrf = await page(other, f"/auth/email/{token}")
    confirmed = await other.post(f"/auth/email/{token}", data={"csrf": csrf})

    assert "Chrome on Windows" in shown.text and "203.0.113.5" in shown.text
    assert confirmed.status_code == 200
    assert "Confirmed" in confirmed.text
    assert "qrl_session" not in other.cookies
    picked = await asking.post("/api/v1/auth/email/pickup", headers=BROWSER)
    assert picked.status_code == 200
    assert picked.json()["access_token"] is None
    assert picked.json().get("refresh_token") is None
    me = await asking.get("/api/v1/me")
    assert me.json()["user"]["email"] == email
    assert (await asking.post("/api/v1/auth/email/pickup", headers=BROWSER)).status_code == 409
    assert (await other.get(f"/auth/email/{token}")).status_code == 404
    assert await site.count(sessions) == 1


async def test_pickup_by_a_third_browser_gets_nothing(site: Site) -> None:
    asking = site.client()
    email = site.new_email()
    await ask_for_mail(site, asking, email)
    token = link_token_in(site.last_mail(email))
    other = site.client()
    _, csrf = await page(other, f"/auth/email/{token}")
    await other.post(f"/auth/email/{token}", data={"csrf": csrf})

    stranger = site.client()
    await page(stranger, "/signin")
    response = await stranger.post("/api/v1/auth/email/pickup", headers=BROWSER)

    assert response.status_code == 409
    assert await site.count(sessions) == 0


# -- dev outbox ----------------------------------------------------------------------------


async def test_dev_outbox_shows_sent_mail_in_dev_mode(site: Site) -> None:
    email = site.new_email()
    await site.client().post("/api/v1/auth/email/start", json={"email": email})

    response = await site.client().get("/dev/outbox")

    assert response.status_code == 200
    assert site.last_mail(email).subject in response.text


async def test_dev_outbox_is_not_there_without_dev(make_site) -> None:
    site = await make_site(dev=False)
    await site.client().post("/api/v1/auth/email/start", json={"email": "a@example.com"})

    response = await site.client().get("/dev/outbox")

    assert response.status_code == 404
    assert "sign-in code" not in response.text


# -- headers and cookies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/login", "/signin", "/api/v1/me", "/no/such/page", "/static/site.css", "/healthz"]
)
async def test_every_response_carries_the_security_headers(site: Site, path: str) -> None:
    response = await site.client().get(path)

    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


async def browse_everything(site: Site) -> None:
    """One sign-in by the forms, one QR login by a browser requester, both sign-outs: every
    place that sets or clears a cookie."""
    client = site.client()
    email = site.new_email()
    csrf = await ask_for_mail(site, client, email)
    await client.post(
        "/signin/code",
        data={"csrf": csrf, "email": email, "code": code_in(site.last_mail(email)), "next": ""},
    )
    requester = await site.new_requester("browser")
    await requester.client.get("/login")
    approver = await site.sign_in(kind="browser")
    await site.signed_in(requester, approver)
    _, csrf = await page(client, "/account")
    await client.post("/logout", data={"csrf": csrf})
    await approver.client.post("/api/v1/logout", headers=BROWSER)


def cookie_name(line: str) -> str:
    return line.split("=", 1)[0]


async def test_cookies_are_httponly_samesite_and_not_secure_over_http(site: Site) -> None:
    await browse_everything(site)
    lines = site.set_cookie_lines()

    names = {cookie_name(line) for line in lines}
    assert names == {"qrl_csrf", "qrl_browser", "qrl_session", "qrl_requester"}
    for line in lines:
        assert "Path=/" in line, line
        assert "Secure" not in line, line
        assert "domain=" not in line.lower(), line
        if "Max-Age=0" not in line:  # a cookie being set, not cleared
            assert "HttpOnly" in line, line
            assert re.search(r"samesite=(lax|strict)", line, re.I), line
    for line in lines:
        if cookie_name(line) in ("qrl_csrf", "qrl_requester") and "Max-Age=0" not in line:
            assert "samesite=strict" in line.lower(), line


def cleared(line: str) -> bool:
    return "Max-Age=0" in line


async def test_over_https_every_cookie_is_host_prefixed_and_secure(make_site) -> None:
    site = await make_site(public_url="https://testserver")
    await browse_everything(site)
    lines = [line for line in site.set_cookie_lines() if not cleared(line)]

    names = {cookie_name(line) for line in lines}
    assert names == {
        "__Host-qrl_csrf",
        "__Host-qrl_browser",
        "__Host-qrl_session",
        "__Host-qrl_requester",
    }
    for line in lines:
        assert "Secure" in line, line
        assert "HttpOnly" in line, line
        assert "Path=/" in line, line
        assert "domain=" not in line.lower(), line


async def test_over_https_cleared_cookies_are_secure_too(make_site) -> None:
    site = await make_site(public_url="https://testserver")
    await browse_everything(site)
    lines = [line for line in site.set_cookie_lines() if cleared(line)]

    assert {cookie_name(line) for line in lines} == {
        "__Host-qrl_session",
        "__Host-qrl_requester",
    }
    for line in lines:
        # a browser ignores a __Host- cookie, even a deletion, without Secure and Path=/
        assert "Secure" in line, line
        assert "Path=/" in line, line


# -- wording and polish (issue 11 item 16) -------------------------------------------------


async def test_wording_started_1_second_ago_is_singular(site: Site) -> None:
    requester = await site.new_requester("api")
    approver = await phone(site)
    site.clock.advance(1)

    response, _ = await page(approver.client, f"/q/{requester.handle}")

    assert re.search(r'id="req-age">1 second ago<', response.text)


async def test_wording_a_wrong_typed_code_does_not_ask_the_phone_for_a_new_one(
    site: Site,
) -> None:
    approver = await phone(site)
    _, csrf = await page(approver.client, "/link")

    response = await approver.client.post("/link", data={"csrf": csrf, "user_code": "999 999"})

    assert response.status_code == 400
    assert "request a new one" not in response.text
    assert "Check the code on the other device" in response.text


async def test_wording_the_activity_list_shows_a_qr_sign_in_once(site: Site) -> None:
    approver = await phone(site)
    requester = await site.new_requester("api")
    await site.signed_in(requester, approver)

    response, _ = await page(approver.client, "/account")

    assert response.text.count('<span class="event">Device signed in</span>') == 1
    # the phone's own email sign-in is its only "New session"
    assert response.text.count('<span class="event">New session</span>') == 1
    stamp = re.search(r'<time datetime="([^"]+)" data-ts=', response.text)
    assert stamp and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp.group(1))


async def test_wording_device_cards_do_not_repeat_the_device_name(site: Site) -> None:
    approver = await phone(site)
    named = await site.new_requester("api", device_name="Office PC", user_agent=CHROME_ON_WINDOWS)
    await site.signed_in(named, approver)

    response, _ = await page(approver.client, "/account/devices")

    cards = re.findall(r'<li class="card device".*?</li>', response.text, re.S)
    this_phone = next(c for c in cards if "This device" in c)
    office = next(c for c in cards if "Office PC" in c)
    # the phone's name is "Safari on iOS": said once; the named PC also says what it runs
    assert this_phone.count("Safari on iOS") == 1
    assert "Chrome on Windows · IP" in office


async def test_wording_the_dev_outbox_shows_the_sign_in_link_as_a_link(site: Site) -> None:
    email = site.new_email()
    await site.client().post("/api/v1/auth/email/start", json={"email": email})

    response = await site.client().get("/dev/outbox")

    token = link_token_in(site.last_mail(email))
    link = f"{site.base_url}/auth/email/{token}"
    assert f'<a href="{link}">{link}</a>' in response.text


# -- issue 11 item 6: what the requester calls itself ----------------------------------------

SPOOF = "qrlogin Security Check\u202e — safe\x00 to approve ✅ " + "x" * 70  # over 100 chars


async def test_requester_device_name_is_cleaned_capped_and_shown_only_as_its_claim(
    site: Site,
) -> None:
    created = await site.client(user_agent=CHROME_ON_WINDOWS).post(
        "/api/v1/login-requests", json={"device_name": SPOOF[:100]}
    )
    assert created.status_code == 201, created.text
    stored = await site.services.store.get_login_request(created.json()["id"])
    assert stored is not None
    name = stored.device_name
    assert name.startswith("qrlogin Security Check — safe to approve ✅ x")
    assert len(name) <= 60
    assert not {"\u202e", "\x00"} & set(name)

    handle = created.json()["qr_url"].rsplit("/q/", 1)[1]
    approver = await phone(site)
    response, csrf = await page(approver.client, f"/q/{handle}")
    html = response.text
    # the facts first, the claim last and labelled as one
    facts = [html.index(f'id="req-{key}"') for key in ("browser", "ip", "network", "age")]
    claim = html.index('id="req-claim"')
    assert max(facts) < claim
    assert re.search(r"It calls itself “<bdi id=\"req-device\">([^<]*)</bdi>”", html)
    assert 'id="req-device">' + name.replace("&", "&amp;") + "<" in html
    assert ">Device<" not in html

    decided = await approver.client.post(f"/q/{handle}/approve", data={"csrf": csrf})
    assert decided.status_code == 303  # redirect after POST, to the approval page
    approved = await approver.client.get(decided.headers["location"])
    instruction = re.search(r'id="confirm-code".*?</p>\s*<p>(.*?)</p>', approved.text, re.S)
    assert instruction, approved.text
    assert "Chrome on Windows" in instruction.group(1)
    assert "qrlogin Security Check" not in approved.text


async def test_a_name_of_nothing_visible_falls_back_to_browser_and_system(site: Site) -> None:
    created = await site.client(user_agent=CHROME_ON_WINDOWS).post(
        "/api/v1/login-requests", json={"device_name": "\u202e\u200b\x00 \t"}
    )
    stored = await site.services.store.get_login_request(created.json()["id"])
    assert stored is not None and stored.device_name == "Chrome on Windows"


async def test_the_link_result_shows_the_device_name_only_as_its_claim(site: Site) -> None:
    created = await site.client(user_agent=CHROME_ON_WINDOWS).post(
        "/api/v1/login-requests", json={"device_name": "Bank\u202eknaB approved ✅"}
    )
    approver = await phone(site)
    _, csrf = await page(approver.client, "/link")
    typed = await approver.client.post(
        "/link", data={"csrf": csrf, "user_code": created.json()["user_code"]}
    )
    assert typed.status_code == 303, typed.text  # redirect after POST, to the approval page
    response = await approver.client.get(typed.headers["location"])
    html = response.text
    assert "\u202e" not in html
    assert 'It calls itself “<bdi id="req-device">BankknaB approved ✅</bdi>”' in html
    assert html.index('id="req-browser"') < html.index('id="req-claim"')
