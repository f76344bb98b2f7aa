"""The <qr-login> widget (static/qrlogin.js) in Chromium: on a host app's own page with qrlogin
mounted under /qr and a strict CSP, and the messages it shows on /login when a sign-in ends
(issue 11 items 14 and 16). The whole handshake on /login is in test_qr_login.py and
test_codes.py, which drive the same widget."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect
from playwright.sync_api import Route as HeldRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from qrlogin.core.policy import Policy
from support import (
    AXE_JS,
    LiveServer,
    SmtpSink,
    assert_no_axe_violations,
    read_qr_from_page,
    start_live_server,
)

from .flows import WAIT_MS, approve_and_read_confirm_code, email_code, open_login, sign_in_phone

EMAIL = "hedy@example.test"
PREFIX = "/qr"
# what a careful host sends: nothing inline, everything from its own origin
HOST_CSP = (
    "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def host_page(widget_attributes: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Host app · sign in</title><link rel="icon" href="data:,">
<script type="module" src="/host.js"></script>
<script type="module" src="{PREFIX}/static/qrlogin.js"></script></head>
<body><main>
<h1>Sign in to the host app</h1>
<qr-login{widget_attributes}></qr-login>
<p id="who"></p>
</main></body>
</html>"""


# the host's own script: keeps what the widget tells the page (in sessionStorage, which
# outlives a redirect), and keeps the page when the widget has data-stay
HOST_JS = """
for (const name of ["qrlogin:signed-in", "qrlogin:ended"]) {
  document.addEventListener(name, (ev) => {
    const seen = JSON.parse(sessionStorage.getItem("events") || "[]");
    sessionStorage.setItem("events", JSON.stringify([...seen, { name, detail: ev.detail }]));
    if (name === "qrlogin:signed-in") {
      document.getElementById("who").textContent = `Welcome, ${ev.detail.display_name}`;
      if (ev.target.hasAttribute("data-stay")) ev.preventDefault();
    }
  });
}
"""
WELCOME_PAGE = "<!doctype html><title>Welcome</title><h1>The host's welcome page</h1>"


def host_app(qrlogin: Any) -> Starlette:
    """A host app of its own, with qrlogin's app mounted under PREFIX."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # a mounted app's lifespan is not run by Starlette: the host runs it (migrations,
        # event bus, housekeeping)
        async with qrlogin.router.lifespan_context(qrlogin):
            yield

    async def page(request: Request) -> Response:
        attributes = ' redirect="/welcome"' if "redirect" in request.query_params else ""
        attributes += " data-stay" if "stay" in request.query_params else ""
        html = host_page(attributes)
        return HTMLResponse(html, headers={"content-security-policy": HOST_CSP})

    async def welcome(request: Request) -> Response:
        return HTMLResponse(WELCOME_PAGE)

    async def script(request: Request) -> Response:
        return Response(HOST_JS, media_type="text/javascript")

    routes = [
        Route("/", page),
        Route("/host.js", script),
        Route("/welcome", welcome),
        Mount(PREFIX, app=qrlogin),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


@pytest.fixture
def prefixed_host(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[LiveServer]:
    from qrlogin.config import Settings
    from qrlogin.web.app import create_app

    def make_app(url: str) -> tuple[Any, Any]:
        settings = Settings(
            data_dir=tmp_path, public_url=f"{url}{PREFIX}", dev=True, smtp_url=smtp_sink.url
        )
        return settings, host_app(create_app(settings))

    server = start_live_server(make_app)
    try:
        yield server
    finally:
        server.stop()
    assert not server.server_errors, "\n".join(server.server_errors)


def api_approver(base: str, sink: SmtpSink, email: str) -> tuple[httpx.Client, dict[str, Any]]:
    """An API client signed in by email code, sending its access token; and its user."""
    client = httpx.Client(base_url=base, timeout=10)
    before = len(sink)
    started = client.post("/api/v1/auth/email/start", json={"email": email})
    assert started.status_code == 202, started.text
    code = email_code(sink, email, after=before)
    verified = client.post("/api/v1/auth/email/verify", json={"email": email, "code": code})
    assert verified.status_code == 200, verified.text
    client.headers["authorization"] = f"Bearer {verified.json()['access_token']}"
    user: dict[str, Any] = verified.json()["user"]
    return client, user


def widget_events(page: Page) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = page.evaluate(
        "() => JSON.parse(sessionStorage.getItem('events') || '[]')"
    )
    return events


def approve_and_type_the_code(
    page: Page, qr_url: str, sink: SmtpSink, email: str
) -> dict[str, Any]:
    """A signed-in approver scans and approves through the API; the widget is shown
    "scanned", asks for the confirm code, and gets it typed. Returns the approver's user."""
    approver, user = api_approver(qr_url.rsplit("/q/", 1)[0], sink, email)
    try:
        handle = qr_url.rsplit("/", 1)[1]
        scanned = approver.get(f"/api/v1/scan/{handle}")
        assert scanned.status_code == 200, scanned.text
        expect(page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)
        approved = approver.post(f"/api/v1/scan/{handle}/approve")
        assert approved.status_code == 200, approved.text
    finally:
        approver.close()
    confirm_code = approved.json()["confirm_code"]
    assert re.fullmatch(r"\d{6}", confirm_code)
    field = page.get_by_role("textbox", name="6-digit code shown on your phone")
    expect(field).to_be_focused(timeout=WAIT_MS)
    field.fill(confirm_code)
    field.press("Enter")
    return user


