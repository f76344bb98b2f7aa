"""Issue 11 item 1, in Chromium: a ``next`` that a browser would read as another origin
(control characters it drops, backslashes it reads as slashes) never takes the browser away
from the site after email sign-in, whether the mail's link is opened on another device (the
asking page's script collects the sign-in and moves on) or in the browser that asked (the
server's redirect)."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from support import LiveServer, SmtpSink, mail_text

from .flows import WAIT_MS

NEXTS = {
    "tab": "/%09/evil.example/phish",
    "newline": "/%0A/evil.example/phish",
    "carriage-return": "/%0D/evil.example/phish",
    "backslash": "/%5Cevil.example/phish",
    "tab-backslash": "/%09%5Cevil.example/phish",
    "leading-space-and-slashes": "%20//evil.example/phish",
}


def _trap_other_origins(context: BrowserContext, server: LiveServer) -> list[str]:
    """Every request the browser makes to another origin is answered here and recorded."""
    elsewhere: list[str] = []
    own = urlsplit(server.url).netloc

    def handle(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
            return
        elsewhere.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>phished</h1>")

    context.route(re.compile(r".*"), handle)
    return elsewhere


def _ask_for_mail(page: Page, server: LiveServer, sink: SmtpSink, email: str, nxt: str) -> str:
    """/signin?next=…, type the address; the link in the mail."""
    before = len(sink)
    page.goto(f"{server.url}/signin?next={nxt}")
    page.locator("#email").fill(email)
    page.get_by_role("button", name="Email me a sign-in code").click()
    expect(page.locator("#code")).to_be_visible(timeout=WAIT_MS)
    found = re.search(
        r"https?://\S+/auth/email/\S+", mail_text(sink.latest_to(email, after=before))
    )
    assert found
    return found.group(0)


def _assert_stayed_home(page: Page, server: LiveServer, elsewhere: list[str]) -> None:
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    assert urlsplit(page.url).netloc == urlsplit(server.url).netloc
    assert elsewhere == []


@pytest.mark.parametrize("nxt", NEXTS.values(), ids=NEXTS.keys())
def test_open_redirect_after_email_sign_in_link_opened_on_another_device(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
    nxt: str,
) -> None:
    server = live_server()
    elsewhere = _trap_other_origins(desktop, server)
    asking = desktop.new_page()
    link = _ask_for_mail(asking, server, smtp_sink, "ann@example.test", nxt)

    other = phone.new_page()
    other.goto(link)
    other.locator("#confirm").click()
    expect(other.get_by_role("heading", name="Confirmed")).to_be_visible(timeout=WAIT_MS)

    # the asking page's script collects the sign-in and goes to the checked path
    _assert_stayed_home(asking, server, elsewhere)


@pytest.mark.parametrize("nxt", NEXTS.values(), ids=NEXTS.keys())
def test_open_redirect_after_email_sign_in_link_opened_in_the_same_browser(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    nxt: str,
) -> None:
    server = live_server()
    elsewhere = _trap_other_origins(desktop, server)
    asking = desktop.new_page()
    link = _ask_for_mail(asking, server, smtp_sink, "bob@example.test", nxt)
    asking.close()  # the mail is opened in a new tab of the same browser

    page = desktop.new_page()
    page.goto(link)
    page.locator("#confirm").click()
    _assert_stayed_home(page, server, elsewhere)


def test_a_same_origin_next_is_still_followed_after_email_sign_in(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    asking = desktop.new_page()
    link = _ask_for_mail(asking, server, smtp_sink, "cy@example.test", "/account/devices")
    other = phone.new_page()
    other.goto(link)
    other.locator("#confirm").click()
    expect(asking).to_have_url(f"{server.url}/account/devices", timeout=WAIT_MS)
