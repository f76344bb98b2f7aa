"""The example relying party (examples/oidc_rp) end to end in Chromium, both sites real on
127.0.0.1: "Sign in with qrlogin" → qrlogin's QR page → the QR read from the pixels → a
signed-in phone approves → the desktop types the confirm code → consent → back at the RP,
signed in as the phone's user; then signing out at the RP signs out of both."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, expect
from tests.browser.flows import (
    WAIT_MS,
    LoginPage,
    approve_and_read_confirm_code,
    sign_in_phone,
    type_confirm_code,
)
from tests.oauth.provider_support import cli

from examples.oidc_rp.app import create_app
from support import LiveServer, SmtpSink, assert_no_axe_violations, start_live_server

PHONE_USER = "rp-phone@example.test"


@pytest.fixture
def example_rp() -> Iterator[Callable[[LiveServer], LiveServer]]:
    """Start the example RP for a qrlogin server, registered with ``qrlogin clients add``
    as its README says, once its own URL (a free port) is known."""
    started: list[LiveServer] = []

    def start(qrlogin: LiveServer) -> LiveServer:
        def make_app(url: str) -> tuple[Any, Any]:
            code, out = cli(
                qrlogin,
                "clients", "add", "--name", "Example RP",
                "--redirect-uri", f"{url}/callback",
                "--post-logout-redirect-uri", f"{url}/",
                "--json",
            )  # fmt: skip
            assert code == 0, out
            made = json.loads(out)
            app = create_app(
                qrlogin.url, made["client_id"], made["client_secret"], url, "test-secret"
            )
            return None, app

        server = start_live_server(make_app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_sign_in_with_qrlogin_by_qr_then_sign_out(
    live_server: Callable[..., LiveServer],
    example_rp: Callable[[LiveServer], LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
) -> None:
    qrlogin = live_server(confirm="code")
    rp = example_rp(qrlogin)
    phone = sign_in_phone(make_context("phone"), qrlogin, smtp_sink, PHONE_USER)

    desktop = make_context("desktop").new_page()
    desktop.goto(rp.url)
    desktop.locator("#sign-in").click()
    expect(desktop).to_have_url(re.compile(rf"^{re.escape(qrlogin.url)}/login\?next="))
    expect(desktop.locator("#login-for")).to_contain_text("Example RP", timeout=WAIT_MS)
    login = LoginPage(desktop)
    qr_url = login.qr_url()  # read from the pixels
    assert qr_url.startswith(f"{qrlogin.url}/q/")

    phone.goto(qr_url)
    confirm = approve_and_read_confirm_code(phone)
    type_confirm_code(login, confirm)

    expect(desktop.locator("#consent-heading")).to_contain_text("Example RP", timeout=WAIT_MS)
    assert_no_axe_violations(desktop)
    desktop.locator("#approve").click()
    expect(desktop).to_have_url(f"{rp.url}/", timeout=WAIT_MS)
    expect(desktop.locator("#email")).to_have_text(PHONE_USER)

    desktop.locator("#sign-out").click()
    expect(desktop).to_have_url(f"{rp.url}/", timeout=WAIT_MS)
    expect(desktop.locator("#sign-in")).to_be_visible()
    assert desktop.request.get(f"{qrlogin.url}/api/v1/me").status == 401  # qrlogin too
