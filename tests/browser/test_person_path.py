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
    LoginPage,
    approve_and_read_confirm_code,
    assert_signed_in_without_reload,
    email_code,
    mark_page,
    open_login,
    sign_in_phone,
    type_confirm_code,
)

EMAIL = "ann@example.test"
# a rotation of 2 s (grace 1 s) stands in for the real 30 s: reading the mail takes longer
FAST_ROTATION = Policy(handle_rotation=2, handle_grace=1)
QR_LINK_NOT_IN = (  # the <qr-login> widget's link under its QR is none of `seen`
    "(seen) => !seen.includes("
    "document.querySelector('qr-login').shadowRoot.getElementById('qr-link').textContent)"
)


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
        QR_LINK_NOT_IN,
        arg=[scanned_url],
        timeout=WAIT_MS,
    )
    second = login.page.locator("#qr-link").inner_text()
    login.page.wait_for_function(
        QR_LINK_NOT_IN,
        arg=[scanned_url, second],
        timeout=WAIT_MS,
    )
    other_phone = sign_in_phone(make_context("phone"), server, smtp_sink, "bob@example.test")
    other_phone.goto(scanned_url)
    expect(other_phone.get_by_role("heading", name="This code cannot be used")).to_be_visible()

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


def test_phone_pages_are_live_the_approval_page_shows_signed_in_with_a_done_button(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    tmp_path: Path,
) -> None:
    server = live_server(confirm="code")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mobile.goto(login.qr_url())
    code = approve_and_read_confirm_code(mobile)
    mobile.evaluate("() => { window.__marker = 1; }")
    expect(mobile.locator("#outcome")).to_contain_text("Waiting for Chrome on Linux to finish")
    shot(mobile, tmp_path, "phone-approved-waiting")

    type_confirm_code(login, code)

    heading = mobile.get_by_role("heading", name="Signed in on Chrome on Linux ✓")
    expect(heading).to_be_visible(timeout=WAIT_MS)
    expect(heading).to_be_focused()
    expect(mobile.locator("#confirm-code")).to_have_count(0)  # nothing left to type
    assert mobile.evaluate("() => window.__marker") == 1, "the phone's page reloaded"
    shot(mobile, tmp_path, "phone-signed-in-done")
    mobile.get_by_role("link", name="Done").click()
    expect(mobile).to_have_url(f"{server.url}/account", timeout=WAIT_MS)


def test_phone_pages_are_live_a_cancel_on_the_desktop_shows_on_the_phone(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    tmp_path: Path,
) -> None:
    server = live_server(confirm="tap")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mobile.goto(login.qr_url())
    expect(mobile.locator("#approve")).to_be_visible(timeout=WAIT_MS)
    expect(login.page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)

    login.page.locator("#cancel").click()

    expect(mobile.get_by_role("heading", name="Sign-in cancelled")).to_be_visible(timeout=WAIT_MS)
    expect(mobile.locator("#outcome")).to_contain_text("cancelled on Chrome on Linux")
    expect(mobile.locator("#approve")).to_have_count(0)
    shot(mobile, tmp_path, "phone-cancelled")


def test_back_and_reload_after_approving_a_typed_code_resend_no_form(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    tmp_path: Path,
) -> None:
    server = live_server(confirm="code")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    posts: list[str] = []
    mobile.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and r.is_navigation_request() else None,
    )
    mobile.goto(f"{server.url}/link")
    mobile.locator("#user-code").fill(login.user_code())
    mobile.get_by_role("button", name="Continue").click()
    expect(mobile.locator("#approve")).to_be_visible(timeout=WAIT_MS)
    approve_and_read_confirm_code(mobile)
    assert len(posts) == 2, posts  # the code, then Approve

    mobile.reload()
    expect(mobile.locator("#confirm-code")).to_be_visible(timeout=WAIT_MS)
    mobile.go_back()
    expect(mobile.locator("#approve, #confirm-code").first).to_be_visible(timeout=WAIT_MS)
    assert len(posts) == 2, f"a reload or Back sent a form again: {posts}"
    shot(mobile, tmp_path, "phone-after-back")

    # an address only a form should reach, opened by hand: a page that says what to do
    handle = mobile.url.rsplit("/", 1)[1]
    mobile.goto(f"{server.url}/q/{handle}/approve")
    wrong_method = mobile.get_by_role("heading", name="This address cannot be opened like that")
    expect(wrong_method).to_be_visible()
    shot(mobile, tmp_path, "phone-wrong-method")
    mobile.goto(f"{server.url}/nowhere")
    expect(mobile.get_by_role("heading", name="Page not found")).to_be_visible()


