"""Issue 2, end to end in Chromium: a desktop shows a QR, a phone scans it (the test reads
the QR from the page's pixels), signs in by email on the way, approves, and the desktop is
signed in without a reload. Deny and expiry paths too, and the QR's colours in dark mode."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import BrowserContext, expect

from qrlogin.core.policy import Policy
from support import LiveServer, SmtpSink, decode_qr, read_qr_from_page

from .flows import (
    WAIT_MS,
    approval_details,
    assert_signed_in_without_reload,
    expect_approved_on_phone,
    mark_page,
    open_login,
    sign_in_on_signin_page,
    sign_in_phone,
)

EMAIL = "ada@example.test"


def test_scan_sign_in_on_the_way_approve_and_the_desktop_is_signed_in_without_reload(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server(confirm="tap")
    login = open_login(desktop, server)
    mark_page(login.page)
    qr_url = login.qr_url()
    assert re.fullmatch(re.escape(server.url) + r"/q/[A-Za-z0-9_-]{22,}", qr_url), qr_url
    expect(login.page.locator("#countdown")).to_have_text(re.compile(r"Expires in \d+:\d\d"))

    # The phone is not signed in yet: the QR's link sends it to sign in and back.
    mobile = phone.new_page()
    mobile.goto(qr_url)
    expect(mobile).to_have_url(re.compile(r"/signin\?next="), timeout=WAIT_MS)
    sign_in_on_signin_page(mobile, smtp_sink, EMAIL)
    expect(mobile).to_have_url(re.compile(re.escape(f"{server.url}/q/") + r"[\w-]+$"))

    # Scanning alone approves nothing: the phone shows what asks, the desktop waits.
    expect(mobile.get_by_role("heading", name="Sign in on another device?")).to_be_visible()
    details = approval_details(mobile)
    assert details["device"] == "Chrome on Linux"
    assert "Chrome" in details["browser"] and "Linux" in details["browser"]
    assert details["ip"] == "127.0.0.1"
    assert re.fullmatch(r"\d+ seconds? ago|\d+ min ago", details["age"]), details["age"]
    assert details["network"] == "Same network as this phone"
    approve, deny = mobile.locator("#approve"), mobile.locator("#deny")
    expect(approve).to_be_visible()
    expect(deny).to_be_visible()
    approve_box, deny_box = approve.bounding_box(), deny.bounding_box()
    assert approve_box and deny_box
    assert (approve_box["width"], approve_box["height"]) == (deny_box["width"], deny_box["height"])
    expect(login.page.locator("#state-scanned")).to_be_visible(timeout=WAIT_MS)
    expect(login.page.locator("#state-scanned")).to_contain_text("Confirm on your phone")

    approve.click()
    expect_approved_on_phone(mobile)
    assert_signed_in_without_reload(login, server, EMAIL)
    # the desktop holds a session of its own (not the phone's): both stay signed in
    mobile.goto(f"{server.url}/account")
    expect(mobile.locator("#email")).to_have_text(EMAIL)


def test_deny_shows_the_denied_state_and_a_new_code_button(
    live_server: Callable[..., LiveServer],
    smtp_sink: SmtpSink,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    server = live_server(confirm="tap")
    mobile = sign_in_phone(phone, server, smtp_sink, EMAIL)
    login = open_login(desktop, server)
    first = login.qr_url()

    mobile.goto(first)
    mobile.locator("#deny").click()
    expect(mobile.locator("#denied-text")).to_be_visible(timeout=WAIT_MS)

    page = login.page
    expect(page.locator("#state-denied")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#denied-text")).to_contain_text("denied on your phone")
    expect(page.locator("#state-waiting")).to_be_hidden()
    page.locator("#state-denied").get_by_role("button", name="Show a new code").click()
    expect(page.locator("#state-waiting")).to_be_visible(timeout=WAIT_MS)
    second = login.qr_url()
    assert second != first
    assert page.url == f"{server.url}/login"

    # the old QR is dead (its approver is shown how it ended), the new one works
    mobile.goto(first)
    expect(mobile.get_by_role("heading", name="Denied")).to_be_visible()
    expect(mobile.locator("#approve")).to_have_count(0)
    mobile.goto(second)
    expect(mobile.locator("#approve")).to_be_visible(timeout=WAIT_MS)


def test_the_qr_rotates_while_pending_then_expires_with_a_new_code_button(
    live_server: Callable[..., LiveServer], desktop: BrowserContext
) -> None:
    server = live_server(
        app_kwargs={"policy": Policy(request_lifetime=4, handle_rotation=2, handle_grace=1)}
    )
    login = open_login(desktop, server)
    page = login.page
    first = login.qr_url()

    # rotation: the picture itself changes while the request is still pending
    page.wait_for_function(
        "(first) => document.querySelector('qr-login').shadowRoot"
        ".getElementById('qr-link').textContent !== first",
        arg=first,
        timeout=WAIT_MS,
    )
    rotated = read_qr_from_page(page, "#qr", timeout=WAIT_MS / 1000)
    assert rotated != first
    assert rotated.rsplit("/", 1)[0] == first.rsplit("/", 1)[0]

    expired = page.locator("#state-expired")
    expect(expired).to_be_visible(timeout=WAIT_MS)
    expect(expired).to_contain_text("The code expired")
    expect(page.locator("#state-waiting")).to_be_hidden()
    expired.get_by_role("button", name="Show a new code").click()
    expect(page.locator("#state-waiting")).to_be_visible(timeout=WAIT_MS)
    fresh_link = re.compile(re.escape(f"{server.url}/q/") + r"(?!" + re.escape(rotated[-22:]) + ")")
    expect(page.locator("#qr-link")).to_have_text(fresh_link, timeout=WAIT_MS)
    assert page.locator("#qr-link").inner_text() not in (first, rotated)


def test_the_qr_stays_black_on_white_in_dark_mode(
    live_server: Callable[..., LiveServer], make_context: Callable[..., BrowserContext]
) -> None:
    from PIL import Image

    server = live_server()
    context = make_context("desktop", color_scheme="dark")
    login = open_login(context, server)
    page = login.page
    assert page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches")
    # the page itself is dark...
    body_bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert _luminance(body_bg) < 0.2, body_bg
    # ...the QR is not: black modules on a white box with its quiet zone
    url = login.qr_url()
    assert url.startswith(f"{server.url}/q/")
    colours: dict[str, Any] = page.evaluate(
        """() => {
          const widget = document.querySelector('qr-login').shadowRoot;
          const svg = widget.querySelector('#qr svg');
          return {
            box: getComputedStyle(widget.getElementById('qr')).backgroundColor,
            dark: getComputedStyle(svg.querySelector('path[stroke]')).stroke,
            light: getComputedStyle(svg.querySelector('path[fill]')).fill,
          };
        }"""
    )
    assert colours["box"] == "rgb(255, 255, 255)", colours
    assert colours["dark"] == "rgb(0, 0, 0)", colours
    assert colours["light"] == "rgb(255, 255, 255)", colours

    png = page.locator("#qr").screenshot()
    assert decode_qr(png) == [url]
    image = Image.open(io.BytesIO(png)).convert("L")
    grey = list(image.tobytes())  # 0 black .. 255 white, row by row
    assert min(grey) < 30 and max(grey) > 225, (min(grey), max(grey))
    w, h = image.size
    # a quiet zone of 4 modules (at least 16 px here) is white all round
    edge = [(x, y) for x in range(6, w - 6) for y in (6, h - 7)]
    edge += [(x, y) for y in range(6, h - 6) for x in (6, w - 7)]
    for x, y in edge:
        assert grey[y * w + x] > 225, f"quiet zone not white at {(x, y)}"


def _luminance(css_rgb: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css_rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
