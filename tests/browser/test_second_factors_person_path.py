"""Issue 14's "done when", as a person would do it in Chromium: make an account on the phone,
add an authenticator app (TOTP) and a passkey; sign in on a new laptop with the passkey
alone (the passkey synced to it); sign in on another laptop by QR, the phone stepping up
with its passkey before it approves; then lose the phone and get back in with the email code
and a recovery code. The devices page says how each device proved who it is."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from support import LiveServer, SmtpSink, assert_no_axe_violations

from .flows import WAIT_MS, open_login, sign_in_on_signin_page, type_confirm_code
from .test_passkeys import (  # noqa: F401  (localhost_server is a fixture)
    EMAIL,
    add_passkey,
    credentials,
    localhost_server,
    virtual_authenticator,
)
from .test_totp import set_up_totp


def test_passkey_and_totp_sign_in_a_laptop_a_qr_step_up_and_a_lost_phone(
    localhost_server: LiveServer,  # noqa: F811
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
) -> None:
    server = localhost_server

    # the phone: a new account by email, then an authenticator app and a passkey
    phone = make_context("phone")
    mobile = phone.new_page()
    phone_cdp, phone_authenticator = virtual_authenticator(mobile, phone)
    mobile.goto(f"{server.url}/signin")
    sign_in_on_signin_page(mobile, smtp_sink, EMAIL)
    expect(mobile).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    _, recovery = set_up_totp(mobile)
    add_passkey(mobile, "Phone")
    (passkey,) = credentials(phone_cdp, phone_authenticator)

    # a new laptop with the passkey (synced to its authenticator): the passkey alone
    laptop = make_context("desktop")
    page = laptop.new_page()
    cdp, authenticator = virtual_authenticator(page, laptop)
    cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator, "credential": passkey})
    presence = {"authenticatorId": authenticator, "enabled": False}
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", presence)  # no autofill pick yet
    page.goto(f"{server.url}/signin")
    button = page.get_by_role("button", name="Sign in with a passkey")
    expect(button).to_be_visible(timeout=WAIT_MS)
    page.wait_for_function("() => window.qrloginPasskeys !== undefined")
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {**presence, "enabled": True})
    button.click()
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    expect(page.locator("#email")).to_have_text(EMAIL)

    # the sync brings the laptop's use back to the phone (Chromium's virtual authenticator
    # counts every use, where a synced passkey would say 0; a copy that stayed behind would
    # be refused as a clone)
    (used,) = credentials(cdp, authenticator)
    phone_cdp.send("WebAuthn.clearCredentials", {"authenticatorId": phone_authenticator})
    phone_cdp.send(
        "WebAuthn.addCredential", {"authenticatorId": phone_authenticator, "credential": used}
    )

    # another laptop by QR: the phone must prove its passkey before the approval counts
    login = open_login(make_context("desktop"), server)
    mobile.goto(login.qr_url())
    mobile.locator("#approve").click()
    expect(mobile.locator("#step-up")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(mobile)
    mobile.locator("#step-up-passkey").click()
    shown = mobile.locator("#confirm-code")
    expect(shown).to_have_text(re.compile(r"^\s*\d{3} \d{3}\s*$"), timeout=WAIT_MS)
    type_confirm_code(login, re.sub(r"\D", "", shown.inner_text()))
    expect(login.page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)

    # the phone is lost: a borrowed browser, the email code and a recovery code
    borrowed = make_context("desktop").new_page()
    borrowed.goto(f"{server.url}/signin")
    sign_in_on_signin_page(borrowed, smtp_sink, EMAIL)
    expect(borrowed.locator("#factor-code")).to_be_visible(timeout=WAIT_MS)
    borrowed.locator("#factor-code").fill(recovery[0])
    borrowed.get_by_role("button", name="Continue").click()
    expect(borrowed).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    expect(borrowed.locator("#recovery-left")).to_have_text("9")

    # how each device got in, on the devices page
    borrowed.goto(f"{server.url}/account/devices")
    proofs = borrowed.locator(".amr")
    expect(proofs).to_have_count(4)
    assert sorted(proofs.evaluate_all("els => els.map(e => e.dataset.amr)")) == [
        "email",
        "email recovery",
        "passkey",
        "qr",
    ]
    expect(borrowed.locator(".amr").first).to_contain_text("Proved with")
    assert_no_axe_violations(borrowed)
