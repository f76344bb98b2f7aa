"""Passkeys in Chromium with its virtual authenticator (Chrome DevTools Protocol ``WebAuthn``
domain through Playwright's CDP session): add one on /account, sign out, sign in with the
button, sign out, sign in through the email field's autofill (conditional mediation), remove
it; a cloned authenticator (its counter behind the server's) is refused; axe-core on /signin
and on /account with passkeys listed.

WebAuthn wants a secure context and an RP ID that is a domain, so the server's public URL is
``http://localhost:<port>`` (a secure context; ``127.0.0.1`` is one too, but not a domain)
and the browser opens that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, CDPSession, Page, expect

from support import LiveServer, SmtpSink, assert_no_axe_violations, start_live_server

from .flows import WAIT_MS, sign_in_on_signin_page

EMAIL = "ada@example.test"


@pytest.fixture
def localhost_server(smtp_sink: SmtpSink, tmp_path: Any) -> Iterator[LiveServer]:
    """A live server whose public URL (and so its RP ID) is ``localhost``."""
    from qrlogin.config import Settings
    from qrlogin.web.app import create_app

    def make_app(url: str) -> tuple[Any, Any]:
        settings = Settings(
            data_dir=tmp_path / "server",
            public_url=url.replace("127.0.0.1", "localhost"),
            dev=True,
            smtp_url=smtp_sink.url,
        )
        return settings, create_app(settings)

    server = start_live_server(make_app)
    server.url = server.url.replace("127.0.0.1", "localhost")
    try:
        yield server
    finally:
        server.stop()
        assert not server.server_errors, "\n".join(server.server_errors)


def virtual_authenticator(page: Page, context: BrowserContext) -> tuple[CDPSession, str]:
    """A platform authenticator with resident keys and user verification that answers by
    itself (``automaticPresenceSimulation``)."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def credentials(cdp: CDPSession, authenticator_id: str) -> list[dict[str, Any]]:
    found = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    result: list[dict[str, Any]] = found["credentials"]
    return result


def sign_out(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/account")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.url}/signin", timeout=WAIT_MS)


def add_passkey(page: Page, name: str) -> None:
    page.get_by_label("Name of the new passkey").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#passkey-message")).to_contain_text(f"Added {name}", timeout=WAIT_MS)


def options_calls(page: Page) -> list[str]:
    """The sign-in options the page asks for, from now on."""
    asked: list[str] = []
    page.on(
        "request",
        lambda r: asked.append(r.url) if r.url.endswith("/api/v1/auth/passkey/options") else None,
    )
    return asked


def sign_in_with_the_button(
    page: Page, cdp: CDPSession, authenticator_id: str, server: LiveServer
) -> None:
    """Sign out, then sign in with the button. The virtual authenticator would answer the
    autofill's waiting request at once, so it holds back (no user presence) until the page
    is up, and the button's request takes over from the autofill's."""
    presence = {"authenticatorId": authenticator_id, "enabled": False}
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", presence)
    sign_out(page, server)
    button = page.get_by_role("button", name="Sign in with a passkey")
    expect(button).to_be_visible()
    page.wait_for_function("() => window.qrloginPasskeys !== undefined")
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {**presence, "enabled": True})
    button.click()
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)


def signed_in_user(page: Page, server: LiveServer) -> Any:
    return page.evaluate(
        "async (u) => (await (await fetch(u, {credentials: 'same-origin'})).json())",
        f"{server.url}/api/v1/me",
    )


