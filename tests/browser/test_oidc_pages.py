"""The OpenID Provider's pages in Chromium: a device grant approved from its
verification_uri_complete (the app's name and the user code to compare), the consent page
and the logout question, each checked with axe-core in light and dark."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import BrowserContext, Route, expect
from tests.oauth.provider_support import DEVICE_GRANT, auth_params, pkce, query_of, register

from support import LiveServer, SmtpSink, assert_no_axe_violations

from .flows import WAIT_MS, email_code, sign_in_phone

SCHEMES = pytest.mark.parametrize("color_scheme", ["light", "dark"])


@SCHEMES
def test_a_device_grant_approved_from_the_complete_link(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
    color_scheme: str,
) -> None:
    server = live_server(device_poll_interval=0)
    client = register(server, name="Living Room TV", public=True, redirect_uris=())
    started = httpx.post(
        f"{server.url}/oauth/device_authorization",
        data={"client_id": client.client_id, "scope": "openid email"},
        timeout=10,
    ).json()
    phone = sign_in_phone(
        make_context("phone", color_scheme=color_scheme), server, smtp_sink, "tv@example.test"
    )
    phone.goto(started["verification_uri_complete"])
    expect(phone.locator("#device-grant")).to_contain_text("Living Room TV")
    expect(phone.locator("#device-user-code")).to_have_text(started["user_code"])
    assert_no_axe_violations(phone)
    phone.locator("#approve").click()
    expect(phone.locator("#confirm-code")).to_have_count(0)  # no code to type on a TV
    tokens = httpx.post(
        f"{server.url}/oauth/token",
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": started["device_code"],
            "client_id": client.client_id,
        },
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    expect(phone.locator("h1")).to_contain_text("Signed in on", timeout=WAIT_MS)


@SCHEMES
def test_the_consent_page_and_the_logout_question(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
    color_scheme: str,
) -> None:
    server = live_server()
    client = register(server, name="Photo Shop")
    context = make_context("desktop", color_scheme=color_scheme)
    page = sign_in_phone(context, server, smtp_sink, "shop@example.test")
    landed: list[str] = []

    def at_the_app(route: Route) -> None:  # the app's callback, answered in the browser
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<title>app</title>back")

    page.route(f"{client.redirect_uri}**", at_the_app)
    _, challenge = pkce()
    params = auth_params(client, challenge)
    page.goto(f"{server.url}/oauth/authorize?{httpx.QueryParams(params)}")
    expect(page.locator("#consent-heading")).to_contain_text("Photo Shop")
    expect(page.locator("#consent-scopes")).to_contain_text("See your email address")
    assert_no_axe_violations(page)
    page.locator("#approve").click()
    expect(page).to_have_title("app", timeout=WAIT_MS)
    got = query_of(landed[-1])
    assert got["state"] == params["state"] and got["iss"] == server.url and got["code"]

    page.goto(f"{server.url}/oauth/logout")
    expect(page.locator("#logout-heading")).to_be_visible()
    assert_no_axe_violations(page)
    page.locator("#sign-out").click()
    # the "signed out" page, or the sign-in page where the live sign-out notice took it
    expect(page.locator("h1")).to_have_text(
        re.compile("You are signed out|Sign in"), timeout=WAIT_MS
    )
    assert page.request.get(f"{server.url}/api/v1/me").status == 401  # this browser


def test_signing_in_by_email_on_the_way_to_an_app_lands_at_the_app(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    make_context: Callable[..., BrowserContext],
) -> None:
    """The sign-in form posts to qrlogin and the chain ends at the app's origin, which the
    form's CSP (form-action 'self') would block: the continue page breaks the chain."""
    server = live_server()
    client = register(server, name="Photo Shop", first_party=True)
    page = make_context("desktop").new_page()
    landed: list[str] = []

    def at_the_app(route: Route) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<title>app</title>back")

    page.route(f"{client.redirect_uri}**", at_the_app)
    _, challenge = pkce()
    params = auth_params(client, challenge, login_hint="mail@example.test")
    page.goto(f"{server.url}/oauth/authorize?{httpx.QueryParams(params)}")
    expect(page.locator("#login-for")).to_contain_text("Photo Shop")
    page.locator("#email-signin").click()
    expect(page.locator("#email")).to_have_value("mail@example.test")
    before = len(smtp_sink)
    page.locator("#email").press("Enter")
    page.locator("#code").fill(email_code(smtp_sink, "mail@example.test", after=before))
    page.locator("#code").press("Enter")
    expect(page).to_have_title("app", timeout=WAIT_MS)
    got = query_of(landed[-1])
    assert got["state"] == params["state"] and got["code"]
