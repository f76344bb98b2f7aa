"""Embedded mode: a host app mounts ``QRLogin(...).asgi()`` under ``/qr`` with its own
identity adapters; qrlogin runs only the handshake (real SQLite, the host's own cookie)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrlogin import QRLogin, Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.identity.ports import (
    Cookie,
    HttpRequest,
    SessionGrant,
    SignedIn,
    StartedSession,
)
from support import start_live_server

HOST = "http://host.test"


@dataclass
class HostIdentity:
    """A host app's users and cookie sessions, kept in memory: ``sessions`` maps its cookie
    value to (user, session id)."""

    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    started: list[SessionGrant] = field(default_factory=list)

    def sign_in(self, user: str) -> str:
        cookie = secrets.token_urlsafe(16)
        self.sessions[cookie] = (user, f"host-{len(self.sessions)}")
        return cookie

    async def signed_in(self, request: HttpRequest) -> SignedIn | None:
        found = self.sessions.get(request.cookies.get("host_session", ""))
        if found is None or found[1] in self.ended:
            return None
        return SignedIn(user_id=found[0], display_name=found[0].title(), session_id=found[1])

    async def session_is_live(self, user_id: str, session_id: str) -> bool:
        return session_id not in self.ended

    async def start_session(self, grant: SessionGrant) -> StartedSession:
        self.started.append(grant)
        value = self.sign_in(grant.user_id)
        return StartedSession(
            user_id=grant.user_id,
            display_name=grant.user_id.title(),
            session_id=self.sessions[value][1],
            expires_at=4_000_000_000.0,
            cookie=Cookie("host_session", value, 3600, "/", secure=False),
        )


@dataclass
class Host:
    app: FastAPI
    qr: QRLogin
    identity: HostIdentity

    def client(self, cookie: str | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("198.51.100.7", 5000)),
            base_url=HOST,
        )
        if cookie:
            client.cookies.set("host_session", cookie)
        return client


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    identity = HostIdentity()
    qr = QRLogin(
        Settings(
            data_dir=tmp_path,
            public_url=f"{HOST}/qr",
            signin_url="/login?next={next}",
            confirm="code",
        ),
        approvers=identity,
        sessions=identity,
        clock=FrozenClock(),
    )
    app = FastAPI(lifespan=qr.lifespan)
    app.mount("/qr", qr.asgi())
    async with qr.lifespan():
        yield Host(app, qr, identity)


async def start(host: Host) -> tuple[httpx.AsyncClient, dict[str, str]]:
    desktop = host.client()
    created = await desktop.post("/qr/api/v1/login-requests", headers={"qrlogin-client": "browser"})
    assert created.status_code == 201, created.text
    return desktop, created.json()


async def test_a_mounted_qrlogin_builds_links_under_its_prefix(host: Host) -> None:
    desktop, body = await start(host)
    assert body["qr_url"].startswith(f"{HOST}/qr/q/")
    cookie = desktop.cookies.jar
    (requester,) = [c for c in cookie if c.name.endswith("qrl_requester")]
    assert requester.path == "/qr"
    state = await desktop.get(f"/qr/api/v1/login-requests/{body['id']}")
    assert state.status_code == 200 and state.json()["status"] == "pending"


async def test_the_host_signs_the_new_device_in_with_its_own_session(host: Host) -> None:
    desktop, body = await start(host)
    phone = host.client(host.identity.sign_in("ann"))
    handle = body["qr_url"].rsplit("/", 1)[1]
    page = await phone.get(f"/qr/q/{handle}")
    assert page.status_code == 200
    assert 'action="/qr/q/' in page.text and 'href="/qr/static/site.css"' in page.text
    headers = {"qrlogin-client": "browser"}
    approved = await phone.post(f"/qr/api/v1/scan/{handle}/approve", headers=headers)
    assert approved.status_code == 200, approved.text
    code = approved.json()["confirm_code"]
    exchanged = await desktop.post(
        f"/qr/api/v1/login-requests/{body['id']}/session",
        json={"confirm_code": code},
        headers=headers,
    )
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["user"] == {"id": "ann", "display_name": "Ann"}
    assert exchanged.json()["access_token"] is None
    new_cookie = exchanged.cookies.get("host_session")
    assert new_cookie and host.identity.sessions[new_cookie][0] == "ann"
    (grant,) = host.identity.started
    assert (grant.user_id, grant.linked_by, grant.api) == ("ann", "qr", False)
    assert grant.approver_session_id == host.identity.sessions[phone.cookies["host_session"]][1]


async def test_an_approver_not_signed_in_to_the_host_is_sent_to_the_hosts_sign_in(
    host: Host,
) -> None:
    _, body = await start(host)
    handle = body["qr_url"].rsplit("/", 1)[1]
    phone = host.client()
    page = await phone.get(f"/qr/q/{handle}")
    assert page.status_code == 303
    # back by the hold cookie (on qrlogin's path), not by the handle, which rotates meanwhile
    assert page.headers["location"] == "/login?next=/qr/q/continue"
    assert "Path=/qr" in page.headers["set-cookie"]
    phone.cookies.set("host_session", host.identity.sign_in("ann"))
    resumed = await phone.get("/qr/q/continue")
    assert resumed.status_code == 303
    assert resumed.headers["location"] == f"/qr/q/{handle}"


async def test_a_host_session_ended_before_the_exchange_refuses_it(host: Host) -> None:
    desktop, body = await start(host)
    phone_cookie = host.identity.sign_in("ann")
    phone = host.client(phone_cookie)
    handle = body["qr_url"].rsplit("/", 1)[1]
    headers = {"qrlogin-client": "browser"}
    await phone.get(f"/qr/api/v1/scan/{handle}")
    code = (await phone.post(f"/qr/api/v1/scan/{handle}/approve", headers=headers)).json()[
        "confirm_code"
    ]
    session_id = host.identity.sessions[phone_cookie][1]
    host.identity.ended.add(session_id)
    assert await host.qr.session_ended(session_id) == 1
    state = await desktop.get(f"/qr/api/v1/login-requests/{body['id']}")
    assert state.json()["status"] == "denied"
    exchanged = await desktop.post(
        f"/qr/api/v1/login-requests/{body['id']}/session",
        json={"confirm_code": code},
        headers=headers,
    )
    assert exchanged.status_code == 403
    assert exchanged.json()["error"] == "access_denied"
    assert host.identity.started == []


async def test_embedded_mode_serves_no_built_in_accounts(host: Host) -> None:
    client = host.client()
    for path in ("/qr/signin", "/qr/account", "/qr/api/v1/me", "/qr/login"):
        assert (await client.get(path)).status_code == 404, path


def test_the_requester_stream_works_under_the_prefix_on_a_real_server(tmp_path: Path) -> None:
    """Served by uvicorn (httpx's ASGI transport cannot stream): the fast event-stream
    handler finds its route under the host's mount point."""

    def make_app(url: str) -> tuple[Settings, FastAPI]:
        identity = HostIdentity()
        settings = Settings(data_dir=tmp_path, public_url=f"{url}/qr")
        qr = QRLogin(settings, approvers=identity, sessions=identity)
        app = FastAPI(lifespan=qr.lifespan)
        app.mount("/qr", qr.asgi())
        return settings, app

    live = start_live_server(make_app)
    try:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            body = client.post("/qr/api/v1/login-requests").json()
            auth = {"authorization": f"Bearer {body['secret']}"}
            path = f"/qr/api/v1/login-requests/{body['id']}/events"
            with client.stream("GET", path, headers=auth) as events:
                assert events.status_code == 200
                assert events.headers["content-type"].startswith("text/event-stream")
                assert "x-request-id" in events.headers
                for line in events.iter_lines():
                    if line.startswith("data:"):
                        assert '"status":"pending"' in line
                        assert f'"qr_url":"{live.url}/qr/q/' in line
                        break
    finally:
        live.stop()


async def test_api_errors_under_the_prefix_stay_json_for_a_browser(host: Host) -> None:
    response = await host.client().get(
        "/qr/api/v1/login-requests/lr_unknown", headers={"accept": "text/html,*/*"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "invalid_secret"


async def test_the_access_log_redacts_handles_under_the_prefix(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    _, body = await start(host)
    handle = body["qr_url"].rsplit("/", 1)[1]
    with caplog.at_level("INFO", logger="qrlogin.access"):
        await host.client(host.identity.sign_in("ann")).get(f"/qr/q/{handle}")
    lines = [r.getMessage() for r in caplog.records if r.name == "qrlogin.access"]
    assert any(line.startswith("GET /qr/q/{…}") for line in lines), lines
    assert not any(handle in r.getMessage() for r in caplog.records)
