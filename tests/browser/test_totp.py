"""TOTP end to end in Chromium: set up an authenticator app on /account (the key read from
the page, codes from pyotp as the app would make them), keep the recovery codes, sign out,
sign in with the email code and a TOTP code on the second-factor step, then "lose the phone"
and sign in with a recovery code. axe-core on every state on the way."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pyotp
from playwright.sync_api import BrowserContext, Page, expect

from support import LiveServer, SmtpSink, assert_no_axe_violations, mail_text

from .flows import (
    WAIT_MS,
    open_login,
    sign_in_on_signin_page,
    sign_in_phone,
    type_confirm_code,
)

EMAIL = "ada@example.test"


def next_step_code(secret: str) -> str:
    """The app's code for the coming time step: the step of the set-up code is used, and
    one step ahead is within the accepted skew."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def sign_out(page: Page, server: LiveServer) -> None:
    page.locator("#sign-out").click()
    expect(page).to_have_url(f"{server.url}/signin", timeout=WAIT_MS)


def second_factor_step(page: Page, sink: SmtpSink) -> None:
    sign_in_on_signin_page(page, sink, EMAIL)
    expect(page.locator("#factor-code")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#second-factor-intro")).to_contain_text("second factor")


def set_up_totp(page: Page, *, check_axe: bool = False) -> tuple[str, list[str]]:
    """On /account: set up the app (a wrong code first, then the app's); the key read
    from the page and the recovery codes shown once."""
    axe = assert_no_axe_violations if check_axe else (lambda page: None)
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator("#totp-qr svg")).to_be_visible(timeout=WAIT_MS)
    secret = page.locator("#totp-secret").inner_text().strip()
    assert len(secret) == 32
    axe(page)
    page.locator("#totp-code").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#totp-verify-error")).to_contain_text("does not match")
    expect(page.locator("#totp-code")).to_have_attribute("aria-invalid", "true")
    axe(page)
    page.locator("#totp-code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()

    codes = page.locator("#recovery-list li")
    expect(codes).to_have_count(10, timeout=WAIT_MS)
    recovery = [c.strip() for c in codes.all_inner_texts()]
    expect(page.locator("#recovery-heading")).to_be_focused()
    axe(page)
    page.get_by_role("button", name="I saved them").click()
    expect(page.locator("#totp-status")).to_contain_text("On", timeout=WAIT_MS)
    expect(page.locator("#recovery-left")).to_have_text("10")
    axe(page)
    return secret, recovery


def test_set_up_totp_then_sign_in_with_it_and_with_a_recovery_code(
    live_server: Callable[..., LiveServer], smtp_sink: SmtpSink, desktop: BrowserContext
) -> None:
    server = live_server()
    page = sign_in_phone(desktop, server, smtp_sink, EMAIL)
    expect(page.get_by_role("button", name="Set up an authenticator app")).to_be_visible()
    assert_no_axe_violations(page)

    secret, recovery = set_up_totp(page, check_axe=True)

    # a new device: email code, then a wrong code, then the app's
    sign_out(page, server)
    second_factor_step(page, smtp_sink)
    assert_no_axe_violations(page)
    page.locator("#factor-code").fill("000000")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#factor-code-error")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(page)
    page.locator("#factor-code").fill(next_step_code(secret))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    expect(page.locator("#email")).to_have_text(EMAIL)

    # the phone is lost: a recovery code instead
    sign_out(page, server)
    second_factor_step(page, smtp_sink)
    page.locator("#factor-code").fill(recovery[0].upper())
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    expect(page.locator("#recovery-left")).to_have_text("9")

    # require a second factor: then the app, the last one, cannot be turned off
    page.get_by_role("button", name="Require a second factor").click()
    expect(page.locator("#mfa-required-status")).to_contain_text("On", timeout=WAIT_MS)
    assert_no_axe_violations(page)
    page.locator("#totp-off-code").fill(recovery[1])
    page.get_by_role("button", name="Turn off").click()
    expect(page.locator("#totp-off-error")).to_contain_text("last second factor")
    assert_no_axe_violations(page)

    # stop requiring it (no code: this session signed in with a recovery code a moment
    # ago, a fresh second factor), then turn the app off
    page.get_by_role("button", name="Stop requiring a second factor").click()
    expect(page.get_by_role("button", name="Require a second factor")).to_be_visible(
        timeout=WAIT_MS
    )
    page.locator("#totp-off-code").fill(recovery[2])
    page.get_by_role("button", name="Turn off").click()
    expect(page.get_by_role("button", name="Set up an authenticator app")).to_be_visible(
        timeout=WAIT_MS
    )
    expect(page.locator("#mfa-required")).to_have_count(0)


def test_a_link_opened_on_another_device_leads_to_the_second_factor_step(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    """The browser that asked waits on its code form; the link is confirmed on the phone;
    the waiting page moves on to the second-factor step by itself (signin.js), and the
    app's code signs it in."""
    server = live_server()
    page = sign_in_phone(desktop, server, smtp_sink, EMAIL)
    secret, _ = set_up_totp(page)
    sign_out(page, server)

    before = len(smtp_sink)
    page.locator("#email").fill(EMAIL)
    page.get_by_role("button", name="Email me a sign-in code").click()
    expect(page.locator("#code")).to_be_visible(timeout=WAIT_MS)
    found = re.search(
        r"https?://\S+/auth/email/\S+", mail_text(smtp_sink.latest_to(EMAIL, after=before))
    )
    assert found
    elsewhere = phone.new_page()
    elsewhere.goto(found.group(0))
    elsewhere.locator("#confirm").click()
    expect(elsewhere.locator("h1")).to_have_text("Confirmed", timeout=WAIT_MS)

    expect(page.locator("#factor-code")).to_be_visible(timeout=WAIT_MS)
    assert "mfa" not in page.url  # the token rode in a form, not the address
    page.locator("#factor-code").fill(next_step_code(secret))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)


def test_approving_a_qr_sign_in_asks_the_phone_for_its_app_code_first(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    secret, _ = set_up_totp(mobile)
    login = open_login(desktop, server)

    mobile.goto(login.qr_url())
    mobile.locator("#approve").click()
    expect(mobile.locator("#step-up")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(mobile)
    mobile.locator("#step-up-code").fill(next_step_code(secret))
    mobile.locator("#step-up-approve").click()

    shown = mobile.locator("#confirm-code")
    expect(shown).to_have_text(re.compile(r"^\s*\d{3} \d{3}\s*$"), timeout=WAIT_MS)
    type_confirm_code(login, re.sub(r"\D", "", shown.inner_text()))
    expect(login.page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
