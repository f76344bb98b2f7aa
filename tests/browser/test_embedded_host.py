"""Issue 10 §2, end to end in Chromium against the example host app (examples/fastapi_host)
served by a real uvicorn: the host keeps its own users, passwords and cookie sessions, and
qrlogin, mounted at /qr, only runs the handshake. A phone signed in to the host approves; the
desktop's <qr-login> widget on the host's own login page signs it in to the host, with the
host's own session cookie. A phone whose host session ends before the exchange refuses it."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from examples.fastapi_host import HostApp, create_app
from examples.fastapi_host.qr import COOKIE
from examples.fastapi_host.store import HostSession
from support import LiveServer, assert_no_axe_violations, start_live_server

from .flows import (
    WAIT_MS,
    LoginPage,
    approve_and_read_confirm_code,
    mark_page,
    marker_at_done,
    open_login,
    type_confirm_code,
)

USERNAME, DISPLAY_NAME, PASSWORD = "ann", "Ann Example", "correct horse battery staple"


@dataclass
class Host:
    server: LiveServer
    app: HostApp
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def session_of(self, token: str) -> HostSession:
        found = self.app.store.session_of(token)
        assert found is not None, "the cookie names no live session of the host"
        return found[0]

    def builtin_rows(self) -> dict[str, int]:
        """Rows in qrlogin's own users and sessions tables (its own database file)."""
        with sqlite3.connect(self.data_dir / "qrlogin" / "qrlogin.db") as db:
            return {
                table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("users", "sessions")
            }


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    apps: list[HostApp] = []

    def make_app(url: str) -> tuple[Any, Any]:
        app = create_app(tmp_path, url)
        app.store.set_password(USERNAME, DISPLAY_NAME, PASSWORD)
        apps.append(app)
        return app.qr.settings, app.app

    server = start_live_server(make_app)
    try:
        yield Host(server, apps[0], tmp_path)
    finally:
        server.stop()
        apps[0].store.close()
    assert not server.server_errors, "\n".join(server.server_errors)


def sign_in_with_password(page: Page) -> None:
    """On the host's /login: type the username and password and submit."""
    page.get_by_label("Username", exact=True).fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def phone_signed_in_to_the_host(phone: BrowserContext, host: Host) -> tuple[Page, HostSession]:
    page = phone.new_page()
    page.goto(f"{host.url}/login")
    sign_in_with_password(page)
    expect(page).to_have_url(f"{host.url}/", timeout=WAIT_MS)
    expect(page.locator("#who")).to_have_text(f"Signed in as {DISPLAY_NAME}")
    return page, host.session_of(host_cookie(phone)["value"])


def host_cookie(context: BrowserContext) -> dict[str, Any]:
    found = [c for c in context.cookies() if c["name"] == COOKIE]
    assert len(found) == 1, context.cookies()
    return dict(found[0])


def open_host_login(desktop: BrowserContext, host: Host) -> tuple[LoginPage, str]:
    """The desktop on the host's own login page: the QR read from the page's pixels."""
    login = open_login(desktop, host.server)  # the host's login page is /login too
    expect(login.page.get_by_role("heading", name="With your password")).to_be_visible()
    mark_page(login.page)
    qr_url = login.qr_url()
    assert re.fullmatch(re.escape(host.url) + r"/qr/q/[A-Za-z0-9_-]{22,}", qr_url), qr_url
    return login, qr_url


def exchange_from_the_page(page: Page, request_id: str, code: str) -> dict[str, Any]:
    """The exchange as the widget sends it, from the desktop's page (its requester cookie)."""
    reply: dict[str, Any] = page.evaluate(
        """async ([id, code]) => {
          const res = await fetch(`/qr/api/v1/login-requests/${id}/session`, {
            method: "POST", credentials: "same-origin",
            headers: { "Content-Type": "application/json", "Qrlogin-Client": "browser" },
            body: JSON.stringify({ confirm_code: code }),
          });
          return { status: res.status, body: await res.json() };
        }""",
        [request_id, code],
    )
    return reply


