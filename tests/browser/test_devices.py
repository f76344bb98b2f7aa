"""Issue 4 in Chromium: a phone signs a QR-linked desktop out from /account/devices and the
desktop's open page leaves for /signin by itself; a phone's open /account page shows a live
notice when a new device signs in, and the new-sign-in mail reaches the SMTP sink."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from support import LiveServer, SmtpSink

from .flows import (
    WAIT_MS,
    LoginPage,
    assert_signed_in_without_reload,
    expect_approved_on_phone,
    mark_page,
    open_login,
    sign_in_phone,
)

EMAIL = "grace@example.test"
REVOKED_WITHIN_MS = 10_000

# Watches the signed-in page's stream (/api/v1/me/events) without changing it: records
# that it opened (its "hello") and, in sessionStorage (which survives the navigation), that
# an `event: revoked` arrived. Our listeners are added first, so they run before live.js's.
WATCH_ME_STREAM = """
(() => {
  const Native = window.EventSource;
  if (!Native) return;
  window.EventSource = class extends Native {
    constructor(url, options) {
      super(url, options);
      if (String(url).includes("/api/v1/me/events")) {
        this.addEventListener("hello", () => { window.__meStream = "open"; });
        this.addEventListener("revoked", () => sessionStorage.setItem("got-revoked", "1"));
      }
    }
  };
})();
"""


def wait_for_me_stream(page: Page) -> None:
    page.wait_for_function("() => window.__meStream === 'open'", timeout=WAIT_MS)


def link_desktop_by_qr(desktop: BrowserContext, approver: Page, server: LiveServer) -> LoginPage:
    """The desktop opens /login; ``approver`` (a signed-in phone page) opens its QR and taps
    Approve; the desktop is left on /account."""
    login = open_login(desktop, server)
    mark_page(login.page)
    approver.goto(login.qr_url())
    approver.locator("#approve").click()
    expect_approved_on_phone(approver)
    assert_signed_in_without_reload(login, server, EMAIL)
    return login


def test_a_desktop_signed_out_from_the_phone_leaves_for_signin_without_reload(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server(confirm="tap")
    desktop.add_init_script(WATCH_ME_STREAM)
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = link_desktop_by_qr(desktop, mobile, server)
    wait_for_me_stream(login.page)
    assert desktop.request.get(f"{server.url}/api/v1/me").status == 200

    mobile.goto(f"{server.url}/account/devices")
    devices = mobile.locator("li.device")
    expect(devices).to_have_count(2, timeout=WAIT_MS)
    this_phone = devices.filter(has=mobile.locator(".badge"))
    expect(this_phone).to_have_count(1)
    expect(this_phone.locator(".badge")).to_have_text("This device")
    phone_name = this_phone.locator("h2").inner_text().replace("This device", "").strip()
    assert phone_name, "the phone's entry has no device name"
    the_desktop = devices.filter(has_not=mobile.locator(".badge"))
    expect(the_desktop).to_have_count(1)
    expect(the_desktop).to_contain_text(re.compile(r"\bQR\b"))
    expect(the_desktop).to_contain_text(f"approved from {phone_name}")
    expect(the_desktop).to_contain_text("Chrome on Linux")
    expect(this_phone.get_by_role("button", name=re.compile("Sign out"))).to_have_count(0)

    the_desktop.get_by_role("button").filter(has_text="Sign out this device").click()

    expect(mobile).to_have_url(f"{server.url}/account/devices?signed_out=1", timeout=WAIT_MS)
    expect(mobile.locator("li.device")).to_have_count(1, timeout=WAIT_MS)
    # the desktop's page (we never touch it) goes to /signin on its own
    expect(login.page).to_have_url(
        re.compile(re.escape(f"{server.url}/signin") + r"(\?.*)?$"), timeout=REVOKED_WITHIN_MS
    )
    assert login.navigations == [
        f"{server.url}/login",
        f"{server.url}/account",
        login.page.url,
    ], login.navigations
    got = login.page.evaluate("() => sessionStorage.getItem('got-revoked')")
    assert got == "1", "the page left without an `event: revoked` on its stream"
    response = desktop.request.get(f"{server.url}/api/v1/me")
    assert response.status == 401, response.text()
    # the phone stays signed in
    assert phone.request.get(f"{server.url}/api/v1/me").status == 200


def test_a_new_sign_in_shows_a_live_notice_on_the_phone_and_mails_the_owner(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server(confirm="tap")
    phone.add_init_script(WATCH_ME_STREAM)
    account = sign_in_phone(phone, server, smtp_sink, EMAIL)
    navigations: list[str] = []
    account.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == account.main_frame else None,
    )
    wait_for_me_stream(account)
    account.evaluate("() => { window.__marker = 1; }")
    notices = account.locator("#notices")
    expect(notices).to_be_empty()
    mails_before = len(smtp_sink)

    # another page of the same phone approves, so the /account page stays open untouched
    link_desktop_by_qr(desktop, phone.new_page(), server)

    notice = notices.locator(".notice")
    expect(notice).to_have_count(1, timeout=WAIT_MS)
    expect(notice).to_contain_text("New sign-in:")
    expect(notice).to_contain_text("Chrome on Linux")
    expect(notice).to_contain_text("linked by QR from")
    link = notice.get_by_role("link")
    expect(link).to_have_attribute("href", "/account/devices")
    assert account.evaluate("() => window.__marker") == 1, "the account page reloaded"
    assert navigations == [], navigations
    assert account.url == f"{server.url}/account"

    mail = smtp_sink.latest_to(EMAIL, timeout=WAIT_MS / 1000, after=mails_before)
    assert "New sign-in" in str(mail["Subject"]), mail["Subject"]

    link.click()
    expect(account).to_have_url(f"{server.url}/account/devices", timeout=WAIT_MS)
    expect(account.locator("li.device")).to_have_count(2, timeout=WAIT_MS)
