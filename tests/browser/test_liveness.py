"""Issue 2: the /login page waits on one event stream while visible, closes it while the
tab is hidden, and on return re-reads the state, showing what changed meanwhile."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from qrlogin.core.policy import Policy
from support import LiveServer, SmtpSink

from .flows import WAIT_MS, LoginPage, open_login, sign_in_phone

EMAIL = "barbara@example.test"

# Runs before the page's own scripts: keeps every EventSource the page makes, so the test
# can see which are open, and lets the test flip document.hidden / visibilityState.
TRACK_AND_FAKE_VISIBILITY = """
(() => {
  const Native = window.EventSource;
  window.__sources = [];
  window.EventSource = class extends Native {
    constructor(...args) { super(...args); window.__sources.push(this); }
  };
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""
OPEN_STREAMS = "() => window.__sources.filter((s) => s.readyState !== EventSource.CLOSED).length"


def open_tracked_login(context: BrowserContext, server: LiveServer) -> LoginPage:
    context.add_init_script(TRACK_AND_FAKE_VISIBILITY)
    login = open_login(context, server)
    wait_open_streams(login.page, 1)
    return login


def wait_open_streams(page: Page, count: int) -> None:
    page.wait_for_function(f"() => ({OPEN_STREAMS})() === {count}", timeout=WAIT_MS)


def events_requests(login: LoginPage) -> int:
    return sum(1 for url in login.requests if url.endswith("/events"))


def set_hidden(page: Page, hidden: bool) -> None:
    page.evaluate("(h) => window.__setHidden(h)", hidden)


def test_hidden_tab_closes_the_stream_and_shows_what_changed_when_it_returns(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_tracked_login(desktop, server)
    page = login.page
    url = login.qr_url()
    assert events_requests(login) == 1

    set_hidden(page, True)
    assert page.evaluate("() => document.hidden && document.visibilityState === 'hidden'")
    wait_open_streams(page, 0)

    # the phone scans while the tab sleeps: nothing listens, so nothing changes on screen
    mobile.goto(url)
    expect(mobile.locator("#approve")).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate(OPEN_STREAMS) == 0
    assert events_requests(login) == 1
    expect(page.locator("#state-waiting")).to_be_visible()

    # back in view: one new stream, and its first event is the state reached meanwhile
    set_hidden(page, False)
    expect(page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)
    wait_open_streams(page, 1)
    assert events_requests(login) == 2

    # and it keeps listening: the approval arrives live
    mobile.locator("#approve").click()
    expect(login.page.locator("#state-confirm")).to_be_visible(timeout=WAIT_MS)


def test_hidden_while_the_request_expires_shows_expired_on_return(
    live_server: Callable[..., LiveServer], desktop: BrowserContext
) -> None:
    server = live_server(
        app_kwargs={"policy": Policy(request_lifetime=4, handle_rotation=30, handle_grace=1)}
    )
    login = open_tracked_login(desktop, server)
    page = login.page
    login.qr_url()

    set_hidden(page, True)
    wait_open_streams(page, 0)
    # the countdown still runs; wait (on the page's own clock) until the request is over
    expect(page.locator("#countdown")).to_have_text("Expires in 0:00", timeout=WAIT_MS)
    expect(page.locator("#state-waiting")).to_be_visible()

    set_hidden(page, False)
    expect(page.locator("#state-expired")).to_be_visible(timeout=WAIT_MS)
    expect(
        page.locator("#state-expired").get_by_role("button", name="Show a new code")
    ).to_be_visible()
    wait_open_streams(page, 0)


def test_a_hidden_tab_creates_no_stream_until_it_is_shown(
    live_server: Callable[..., LiveServer], desktop: BrowserContext
) -> None:
    """A tab opened in the background (or hidden before its first stream) waits to listen."""
    server = live_server()
    desktop.add_init_script(TRACK_AND_FAKE_VISIBILITY + "\nwindow.__setHidden(true);")
    login = open_login(desktop, server)
    page = login.page
    login.qr_url()  # the QR is drawn all the same
    assert page.evaluate("() => window.__sources.length") == 0
    set_hidden(page, False)
    wait_open_streams(page, 1)
