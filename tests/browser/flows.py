"""Steps the browser tests share: signing a phone in by email, opening /login, approving.

Every step drives the real pages (no API shortcuts) and waits with Playwright's
auto-retrying `expect`, so the tests never sleep for a fixed time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from playwright.sync_api import expect

from support import mail_text, read_qr_from_page

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from support import LiveServer, SmtpSink

WAIT_MS = 15_000  # generous: a busy CI machine must not make these flaky
CODE_RE = re.compile(r"sign-in code is (\d{6})")


def email_code(sink: SmtpSink, email: str, *, after: int) -> str:
    """The 6-digit code of the newest sign-in mail to `email` sent after mail number `after`."""
    msg = sink.latest_to(email, timeout=WAIT_MS / 1000, after=after)
    found = CODE_RE.search(mail_text(msg))
    assert found, f"no sign-in code in the mail: {mail_text(msg)!r}"
    return found.group(1)


def sign_in_on_signin_page(page: Page, sink: SmtpSink, email: str) -> None:
    """On /signin (step 1): type the address, read the code from the real SMTP sink, type it."""
    expect(page.locator("#email")).to_be_visible(timeout=WAIT_MS)
    before = len(sink)
    page.locator("#email").fill(email)
    page.get_by_role("button", name="Email me a sign-in code").click()
    expect(page.locator("#code")).to_be_visible(timeout=WAIT_MS)
    page.locator("#code").fill(email_code(sink, email, after=before))
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_in_phone(phone: BrowserContext, server: LiveServer, sink: SmtpSink, email: str) -> Page:
    """A phone page signed in by email code, left on /account."""
    page = phone.new_page()
    page.goto(f"{server.url}/signin")
    sign_in_on_signin_page(page, sink, email)
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    expect(page.locator("#email")).to_have_text(email)
    return page


@dataclass
class LoginPage:
    """The desktop's /login page, with every navigation of its main frame recorded."""

    page: Page
    navigations: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page fetched

    def request_ids(self) -> list[str]:
        """Ids of the login requests the page has talked about, oldest first."""
        ids: dict[str, None] = {}
        for url in self.requests:
            found = re.search(r"/api/v1/login-requests/([^/?]+)", url)
            if found:
                ids.setdefault(found.group(1), None)
        return list(ids)

    def qr_url(self) -> str:
        """The URL read from the QR's pixels; checked against the link shown under it."""
        url = read_qr_from_page(self.page, "#qr", timeout=WAIT_MS / 1000)
        expect(self.page.locator("#qr-link")).to_have_text(url, timeout=WAIT_MS)
        return url

    def user_code(self) -> str:
        code = self.page.locator("#user-code")
        expect(code).to_have_text(re.compile(r"\S"), timeout=WAIT_MS)
        return code.inner_text().strip()


def open_login(desktop: BrowserContext, server: LiveServer) -> LoginPage:
    page = desktop.new_page()
    login = LoginPage(page)
    page.on(
        "framenavigated",
        lambda frame: login.navigations.append(frame.url) if frame == page.main_frame else None,
    )
    page.on("request", lambda request: login.requests.append(request.url))
    page.goto(f"{server.url}/login")
    expect(page.locator("#state-waiting")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#qr svg")).to_be_visible(timeout=WAIT_MS)
    return login


def approval_details(page: Page) -> dict[str, str]:
    """The requester's details on the approval screen, each checked to be visible."""
    details = {}
    for key in ("device", "browser", "ip", "age", "network"):
        loc = page.locator(f"#req-{key}")
        expect(loc).to_be_visible(timeout=WAIT_MS)
        details[key] = loc.inner_text().strip()
    return details


def mark_page(page: Page) -> None:
    """Set a marker a reload would wipe, and record (in sessionStorage, which survives
    navigation in the tab) whether it was still there when the signed-in state showed,
    and whether the page ever asked for a confirm code."""
    page.evaluate(
        """() => {
          window.__marker = 1;
          const widget = document.querySelector("qr-login").shadowRoot;
          const done = widget.getElementById("state-done");
          const confirm = widget.getElementById("state-confirm");
          const record = () => {
            if (!done.hidden && sessionStorage.getItem("marker-at-done") === null) {
              sessionStorage.setItem("marker-at-done", String(window.__marker));
            }
            if (!confirm.hidden) sessionStorage.setItem("confirm-shown", "1");
          };
          const observer = new MutationObserver(record);
          observer.observe(done, { attributes: true });
          observer.observe(confirm, { attributes: true });
          record();
        }"""
    )


def marker_at_done(page: Page) -> str | None:
    value: str | None = page.evaluate("() => sessionStorage.getItem('marker-at-done')")
    return value


def confirm_code_was_asked(page: Page) -> bool:
    return bool(page.evaluate("() => sessionStorage.getItem('confirm-shown') === '1'"))


def assert_signed_in_without_reload(login: LoginPage, server: LiveServer, email: str) -> None:
    """The desktop went from /login to /account by itself, with no reload in between, and
    the account page shows who signed in."""
    page = login.page
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    expect(page.locator("#email")).to_have_text(email, timeout=WAIT_MS)
    assert marker_at_done(page) == "1", "the page reloaded before it showed it was signed in"
    assert login.navigations == [f"{server.url}/login", f"{server.url}/account"], login.navigations


def approve_and_read_confirm_code(phone_page: Page) -> str:
    """Tap Approve on the phone's approval screen; return the confirm code it then shows
    (in large type) as 6 digits."""
    phone_page.locator("#approve").click()
    shown = phone_page.locator("#confirm-code")
    expect(shown).to_have_text(re.compile(r"^\s*\d{3} \d{3}\s*$"), timeout=WAIT_MS)
    # the text can be there before the page's stylesheet (a busy machine): measure after load
    phone_page.wait_for_load_state("load")
    size = float(shown.evaluate("el => parseFloat(getComputedStyle(el).fontSize)"))
    assert size >= 32, f"the confirm code is not in large type ({size}px)"
    return re.sub(r"\D", "", shown.inner_text())


def type_confirm_code(login: LoginPage, code: str) -> None:
    """The desktop asks for the code with focus already in the field; type it and press
    Enter."""
    page = login.page
    expect(page.locator("#state-confirm")).to_be_visible(timeout=WAIT_MS)
    field = page.locator("#confirm-code")
    expect(field).to_be_focused(timeout=WAIT_MS)
    field.fill(code)
    field.press("Enter")


def expect_approved_on_phone(phone_page: Page) -> None:
    """After a tap on Approve (no confirm code), the phone says it approved; its page then
    follows the request, so by now it may already say the other device is signed in."""
    approved = phone_page.locator("#approved-text")
    signed_in = phone_page.get_by_role("heading", name=re.compile(r"^Signed in on .+ ✓$"))
    expect(approved.or_(signed_in)).to_be_visible(timeout=WAIT_MS)
