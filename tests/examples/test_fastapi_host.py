"""The example host app's own parts (examples/fastapi_host), in-process on real SQLite: its
password sign-in and cookie session, its sign-out telling qrlogin, and the checks that keep
its forms and redirects on its own origin. The whole QR sign-in through it is in
tests/browser/test_embedded_host.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from examples.fastapi_host import HostApp, create_app
from examples.fastapi_host.app import safe_next
from examples.fastapi_host.passwords import hash_password, verify_password
from examples.fastapi_host.qr import COOKIE

ORIGIN = "http://host.test"
SAME_ORIGIN = {"origin": ORIGIN}


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[HostApp]:
    made = create_app(tmp_path, ORIGIN)
    made.store.set_password("ann", "Ann Example", "s3cret pass")
    async with made.qr.lifespan():
        yield made
    made.store.close()


def client(host: HostApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=host.app, client=("198.51.100.7", 5000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN)


async def sign_in(browser: httpx.AsyncClient, password: str = "s3cret pass", **form: str):  # type: ignore[no-untyped-def]
    return await browser.post(
        "/login", data={"username": "ann", "password": password, **form}, headers=SAME_ORIGIN
    )


def test_a_password_hash_is_salted_and_verifies_only_its_password() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("pw", first) and verify_password("pw", second)
    assert not verify_password("pW", first)
    assert not verify_password("pw", "md5$whatever")


@pytest.mark.parametrize(
    ("target", "goes_to"),
    [
        ("/qr/q/abc", "/qr/q/abc"),
        ("/account?tab=devices", "/account?tab=devices"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nLocation: //evil.example", "/"),
    ],
)
def test_sign_in_goes_on_only_to_a_path_on_this_site(target: str | None, goes_to: str) -> None:
    assert safe_next(target) == goes_to


async def test_a_password_sign_in_sets_the_hosts_own_http_only_lax_cookie(host: HostApp) -> None:
    async with client(host) as browser:
        assert (await browser.get("/")).headers["location"] == "/login"
        signed_in = await sign_in(browser, next="/qr/q/abc")
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/qr/q/abc"
        cookie = signed_in.headers["set-cookie"].lower()
        assert cookie.startswith(f"{COOKIE}=") and "httponly" in cookie and "samesite=lax" in cookie
        home = await browser.get("/")
        assert home.status_code == 200
        assert "Signed in as Ann Example" in home.text
        assert "with your password" in home.text


async def test_a_wrong_password_and_an_unknown_user_get_the_same_reply(host: HostApp) -> None:
    async with client(host) as browser:
        wrong = await sign_in(browser, "not it")
        unknown = await browser.post(
            "/login", data={"username": "bob", "password": "x"}, headers=SAME_ORIGIN
        )
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password" in wrong.text
    assert wrong.text == unknown.text
    assert COOKIE not in wrong.cookies


async def test_the_hosts_forms_refuse_posts_from_other_origins(host: HostApp) -> None:
    async with client(host) as browser:
        for origin in ({"origin": "https://evil.example"}, {"origin": "null"}, {}):
            refused = await browser.post(
                "/login", data={"username": "ann", "password": "s3cret pass"}, headers=origin
            )
            assert refused.status_code == 403, origin
            assert COOKIE not in refused.cookies
        await sign_in(browser)
        assert (
            await browser.post("/logout", headers={"origin": "https://evil.example"})
        ).status_code == 403
        assert "Signed in as" in (await browser.get("/")).text


async def test_signing_out_ends_the_session_and_the_approvals_it_gave(host: HostApp) -> None:
    async with client(host) as phone, client(host) as desktop:
        await sign_in(phone)
        created = (
            await desktop.post("/qr/api/v1/login-requests", headers={"qrlogin-client": "browser"})
        ).json()
        handle = created["qr_url"].rsplit("/", 1)[1]
        assert (await phone.get(f"/qr/api/v1/scan/{handle}")).status_code == 200
        approve = await phone.post(
            f"/qr/api/v1/scan/{handle}/approve", headers={"qrlogin-client": "browser"}
        )
        assert approve.status_code == 200, approve.text

        token = phone.cookies[COOKIE]
        signed_out = await phone.post("/logout", headers=SAME_ORIGIN)
        assert signed_out.headers["location"] == "/login"
        assert host.store.session_of(token) is None  # ended, not just its cookie dropped
        phone.cookies.set(COOKIE, token)
        assert (await phone.get("/")).headers["location"] == "/login"
        state = (await desktop.get(f"/qr/api/v1/login-requests/{created['id']}")).json()
        assert (state["status"], state["reason"]) == ("denied", "approver_signed_out")


def test_qrlogin_keeps_its_headers_and_streams_behind_the_hosts_own_middleware(
    tmp_path: Path,
) -> None:
    """Served by uvicorn with two common host middlewares around everything (a
    ``BaseHTTPMiddleware`` and gzip): qrlogin's own CSP stays on its responses and its event
    stream still streams, uncompressed."""
    from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.requests import Request
    from starlette.responses import Response

    from support import start_live_server

    made: list[HostApp] = []

    async def tag(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-host-middleware"] = "1"
        return response

    def make_app(url: str) -> tuple[object, object]:
        host = create_app(tmp_path, url)
        host.app.add_middleware(BaseHTTPMiddleware, dispatch=tag)
        host.app.add_middleware(GZipMiddleware, minimum_size=10)
        made.append(host)
        return host.qr.settings, host.app

    live = start_live_server(make_app)
    try:
        with httpx.Client(base_url=live.url, timeout=10) as http:
            script = http.get("/qr/static/qrlogin.js")
            assert script.headers["x-host-middleware"] == "1"
            assert "frame-ancestors 'none'" in script.headers["content-security-policy"]
            body = http.post("/qr/api/v1/login-requests").json()
            headers = {"authorization": f"Bearer {body['secret']}", "accept-encoding": "gzip"}
            path = f"/qr/api/v1/login-requests/{body['id']}/events"
            with http.stream("GET", path, headers=headers) as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                assert "content-encoding" not in events.headers
                assert events.headers["x-host-middleware"] == "1"
                first = next(line for line in events.iter_lines() if line.startswith("data:"))
                assert '"status":"pending"' in first
    finally:
        live.stop()
        made[0].store.close()
    assert not live.server_errors, live.server_errors


async def test_a_camera_less_sign_in_types_the_user_code_on_the_hosts_signed_in_phone(
    host: HostApp,
) -> None:
    async with client(host) as phone, client(host) as desktop:
        to_sign_in = await phone.get("/qr/link")
        assert (to_sign_in.status_code, to_sign_in.headers["location"]) == (
            303,
            "/login?next=/qr/link",
        )
        await sign_in(phone)
        form = await phone.get("/qr/link")
        assert form.status_code == 200 and 'action="/qr/link"' in form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        created = (
            await desktop.post("/qr/api/v1/login-requests", headers={"qrlogin-client": "browser"})
        ).json()
        forged = await phone.post(
            "/qr/link", data={"user_code": created["user_code"], "csrf": "forged"}
        )
        assert forged.status_code == 403  # qrlogin's own CSRF check, under the mount
        typed = await phone.post(
            "/qr/link", data={"user_code": created["user_code"], "csrf": csrf.group(1)}
        )
        assert typed.status_code == 303, typed.text  # redirect after POST, under the mount
        assert typed.headers["location"].startswith("/qr/q/")
        approval = await phone.get(typed.headers["location"])
        assert 'id="approve"' in approval.text
        state = (await desktop.get(f"/qr/api/v1/login-requests/{created['id']}")).json()
        assert state["status"] == "scanned"
