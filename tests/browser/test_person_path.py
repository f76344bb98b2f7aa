"""Issue 11, the person's path (items 11, 12, 13, 15 and 16's approver and account parts), in
Chromium with real mail: each test is named after the dead end it closes, and saves a
screenshot of every page it changed into its tmp_path."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

from qrlogin.core.policy import Policy
from support import LiveServer, SmtpSink

from .flows import (
    WAIT_MS,
    assert_signed_in_without_reload,
    email_code,
    mark_page,
    open_login,
)

EMAIL = "ann@example.test"
# a rotation of 2 s (grace 1 s) stands in for the real 30 s: reading the mail takes longer
FAST_ROTATION = Policy(handle_rotation=2, handle_grace=1)


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_first_run_dead_end_a_phone_signs_in_past_a_rotation_and_still_approves(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    make_context: Callable[..., BrowserContext],
    tmp_path: Path,
) -> None:
    server = live_server(confirm="tap", app_kwargs={"policy": FAST_ROTATION})
    login = open_login(desktop, server)
    mark_page(login.page)
    scanned_url = login.qr_url()

    # the phone is not signed in: it is told why it must sign in, and for which device
    mobile = phone.new_page()
    mobile.goto(scanned_url)
    expect(mobile).to_have_url(re.compile(r"/signin\?next="), timeout=WAIT_MS)
    expect(mobile.locator("#signin-reason")).to_contain_text(
        "To approve the sign-in on Chrome on Linux, first sign in on this phone"
    )
    shot(mobile, tmp_path, "phone-signin-why")
    # the desktop says someone is signing in on a phone, and keeps its QR for anyone else
    expect(login.page.locator("#signing-in")).to_be_visible(timeout=WAIT_MS)
    expect(login.page.locator("#signing-in")).to_contain_text("signing in there first")
    expect(login.page.locator("#qr svg")).to_be_visible()
    shot(login.page, tmp_path, "desktop-someone-signing-in")

    before = len(smtp_sink)
    mobile.locator("#email").fill(EMAIL)
    mobile.get_by_role("button", name="Email me a sign-in code").click()
    expect(mobile.locator("#code")).to_be_visible(timeout=WAIT_MS)
    expect(mobile.locator("#signin-reason")).to_contain_text("Chrome on Linux")
    code = email_code(smtp_sink, EMAIL, after=before)

    # while the mail is read, the QR rotates on, and the scanned handle stops working
    login.page.wait_for_function(
        "(seen) => !seen.includes(document.getElementById('qr-link').textContent)",
        arg=[scanned_url],
        timeout=WAIT_MS,
    )
    second = login.page.locator("#qr-link").inner_text()
    login.page.wait_for_function(
        "(seen) => !seen.includes(document.getElementById('qr-link').textContent)",
        arg=[scanned_url, second],
        timeout=WAIT_MS,
    )
    stranger = make_context("phone").new_page()
    stranger.goto(scanned_url)
    expect(stranger.get_by_role("heading", name="This code cannot be used")).to_be_visible()

    mobile.locator("#code").fill(code)
    mobile.get_by_role("button", name="Sign in", exact=True).click()
    expect(mobile.get_by_role("heading", name="Sign in on another device?")).to_be_visible(
        timeout=WAIT_MS
    )
    expect(mobile.locator("#req-browser")).to_have_text("Chrome on Linux")
    shot(mobile, tmp_path, "phone-approval-after-signin")
    expect(login.page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)

    mobile.locator("#approve").click()
    assert_signed_in_without_reload(login, server, EMAIL)