def test_a_phone_signed_in_to_the_host_signs_the_desktop_in_to_the_host_by_qr(
    host: Host, desktop: BrowserContext, phone: BrowserContext
) -> None:
    mobile, phone_session = phone_signed_in_to_the_host(phone, host)
    login, qr_url = open_host_login(desktop, host)
    assert_no_axe_violations(login.page)  # the host's page with the widget on it

    mobile.goto(qr_url)
    expect(mobile.get_by_role("heading", name="Sign in on another device?")).to_be_visible()
    expect(login.page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)
    code = approve_and_read_confirm_code(mobile)
    type_confirm_code(login, code)

    # the widget's redirect="/" takes the desktop to the host's home page, signed in
    page = login.page
    expect(page).to_have_url(f"{host.url}/", timeout=WAIT_MS)
    expect(page.locator("#who")).to_have_text(f"Signed in as {DISPLAY_NAME}")
    expect(page.get_by_text("signed in with a QR code scanned on another device")).to_be_visible()
    assert marker_at_done(page) == "1", "the page reloaded before it showed it was signed in"
    assert login.navigations == [f"{host.url}/login", f"{host.url}/"], login.navigations

    # the desktop holds a new session of the host's own, linked from the phone's
    cookie = host_cookie(desktop)
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Lax", "/")
    session = host.session_of(cookie["value"])
    assert session.id != phone_session.id
    assert session.user_id == phone_session.user_id
    assert (session.signed_in_with, session.linked_from) == ("qr", phone_session.id)
    assert session.login_request_id == login.request_ids()[0]
    assert cookie["value"] != host_cookie(phone)["value"]
    # qrlogin signed nobody in itself: no cookie of its own sessions, no built-in rows
    assert not [c for c in desktop.cookies() if c["name"].endswith("qrl_session")]
    assert host.builtin_rows() == {"users": 0, "sessions": 0}
    # and the phone is still signed in to the host
    mobile.goto(f"{host.url}/")
    expect(mobile.locator("#who")).to_have_text(f"Signed in as {DISPLAY_NAME}")


def test_a_phone_that_signs_out_of_the_host_after_approving_ends_the_sign_in(
    host: Host, desktop: BrowserContext, phone: BrowserContext
) -> None:
    login, qr_url = open_host_login(desktop, host)

    # not signed in yet: the QR's link sends the phone to the host's sign-in and back
    mobile = phone.new_page()
    mobile.goto(qr_url)
    expect(mobile).to_have_url(re.compile(r"/login\?next=/qr/q/"), timeout=WAIT_MS)
    sign_in_with_password(mobile)
    expect(mobile).to_have_url(qr_url, timeout=WAIT_MS)
    code = approve_and_read_confirm_code(mobile)
    expect(login.page.locator("#state-confirm")).to_be_visible(timeout=WAIT_MS)

    # the phone signs out of the host: the host tells qrlogin, the desktop hears it live
    mobile.goto(f"{host.url}/")
    mobile.get_by_role("button", name="Sign out").click()
    expect(mobile).to_have_url(f"{host.url}/login", timeout=WAIT_MS)
    expect(login.page.locator("#state-denied")).to_be_visible(timeout=WAIT_MS)
    expect(login.page.locator("#state-confirm")).to_be_hidden()

    refused = exchange_from_the_page(login.page, login.request_ids()[0], code)
    assert refused["status"] == 403, refused
    assert refused["body"]["error"] == "access_denied"
    assert COOKIE not in {c["name"] for c in desktop.cookies()}
    assert login.page.url == f"{host.url}/login"


def test_a_host_session_ended_without_telling_qrlogin_still_refuses_the_exchange(
    host: Host, desktop: BrowserContext, phone: BrowserContext
) -> None:
    """The host ended the phone's session and forgot ``qr.session_ended``: the desktop still
    asks for the code, but the exchange asks the host whether the approver's session is
    live, and the widget shows the refusal."""
    mobile, phone_session = phone_signed_in_to_the_host(phone, host)
    login, qr_url = open_host_login(desktop, host)
    mobile.goto(qr_url)
    code = approve_and_read_confirm_code(mobile)
    expect(login.page.locator("#state-confirm")).to_be_visible(timeout=WAIT_MS)

    assert host.app.store.end_session(phone_session.id)
    type_confirm_code(login, code)

    expect(login.page.locator("#state-denied")).to_be_visible(timeout=WAIT_MS)
    assert COOKIE not in {c["name"] for c in desktop.cookies()}
    refused = exchange_from_the_page(login.page, login.request_ids()[0], code)
    assert (refused["status"], refused["body"]["error"]) == (403, "access_denied")
    mobile.goto(f"{host.url}/")
    expect(mobile).to_have_url(f"{host.url}/login")
