"""TOTP end to end in Chromium: set up an authenticator app on /account (the key read from
the page, codes from pyotp as the app would make them), keep the recovery codes, sign out,
sign in with the email code and a TOTP code on the second-factor step, then "lose the phone"
and sign in with a recovery code. axe-core on every state on the way."""

from __future__ import annotations

import time
from collections.abc import Callable

import pyotp
from playwright.sync_api import BrowserContext, Page, expect

from support import LiveServer, SmtpSink, assert_no_axe_violations

from .flows import WAIT_MS, sign_in_on_signin_page, sign_in_phone

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


def test_set_up_totp_then_sign_in_with_it_and_with_a_recovery_code(
    live_server: Callable[..., LiveServer], smtp_sink: SmtpSink, desktop: BrowserContext
) -> None:
    server = live_server()
    page = sign_in_phone(desktop, server, smtp_sink, EMAIL)
    setup = page.get_by_role("button", name="Set up an authenticator app")
    expect(setup).to_be_visible()
    assert_no_axe_violations(page)

    # set up: the QR code and the key; a wrong code first, then the app's
    setup.click()
    expect(page.locator("#totp-qr svg")).to_be_visible(timeout=WAIT_MS)
    secret = page.locator("#totp-secret").inner_text().strip()
    assert len(secret) == 32
    assert_no_axe_violations(page)
    page.locator("#totp-code").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#totp-verify-error")).to_contain_text("does not match")
    expect(page.locator("#totp-code")).to_have_attribute("aria-invalid", "true")
    assert_no_axe_violations(page)
    page.locator("#totp-code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()

    # the recovery codes, shown once
    codes = page.locator("#recovery-list li")
    expect(codes).to_have_count(10, timeout=WAIT_MS)
    recovery = [c.strip() for c in codes.all_inner_texts()]
    expect(page.locator("#recovery-heading")).to_be_focused()
    assert_no_axe_violations(page)
    page.get_by_role("button", name="I saved them").click()
    expect(page.locator("#totp-status")).to_contain_text("On", timeout=WAIT_MS)
    expect(page.locator("#recovery-left")).to_have_text("10")
    assert_no_axe_violations(page)

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
