"""Issue 3, accessibility: no serious or critical axe-core violations on /login (QR loaded,
and asking for the confirm code), the approval screen, /link and both steps of /signin, in
light and dark; and the code path done with the keyboard alone."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from support import LiveServer, SmtpSink, assert_no_axe_violations

from .flows import (
    WAIT_MS,
    approval_details,
    assert_signed_in_without_reload,
    email_code,
    mark_page,
    open_login,
    sign_in_phone,
)

EMAIL = "alan@example.test"
SCHEMES = pytest.mark.parametrize("color_scheme", ["light", "dark"])


@SCHEMES
def test_signin_both_steps_and_link_have_no_serious_violations(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
    color_scheme: str,
) -> None:
    server = live_server()
    page = make_context("phone", color_scheme=color_scheme).new_page()
    page.goto(f"{server.url}/signin?next=/link")
    expect(page.locator("#email")).to_be_visible()
    assert_no_axe_violations(page)

    before = len(smtp_sink)
    page.locator("#email").fill(EMAIL)
    page.locator("#email").press("Enter")
    expect(page.locator("#code")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(page)

    # a wrong code: the error is tied to the field
    real = email_code(smtp_sink, EMAIL, after=before)
    page.locator("#code").fill("000000" if real != "000000" else "111111")
    page.locator("#code").press("Enter")
    expect(page.locator("#code-error")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#code")).to_have_attribute("aria-invalid", "true")
    assert_no_axe_violations(page)

    page.locator("#code").fill(real)
    page.locator("#code").press("Enter")
    expect(page).to_have_url(f"{server.url}/link", timeout=WAIT_MS)
    expect(page.locator("#user-code")).to_be_visible()
    assert_no_axe_violations(page)

    # /link with its error message
    page.locator("#user-code").fill("12")
    page.locator("#user-code").press("Enter")
    expect(page.locator("#link-error")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(page)


@SCHEMES
def test_login_approval_and_confirm_code_screens_have_no_serious_violations(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
    color_scheme: str,
) -> None:
    server = live_server(confirm="code")
    phone = make_context("phone", color_scheme=color_scheme)
    desktop = make_context("desktop", color_scheme=color_scheme)
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    url = login.qr_url()
    expect(login.page.locator("#user-code-line")).to_be_visible()
    expect(login.page.get_by_role("img", name=f"QR code for {url}")).to_be_visible()
    assert_no_axe_violations(login.page)

    mobile.goto(url)
    approval_details(mobile)
    assert_no_axe_violations(mobile)
    expect(login.page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(login.page)

    mobile.locator("#approve").click()
    expect(mobile.locator("#confirm-code")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(mobile)
    expect(login.page.locator("#state-confirm")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(login.page)

    # a wrong code: the message is announced and tied to the field
    field = login.page.get_by_role("textbox", name="6-digit code shown on your phone")
    field.fill("12")
    field.press("Enter")
    expect(login.page.locator("#confirm-error")).to_have_text(re.compile(r"\S"))
    assert_no_axe_violations(login.page)


def test_denied_and_expired_states_have_no_serious_violations(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    mobile.goto(login.qr_url())
    mobile.locator("#deny").click()
    expect(mobile.locator("#denied-text")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(mobile)
    expect(login.page.locator("#state-denied")).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(login.page)


DEEP_FOCUS_MATCHES = """(s) => {
  let el = document.activeElement;
  while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
  return el?.matches(s) ?? false;
}"""


def tab_to(page: Page, selector: str, *, limit: int = 30) -> None:
    """Press Tab until the element matching `selector` has the focus (looking inside open
    shadow roots, such as the <qr-login> widget's)."""
    for _ in range(limit):
        if page.evaluate(DEEP_FOCUS_MATCHES, selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus after {limit} Tabs on {page.url}")


def test_the_code_path_works_with_the_keyboard_alone(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
) -> None:
    server = live_server(confirm="code")
    laptop = make_context("desktop")  # the approver: a signed-in laptop without a camera
    approver = laptop.new_page()

    # first-device sign-in by email, keyboard only
    approver.goto(f"{server.url}/signin?next=/link")
    before = len(smtp_sink)
    tab_to(approver, "#email")
    approver.keyboard.type(EMAIL)
    approver.keyboard.press("Enter")
    expect(approver.locator("#code")).to_be_visible(timeout=WAIT_MS)
    tab_to(approver, "#code")
    approver.keyboard.type(email_code(smtp_sink, EMAIL, after=before))
    approver.keyboard.press("Enter")
    expect(approver).to_have_url(f"{server.url}/link", timeout=WAIT_MS)

    requester = make_context("desktop")
    login = open_login(requester, server)
    page = login.page
    mark_page(page)
    code = login.user_code()

    tab_to(approver, "#user-code")
    approver.keyboard.type(code)
    approver.keyboard.press("Enter")
    expect(approver.locator("#approve")).to_be_visible(timeout=WAIT_MS)
    tab_to(approver, "#approve")
    approver.keyboard.press("Enter")
    shown = approver.locator("#confirm-code")
    expect(shown).to_be_visible(timeout=WAIT_MS)
    expect(shown).to_have_attribute("aria-label", re.compile(r"Confirm code( \d){6}"))
    confirm = re.sub(r"\D", "", shown.inner_text())

    # the requester moved the focus into the confirm field and said so
    field = page.get_by_role("textbox", name="6-digit code shown on your phone")
    expect(field).to_be_focused(timeout=WAIT_MS)
    expect(page.get_by_role("status")).to_contain_text("Type the 6-digit code")
    page.keyboard.type(confirm)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Enter")
    assert_signed_in_without_reload(login, server, EMAIL)


def test_a_new_code_from_the_keyboard_after_a_deny(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    page = login.page
    first = login.qr_url()
    mobile.goto(first)
    mobile.locator("#deny").click()
    expect(page.locator("#state-denied")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("status")).to_contain_text("denied")

    tab_to(page, "#state-denied .new-code")
    page.keyboard.press("Enter")
    expect(page.locator("#state-waiting")).to_be_visible(timeout=WAIT_MS)
    # the focus lands on the new code's link, not on the body
    expect(page.locator("#qr-link")).to_be_focused(timeout=WAIT_MS)
    assert login.qr_url() != first