def test_a_passkey_is_added_used_to_sign_in_both_ways_and_removed(
    localhost_server: LiveServer, smtp_sink: SmtpSink, make_context: Callable[..., BrowserContext]
) -> None:
    server = localhost_server
    context = make_context("desktop")
    page = context.new_page()
    cdp, authenticator_id = virtual_authenticator(page, context)
    page.goto(f"{server.url}/signin")
    sign_in_on_signin_page(page, smtp_sink, EMAIL)
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)

    add_passkey(page, "Work laptop")
    item = page.locator("#passkey-list li")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Work laptop")
    expect(item).to_contain_text("Not used yet")
    assert len(credentials(cdp, authenticator_id)) == 1
    assert_no_axe_violations(page)
    # what the approval page calls before an approval (static/approve.js)
    assert page.evaluate("() => window.qrloginPasskeys.stepUp('')") is True

    asked = options_calls(page)
    sign_in_with_the_button(page, cdp, authenticator_id, server)
    assert signed_in_user(page, server)["user"]["email"] == EMAIL
    assert len(asked) == 2  # the autofill's request, then the button's

    # the autofill: /signin asks for a passkey with mediation "conditional" as it loads, and
    # the virtual authenticator answers it at once, as a person picking it from the email
    # field's suggestions would (it cannot show the suggestions themselves)
    asked.clear()
    before = signed_in_user(page, server)["session_id"]
    page.goto(f"{server.url}/account")
    with page.expect_request(lambda r: r.url.endswith("/api/v1/auth/passkey/verify")):
        page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    expect(page.locator("#passkey-list li")).to_contain_text("Last used")
    after = signed_in_user(page, server)
    assert after["user"]["email"] == EMAIL and after["session_id"] != before
    assert len(asked) == 1  # the autofill's request alone: no button was pressed
    expect(page.locator("#passkey-list li")).to_contain_text("Last used")

    page.get_by_role("button", name="Rename Work laptop").click()
    page.get_by_label("New name for Work laptop").fill("Old laptop")
    assert_no_axe_violations(page)
    page.get_by_role("button", name="Save name").click()
    expect(page.locator("#passkey-message")).to_contain_text("Renamed to Old laptop")
    # the virtual authenticator's keys are not backup eligible
    expect(page.locator("#passkey-list li h4")).to_have_text("Old laptop This device only")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove Old laptop").click()
    expect(page.locator("#passkey-message")).to_contain_text("Removed Old laptop")
    expect(page.locator("#passkey-list li")).to_have_count(0)
    expect(page.locator("#passkeys-empty")).to_be_visible()
    # the authenticator still holds the key, but the account no longer has it
    assert page.evaluate("() => window.qrloginPasskeys.stepUp('')") is False


def test_a_passkey_whose_counter_went_back_is_refused(
    localhost_server: LiveServer, smtp_sink: SmtpSink, make_context: Callable[..., BrowserContext]
) -> None:
    server = localhost_server
    context = make_context("desktop")
    page = context.new_page()
    cdp, authenticator_id = virtual_authenticator(page, context)
    page.goto(f"{server.url}/signin")
    sign_in_on_signin_page(page, smtp_sink, EMAIL)
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    add_passkey(page, "Phone")
    original = credentials(cdp, authenticator_id)[0]
    # the real authenticator, used often since: well ahead of a copy of the new one (each
    # refused try moves a copy's counter on by one, and the page tries the autofill again)
    cdp.send("WebAuthn.clearCredentials", {"authenticatorId": authenticator_id})
    used = {"authenticatorId": authenticator_id, "credential": {**original, "signCount": 100}}
    cdp.send("WebAuthn.addCredential", used)
    sign_in_with_the_button(page, cdp, authenticator_id, server)
    assert credentials(cdp, authenticator_id)[0]["signCount"] == 101

    # a clone made when the passkey was new: the same key, the old counter
    presence = {"authenticatorId": authenticator_id, "enabled": False}
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", presence)
    sign_out(page, server)
    cdp.send("WebAuthn.clearCredentials", {"authenticatorId": authenticator_id})
    clone = {"authenticatorId": authenticator_id, "credential": original}
    cdp.send("WebAuthn.addCredential", clone)
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {**presence, "enabled": True})
    page.get_by_role("button", name="Sign in with a passkey").click()

    expect(page.locator("#passkey-signin-error")).to_have_text(
        "That passkey could not be used. Try again, or sign in by email.", timeout=WAIT_MS
    )
    expect(page).to_have_url(f"{server.url}/signin")
    assert_no_axe_violations(page)


def test_an_email_sign_in_is_finished_with_the_passkey(
    localhost_server: LiveServer, smtp_sink: SmtpSink, make_context: Callable[..., BrowserContext]
) -> None:
    server = localhost_server
    context = make_context("desktop")
    page = context.new_page()
    cdp, authenticator_id = virtual_authenticator(page, context)
    page.goto(f"{server.url}/signin")
    sign_in_on_signin_page(page, smtp_sink, EMAIL)
    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    add_passkey(page, "Laptop")
    # by email this time: the authenticator holds back, so the autofill does not sign in
    presence = {"authenticatorId": authenticator_id, "enabled": False}
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", presence)
    sign_out(page, server)

    sign_in_on_signin_page(page, smtp_sink, EMAIL)
    button = page.get_by_role("button", name="Use your passkey")
    expect(button).to_be_visible(timeout=WAIT_MS)
    assert_no_axe_violations(page)
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {**presence, "enabled": True})
    button.click()

    expect(page).to_have_url(f"{server.url}/account", timeout=WAIT_MS)
    me = signed_in_user(page, server)
    devices = page.evaluate(
        "async (u) => (await (await fetch(u, {credentials: 'same-origin'})).json())",
        f"{server.url}/api/v1/sessions",
    )
    this = next(d for d in devices["sessions"] if d["id"] == me["session_id"])
    assert this["amr"] == ["email", "passkey"]