def link_desktop(desktop: BrowserContext, mobile: Page, server: LiveServer) -> LoginPage:
    """The desktop signs in by the phone's approval (``confirm="tap"``), left on /account."""
    login = open_login(desktop, server)
    mark_page(login.page)
    mobile.goto(login.qr_url())
    mobile.locator("#approve").click()
    assert_signed_in_without_reload(login, server, EMAIL)
    return login


def test_no_feedback_on_revocation_a_revoked_desktop_is_told_who_signed_it_out(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    tmp_path: Path,
) -> None:
    server = live_server(confirm="tap")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = link_desktop(desktop, mobile, server)

    mobile.goto(f"{server.url}/account/devices")
    mobile.get_by_role("button", name=re.compile("Sign out this device: Chrome on Linux")).click()

    expect(mobile.locator("#signed-out-result")).to_have_text(
        re.compile(r"^Signed out 1 device\. It has to sign in again")
    )
    shot(mobile, tmp_path, "phone-signed-out-one")
    page = login.page
    expect(page).to_have_url(re.compile(re.escape(f"{server.url}/signin")), timeout=WAIT_MS)
    expect(page.locator("#signed-out")).to_have_text(
        "You were signed out from Chrome on Android.", timeout=WAIT_MS
    )
    shot(page, tmp_path, "desktop-told-who-signed-it-out")
    page.reload()  # said once: the ended session's cookie is gone
    expect(page.locator("#email")).to_be_visible()
    expect(page.locator("#signed-out")).to_have_count(0)


def test_no_feedback_on_sign_out_all_other_devices_asks_first_then_says_what_it_did(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    tmp_path: Path,
) -> None:
    server = live_server(confirm="tap")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    link_desktop(desktop, mobile, server)
    mobile.goto(f"{server.url}/account/devices")

    mobile.get_by_role("link", name="Sign out all other devices").click()
    expect(mobile.get_by_role("heading", name="Sign out 1 other device?")).to_be_visible()
    shot(mobile, tmp_path, "phone-confirm-revoke-others")
    mobile.get_by_role("link", name="Keep them signed in").click()
    expect(mobile.locator("li.device")).to_have_count(2)
    assert desktop.request.get(f"{server.url}/api/v1/me").status == 200

    mobile.get_by_role("link", name="Sign out all other devices").click()
    mobile.get_by_role("button", name="Sign them out").click()

    expect(mobile.locator("#signed-out-result")).to_contain_text("Signed out 1 device.")
    expect(mobile.locator("li.device")).to_have_count(1)
    shot(mobile, tmp_path, "phone-revoked-others-result")
    assert desktop.request.get(f"{server.url}/api/v1/me").status == 401


def test_no_feedback_on_sign_in_a_signed_in_person_on_login_or_signin_sees_who_they_are(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    phone: BrowserContext,
    desktop: BrowserContext,
    tmp_path: Path,
) -> None:
    server = live_server()
    signin = desktop.new_page()
    signin.goto(f"{server.url}/signin")
    signin.get_by_role("link", name="Sign in with a QR code").click()
    expect(signin).to_have_url(f"{server.url}/login")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)

    for path in ("/login", "/signin"):
        mobile.goto(f"{server.url}{path}")
        expect(mobile.get_by_role("heading", name="You're signed in as ann")).to_be_visible()
        expect(mobile.locator("#qr")).to_have_count(0)
        expect(mobile.locator("#email")).to_have_count(0)
        shot(mobile, tmp_path, f"phone-signed-in-{path.strip('/')}")
    mobile.get_by_role("link", name="Go to your account").click()
    expect(mobile).to_have_url(f"{server.url}/account")


def test_wording_times_show_in_the_browsers_locale_and_zone(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
    tmp_path: Path,
) -> None:
    server = live_server()
    german = make_context("phone", locale="de-DE", timezone_id="Europe/Berlin")
    account = sign_in_phone(german, server, smtp_sink, EMAIL)

    stamp = account.locator("#activity time").first
    expect(stamp).to_have_text(re.compile(r"^\d\d\.\d\d\.\d{4}, \d\d:\d\d$"))
    shown = stamp.inner_text()
    iso = stamp.get_attribute("datetime") or ""
    berlin = account.evaluate(
        """(iso) => new Intl.DateTimeFormat("de-DE", {dateStyle: "medium", timeStyle: "short",
                      timeZone: "Europe/Berlin"}).format(new Date(iso))""",
        iso,
    )
    assert shown == berlin, (shown, iso)
    shot(account, tmp_path, "phone-account-times-de")
