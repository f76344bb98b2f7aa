"""Issue 3, end to end in Chromium: the camera-less user code typed at /link, the confirm
code typed on the requester, five wrong confirm codes, and the tap and auto policies (client
IPs set through the trusted proxy's X-Forwarded-For header)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from support import LiveServer, SmtpSink

from .flows import (
    WAIT_MS,
    approval_details,
    approve_and_read_confirm_code,
    assert_signed_in_without_reload,
    confirm_code_was_asked,
    expect_approved_on_phone,
    mark_page,
    open_login,
    sign_in_phone,
    type_confirm_code,
)

EMAIL = "grace@example.test"
PROXY = ("127.0.0.1/32",)


@pytest.mark.parametrize(
    ("user_code_format", "typed"),
    [
        ("digits", lambda c: c.replace(" ", "")),
        ("digits", lambda c: c.replace(" ", "-")),
        ("digits", lambda c: f"  {c[:2]} {c[2:].replace(' ', '')}  "),
        ("base20", lambda c: c.replace("-", " ").lower()),
    ],
    ids=["digits-plain", "digits-dash", "digits-spaces", "base20-lowercase-spaces"],
)
def test_camera_less_the_phone_types_the_user_code_at_link(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    user_code_format: str,
    typed: Callable[[str], str],
) -> None:
    server = live_server(user_code_format=user_code_format)
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mark_page(login.page)

    # the desktop shows the code under the QR, with where to type it
    line = login.page.locator("#user-code-line")
    expect(line).to_be_visible()
    expect(line).to_contain_text(f"{server.url}/link")
    code = login.user_code()
    pattern = (
        r"\d{3} \d{3}"
        if user_code_format == "digits"
        else r"[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}"
    )
    assert re.fullmatch(pattern, code), code

    mobile.goto(f"{server.url}/link")
    mobile.get_by_label("Code shown on the device you want to sign in").fill(typed(code))
    mobile.get_by_role("button", name="Continue").click()

    # the same approval screen as a scan
    expect(mobile.get_by_role("heading", name="Sign in on another device?")).to_be_visible(
        timeout=WAIT_MS
    )
    details = approval_details(mobile)
    assert details["device"] == "Chrome on Linux"
    assert details["network"] == "Same network as this phone"
    expect(login.page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)

    confirm = approve_and_read_confirm_code(mobile)
    type_confirm_code(login, confirm)
    assert_signed_in_without_reload(login, server, EMAIL)


def test_a_wrong_user_code_gets_one_plain_refusal(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    digits = re.sub(r"\D", "", login.user_code())
    wrong = f"{(int(digits) + 1) % 10**6:06d}"

    mobile.goto(f"{server.url}/link")
    field = mobile.locator("#user-code")
    field.fill(wrong)
    field.press("Enter")
    expect(mobile.locator("#link-error")).to_be_visible(timeout=WAIT_MS)
    expect(mobile.locator("#user-code")).to_have_attribute("aria-invalid", "true")
    expect(mobile.locator("#approve")).to_have_count(0)
    # nothing happened on the desktop
    expect(login.page.locator("#state-waiting")).to_be_visible()


def test_confirm_code_the_phone_shows_it_and_the_desktop_types_it(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()  # confirm="code" is the default
    assert server.settings.confirm == "code"
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mark_page(login.page)
    mobile.goto(login.qr_url())
    approval_details(mobile)

    code = approve_and_read_confirm_code(mobile)
    expect(mobile.get_by_role("heading")).to_contain_text("type this code on the other device")
    # the desktop is not signed in by the tap alone
    expect(login.page.locator("#state-confirm")).to_be_visible(timeout=WAIT_MS)
    expect(login.page).to_have_url(f"{server.url}/login")

    type_confirm_code(login, code)
    assert_signed_in_without_reload(login, server, EMAIL)
    assert confirm_code_was_asked(login.page)


def test_five_wrong_confirm_codes_burn_the_request_and_the_desktop_says_why(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    page = login.page
    mobile.goto(login.qr_url())
    code = approve_and_read_confirm_code(mobile)

    expect(page.locator("#state-confirm")).to_be_visible(timeout=WAIT_MS)
    field, error = page.locator("#confirm-code"), page.locator("#confirm-error")
    for attempt in range(1, 5):
        wrong = f"{(int(code) + attempt) % 10**6:06d}"
        field.fill(wrong)
        field.press("Enter")
        expect(error).to_contain_text("not right", timeout=WAIT_MS)
        left = 5 - attempt
        expect(error).to_contain_text(f"{left} attempt{'s' if left > 1 else ''} left")
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_be_focused()
        page.evaluate(
            "() => { document.querySelector('qr-login').shadowRoot"
            ".getElementById('confirm-error').textContent = ''; }"
        )

    field.fill(f"{(int(code) + 5) % 10**6:06d}")
    field.press("Enter")
    denied = page.locator("#state-denied")
    expect(denied).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#denied-text")).to_contain_text(re.compile("too many wrong", re.I))
    # plain words: nobody denied anything, the code was blocked
    expect(denied.get_by_role("heading")).to_have_text("Sign-in blocked")
    expect(page.locator("#denied-text")).to_contain_text(
        "Too many wrong codes — this QR code was blocked to protect you. Get a new code"
    )
    expect(denied).not_to_contain_text("denied")
    expect(page.locator("#state-confirm")).to_be_hidden()
    expect(denied.get_by_role("button", name="Show a new code")).to_be_visible()
    assert page.url == f"{server.url}/login"

    # the right code no longer helps: the request is burned
    [request_id] = login.request_ids()
    reply = page.evaluate(
        """async ([id, code]) => {
          const res = await fetch(`/api/v1/login-requests/${id}/session`, {
            method: 'POST', body: JSON.stringify({confirm_code: code}),
            headers: {'Content-Type': 'application/json', 'Qrlogin-Client': 'browser'}});
          return [res.status, (await res.json()).error];
        }""",
        [request_id, code],
    )
    assert reply == [403, "access_denied"]
    denied.get_by_role("button", name="Show a new code").click()
    expect(page.locator("#state-waiting")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#qr svg")).to_be_visible(timeout=WAIT_MS)


def test_tap_policy_approval_alone_signs_the_requester_in(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server(confirm="tap")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mark_page(login.page)
    code = login.user_code()

    mobile.goto(f"{server.url}/link")
    mobile.locator("#user-code").fill(code)
    mobile.locator("#user-code").press("Enter")
    mobile.locator("#approve").click()
    expect_approved_on_phone(mobile)
    expect(mobile.locator("#confirm-code")).to_have_count(0)

    assert_signed_in_without_reload(login, server, EMAIL)
    assert not confirm_code_was_asked(login.page)


@pytest.mark.parametrize(
    ("desktop_ip", "phone_ip"),
    [("203.0.113.7", "203.0.113.7"), ("2001:db8:5:6::10", "2001:db8:5:6:a:b:c:d")],
    ids=["same-ipv4", "same-ipv6-64"],
)
def test_auto_policy_on_the_same_network_asks_no_code(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
    desktop_ip: str,
    phone_ip: str,
) -> None:
    server = live_server(confirm="auto", trusted_proxies=PROXY)
    desktop = make_context("desktop", extra_http_headers={"X-Forwarded-For": desktop_ip})
    phone = make_context("phone", extra_http_headers={"X-Forwarded-For": phone_ip})
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mark_page(login.page)

    mobile.goto(login.qr_url())
    details = approval_details(mobile)
    assert details["ip"] == desktop_ip
    assert details["network"] == "Same network as this phone"
    expect(mobile.get_by_role("alert")).to_have_count(0)
    mobile.locator("#approve").click()
    expect_approved_on_phone(mobile)

    assert_signed_in_without_reload(login, server, EMAIL)
    assert not confirm_code_was_asked(login.page)


def test_auto_policy_on_different_networks_warns_and_asks_for_the_code(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
) -> None:
    server = live_server(confirm="auto", trusted_proxies=PROXY)
    desktop = make_context("desktop", extra_http_headers={"X-Forwarded-For": "203.0.113.7"})
    phone = make_context("phone", extra_http_headers={"X-Forwarded-For": "198.51.100.20"})
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mark_page(login.page)

    mobile.goto(login.qr_url())
    details = approval_details(mobile)
    assert details["ip"] == "203.0.113.7"
    assert details["network"] == "A different network"
    warning = mobile.get_by_role("alert")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("not on your network")

    code = approve_and_read_confirm_code(mobile)
    type_confirm_code(login, code)
    assert_signed_in_without_reload(login, server, EMAIL)
    assert confirm_code_was_asked(login.page)