def test_the_widget_on_a_host_page_under_a_prefix_signs_in_and_fires_its_event(
    prefixed_host: LiveServer, smtp_sink: SmtpSink, desktop: BrowserContext
) -> None:
    server = prefixed_host
    qr_base = f"{server.url}{PREFIX}"
    page = desktop.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(f"console: {msg.text} ({msg.location.get('url')})")

    page.on("console", on_console)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(f"{server.url}/")

    # the QR, read from the page's pixels, opens the approval page under the prefix
    expect(page.locator("#qr svg")).to_be_visible(timeout=WAIT_MS)
    qr_url = read_qr_from_page(page, "#qr", timeout=WAIT_MS / 1000)
    assert re.fullmatch(re.escape(qr_base) + r"/q/[A-Za-z0-9_-]{22,}", qr_url), qr_url
    expect(page.locator("#qr-link")).to_have_text(qr_url)
    expect(page.locator("#countdown")).to_have_text(re.compile(r"Expires in \d+:\d\d"))
    # the camera-less code, and the /link address under the prefix
    line = page.locator("#user-code-line")
    expect(line).to_be_visible()
    expect(page.locator("#link-url")).to_have_text(f"{qr_base}/link")
    expect(page.locator("#user-code")).to_have_text(re.compile(r"^\d{3} \d{3}$"))

    # axe-core over DevTools: injecting its <script> would be (rightly) refused by HOST_CSP;
    # what axe itself trips over in HOST_CSP (an inline style of its own) is not the widget's
    assert problems == [], problems
    page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;void 0")
    assert_no_axe_violations(page)
    page.wait_for_timeout(100)  # console messages arrive after the call that caused them
    problems.clear()

    user = approve_and_type_the_code(page, qr_url, smtp_sink, EMAIL)
    expect(page.locator("#state-done")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#who")).to_have_text("Welcome, hedy", timeout=WAIT_MS)
    [event] = widget_events(page)
    assert event["name"] == "qrlogin:signed-in"
    assert event["detail"]["id"] == user["id"]  # the approver's user, on this new device
    assert page.url == f"{server.url}/"  # no redirect attribute: the page stays

    # every call the widget made went to the mounted app, none to the host's root
    own = {f"{server.url}/", f"{server.url}/host.js"}
    widget_paths = [urlsplit(u).path for u in fetched if u not in own]
    assert widget_paths and all(p.startswith(f"{PREFIX}/") for p in widget_paths), widget_paths
    assert any(p.endswith("/events") for p in widget_paths)
    assert problems == [], problems


@pytest.mark.parametrize("stay", [False, True], ids=["redirect", "host-prevents-redirect"])
def test_on_a_host_page_redirect_is_followed_unless_the_host_prevents_it(
    prefixed_host: LiveServer, smtp_sink: SmtpSink, desktop: BrowserContext, stay: bool
) -> None:
    server = prefixed_host
    page = desktop.new_page()
    page.goto(f"{server.url}/?redirect" + ("&stay" if stay else ""))
    qr_url = read_qr_from_page(page, "#qr", timeout=WAIT_MS / 1000)

    user = approve_and_type_the_code(page, qr_url, smtp_sink, EMAIL)

    if stay:
        expect(page.locator("#who")).to_have_text("Welcome, hedy", timeout=WAIT_MS)
        expect(page.locator("#state-done")).to_be_visible()
        page.wait_for_timeout(500)  # a redirect, were it coming, would have started
        assert urlsplit(page.url).path == "/"
    else:
        expect(page).to_have_url(f"{server.url}/welcome", timeout=WAIT_MS)
    [event] = widget_events(page)
    assert (event["name"], event["detail"]["id"]) == ("qrlogin:signed-in", user["id"])


def test_cancel_on_the_confirm_step_says_cancelled_not_denied(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server()
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    page = login.page
    page.evaluate(
        """() => { window.__ended = [];
          document.addEventListener('qrlogin:ended', (ev) => window.__ended.push(ev.detail)); }"""
    )
    mobile.goto(login.qr_url())
    approve_and_read_confirm_code(mobile)

    confirm = page.locator("#state-confirm")
    expect(confirm).to_be_visible(timeout=WAIT_MS)
    confirm.get_by_role("button", name="Cancel").click()

    ended = page.locator("#state-denied")
    expect(ended).to_be_visible(timeout=WAIT_MS)
    expect(ended.get_by_role("heading")).to_have_text("Sign-in cancelled")
    expect(ended).not_to_contain_text("denied")
    expect(page.get_by_role("status")).to_contain_text("Sign-in cancelled")
    assert page.evaluate("() => window.__ended") == [
        {"status": "cancelled", "reason": "cancelled_by_requester"}
    ]
    ended.get_by_role("button", name="Show a new code").click()
    expect(page.locator("#qr svg")).to_be_visible(timeout=WAIT_MS)


def test_login_without_javascript_says_so_instead_of_an_empty_card(
    live_server: Callable[..., LiveServer], make_context: Callable[..., BrowserContext]
) -> None:
    server = live_server()
    page = make_context("desktop", java_script_enabled=False).new_page()
    page.goto(f"{server.url}/login")

    # (a CSS locator: Playwright's text and role locators skip what is inside <noscript>)
    notice = page.locator("#login .warning")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("needs JavaScript")
    expect(notice.locator("a")).to_have_attribute("href", "/signin")
    # nothing pretends to load, and no half-drawn steps
    expect(page.get_by_text("Getting a sign-in code")).to_be_hidden()
    expect(page.get_by_text("Point your phone's camera")).to_be_hidden()


def test_login_shows_a_loading_state_until_the_code_arrives(
    live_server: Callable[..., LiveServer], desktop: BrowserContext
) -> None:
    server = live_server()
    page = desktop.new_page()
    held: list[HeldRequest] = []
    # hold the create call until the test releases it
    page.route("**/api/v1/login-requests", lambda route: held.append(route))
    page.goto(f"{server.url}/login")

    page.wait_for_function("() => customElements.get('qr-login') !== undefined")
    # the page's own loading line, shown in the widget's loading state
    loading = page.locator("#login > .js-only")
    expect(page.locator("#state-loading")).to_be_visible()
    expect(loading).to_be_visible()
    expect(loading).to_have_text("Getting a sign-in code…")
    expect(page.locator("#state-waiting")).to_be_hidden()
    expect(page.locator("#login .warning")).to_have_count(0)  # <noscript> stays unparsed
    for _ in range(100):  # the route handler runs while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    [create] = held
    create.continue_()

    expect(page.locator("#state-waiting")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#qr svg")).to_be_visible(timeout=WAIT_MS)
    expect(loading).to_be_hidden()


def test_the_qr_still_rotates_when_the_event_stream_cannot_connect(
    live_server: Callable[..., LiveServer], desktop: BrowserContext
) -> None:
    server = live_server(
        app_kwargs={"policy": Policy(request_lifetime=60, handle_rotation=3, handle_grace=1)}
    )
    page = desktop.new_page()
    streams: list[str] = []

    def refuse(route: HeldRequest) -> None:
        streams.append(route.request.url)
        route.abort()

    page.route("**/events", refuse)
    page.goto(f"{server.url}/login")
    first = read_qr_from_page(page, "#qr", timeout=WAIT_MS / 1000)

    # no event arrives: past the QR's end the widget asks for the state itself
    expect(page.locator("#qr-link")).not_to_have_text(first, timeout=WAIT_MS)
    rotated = read_qr_from_page(page, "#qr", timeout=WAIT_MS / 1000)
    assert rotated != first
    assert rotated.rsplit("/", 1)[0] == first.rsplit("/", 1)[0]
    assert streams, "the widget never tried its event stream"
    expect(page.locator("#state-waiting")).to_be_visible()
