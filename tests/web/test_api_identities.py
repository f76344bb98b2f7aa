"""The requester and approver API's core contract on both adapters of the identity ports
(qrlogin's own sessions, and the example host app's, examples/fastapi_host), served at the
root of the origin and mounted under ``/qr``: create, scan, approve, deny and withdraw, the
exchange with the confirm code, a second exchange refused, an ended approver session refused.
Real SQLite, the apps on httpx's ASGI transport with their lifespans run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from examples.fastapi_host import create_app as create_host_app
from examples.fastapi_host.qr import COOKIE, HostApprovers, HostSessions
from examples.fastapi_host.store import HostStore
from qrlogin import QRLogin, Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.tokens import new_id
from qrlogin.identity.device import Device
from qrlogin.services import Services
from qrlogin.store.records import User
from qrlogin.web.app import create_app

ORIGIN = "http://app.test"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"
BROWSER = {"qrlogin-client": "browser"}


@dataclass
class Deployment:
    """One way to serve qrlogin, with the identity adapter it runs on."""

    app: Any
    prefix: str  # "" at the origin's root, "/qr" mounted
    cookie: str  # the name of the adapter's session cookie
    sign_in: Callable[[str], Awaitable[tuple[str, str]]]  # name -> (token, session id)
    end_session: Callable[[str], Awaitable[None]]  # as the owner does: qrlogin is told
    user_of: Callable[[str], Awaitable[str | None]]  # token -> whose live session

    def client(self, ip: str = "203.0.113.5") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 5000))
        return httpx.AsyncClient(transport=transport, base_url=f"{ORIGIN}{self.prefix}")


def builtin(tmp_path: Path, prefix: str) -> tuple[Deployment, Any]:
    settings = Settings(data_dir=tmp_path, public_url=f"{ORIGIN}{prefix}", confirm="code")
    qrlogin = create_app(settings, clock=FrozenClock())
    svc: Services = qrlogin.state.services
    app: FastAPI = qrlogin
    if prefix:
        app = FastAPI()
        app.mount(prefix, qrlogin)

    async def sign_in(name: str) -> tuple[str, str]:
        user = await svc.store.ensure_user(
            User(new_id("usr"), f"{name}@example.org", name.title(), svc.clock.now())
        )
        token, session = svc.sessions.new_session(
            user, Device("Phone", PHONE_UA, "198.51.100.7"), "email"
        )
        await svc.store.insert_session(session, None)
        return token, session.id

    async def end_session(session_id: str) -> None:
        session = await svc.store.get_session(session_id)
        assert session is not None
        assert await svc.sessions.revoke(session, "signed_out", None)

    async def user_of(token: str) -> str | None:
        found = await svc.sessions.authenticate(token)
        return found.user.id if found else None

    deployment = Deployment(
        app, prefix, settings.cookie_names.session, sign_in, end_session, user_of
    )
    return deployment, qrlogin.router.lifespan_context(qrlogin)


def host(tmp_path: Path, prefix: str) -> tuple[Deployment, Any]:
    if prefix:  # the example host app itself, qrlogin mounted at /qr
        made = create_host_app(tmp_path, ORIGIN, clock=FrozenClock(), confirm="code")
        store, qr, app = made.store, made.qr, made.app
    else:  # qrlogin at the root of its own origin, on the host's users and sessions
        store = HostStore(tmp_path / "host.db")
        qr = QRLogin(
            Settings(data_dir=tmp_path / "qrlogin", public_url=ORIGIN, confirm="code"),
            approvers=HostApprovers(store),
            sessions=HostSessions(store, https=False),
            clock=FrozenClock(),
        )
        app = qr.asgi()

    async def sign_in(name: str) -> tuple[str, str]:
        user = store.user_named(name) or store.add_user(name, name.title(), "pw")
        token, session = store.start_session(
            user.id, device_name="", user_agent=PHONE_UA, ip="198.51.100.7", signed_in_with="pw"
        )
        return token, session.id

    async def end_session(session_id: str) -> None:
        assert store.end_session(session_id)
        await qr.session_ended(session_id)

    async def user_of(token: str) -> str | None:
        found = store.session_of(token)
        return found[1].id if found else None

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            async with qr.lifespan():
                yield
        finally:
            store.close()

    return Deployment(app, prefix, COOKIE, sign_in, end_session, user_of), lifespan()


@pytest.fixture(
    params=[("builtin", ""), ("builtin", "/qr"), ("host", ""), ("host", "/qr")],
    ids=["builtin-root", "builtin-mounted", "host-root", "host-mounted"],
)
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    identity, prefix = request.param
    made, lifespan = (builtin if identity == "builtin" else host)(tmp_path, prefix)
    async with lifespan:
        yield made


@dataclass
class Phone:
    """An approver: its own session's cookie, nothing else identifies it."""

    client: httpx.AsyncClient
    token: str
    session_id: str

    async def scan(self, handle: str) -> httpx.Response:
        return await self.client.get(f"/api/v1/scan/{handle}")

    async def decide(self, handle: str, decision: str) -> httpx.Response:
        return await self.client.post(f"/api/v1/scan/{handle}/{decision}", headers=BROWSER)


@dataclass
class Desktop:
    """A browser requester: its secret is an HttpOnly cookie under qrlogin's path."""

    client: httpx.AsyncClient
    id: str
    handle: str

    async def status(self) -> dict[str, Any]:
        reply = await self.client.get(f"/api/v1/login-requests/{self.id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    async def exchange(self, code: str | None) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/login-requests/{self.id}/session",
            json={"confirm_code": code} if code else {},
            headers=BROWSER,
        )


async def phone_of(deployment: Deployment, name: str = "ann") -> Phone:
    token, session_id = await deployment.sign_in(name)
    client = deployment.client("198.51.100.7")
    client.cookies.set(deployment.cookie, token)
    return Phone(client, token, session_id)


async def desktop_of(deployment: Deployment) -> Desktop:
    client = deployment.client()
    created = await client.post("/api/v1/login-requests", headers=BROWSER)
    assert created.status_code == 201, created.text
    body = created.json()
    return Desktop(client, body["id"], body["qr_url"].rsplit("/q/", 1)[1])


async def approved(deployment: Deployment) -> tuple[Desktop, Phone, str]:
    desktop, phone = await desktop_of(deployment), await phone_of(deployment)
    assert (await phone.scan(desktop.handle)).status_code == 200
    decided = await phone.decide(desktop.handle, "approve")
    assert decided.status_code == 200, decided.text
    return desktop, phone, decided.json()["confirm_code"]


def refused(reply: httpx.Response, status: int, error: str) -> bool:
    return (reply.status_code, reply.json()["error"]) == (status, error)


async def test_a_created_request_is_pending_and_its_qr_opens_under_the_mount(
    deployment: Deployment,
) -> None:
    desktop = await desktop_of(deployment)
    state = await desktop.status()
    assert state["status"] == "pending"
    assert state["qr_url"] == f"{ORIGIN}{deployment.prefix}/q/{desktop.handle}"
    [secret] = [c for c in desktop.client.cookies.jar if c.name.endswith("qrl_requester")]
    assert secret.path == (deployment.prefix or "/")


async def test_scanning_shows_the_request_and_approves_nothing(deployment: Deployment) -> None:
    desktop, phone = await desktop_of(deployment), await phone_of(deployment)
    scanned = await phone.scan(desktop.handle)
    assert scanned.status_code == 200, scanned.text
    assert (await desktop.status())["status"] == "scanned"
    assert refused(await desktop.exchange(None), 409, "authorization_pending")


async def test_an_approver_not_signed_in_cannot_scan(deployment: Deployment) -> None:
    desktop = await desktop_of(deployment)
    stranger = deployment.client("198.51.100.9")
    assert refused(await stranger.get(f"/api/v1/scan/{desktop.handle}"), 401, "not_signed_in")
    assert (await desktop.status())["status"] == "pending"


async def test_the_exchange_with_the_confirm_code_starts_a_new_session_of_the_adapter(
    deployment: Deployment,
) -> None:
    desktop, phone, code = await approved(deployment)
    assert refused(await desktop.exchange(None), 400, "confirm_code_required")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert refused(await desktop.exchange(wrong), 400, "invalid_code")
    exchanged = await desktop.exchange(code)
    assert exchanged.status_code == 200, exchanged.text
    user_id = await deployment.user_of(phone.token)
    assert exchanged.json()["user"]["id"] == user_id
    assert exchanged.json()["access_token"] is None  # a browser gets a cookie only
    new_token = exchanged.cookies.get(deployment.cookie)
    assert new_token and new_token != phone.token
    assert await deployment.user_of(new_token) == user_id


async def test_a_second_exchange_of_a_request_is_refused(deployment: Deployment) -> None:
    desktop, _, code = await approved(deployment)
    [secret] = [c for c in desktop.client.cookies.jar if c.name.endswith("qrl_requester")]
    assert (await desktop.exchange(code)).status_code == 200
    # the first exchange cleared the requester's cookie: replay it
    desktop.client.cookies.set(secret.name, secret.value or "", path=secret.path)
    assert refused(await desktop.exchange(code), 409, "already_used")


async def test_a_denied_request_refuses_the_exchange(deployment: Deployment) -> None:
    desktop, phone = await desktop_of(deployment), await phone_of(deployment)
    await phone.scan(desktop.handle)
    assert (await phone.decide(desktop.handle, "deny")).json()["status"] == "denied"
    assert (await desktop.status())["status"] == "denied"
    assert refused(await desktop.exchange(None), 403, "access_denied")


async def test_a_withdrawn_approval_refuses_the_exchange(deployment: Deployment) -> None:
    desktop, phone, code = await approved(deployment)
    withdrawn = await phone.decide(desktop.handle, "deny")
    assert withdrawn.json() == {"status": "denied", "confirm_code": None}
    assert refused(await desktop.exchange(code), 403, "access_denied")


async def test_an_approver_whose_session_ended_is_refused_the_exchange(
    deployment: Deployment,
) -> None:
    desktop, phone, code = await approved(deployment)
    await deployment.end_session(phone.session_id)
    state = await desktop.status()
    assert (state["status"], state["reason"]) == ("denied", "approver_signed_out")
    assert refused(await desktop.exchange(code), 403, "access_denied")
    assert refused(await phone.scan(desktop.handle), 401, "not_signed_in")


async def test_an_api_requester_gets_a_token_of_the_adapter(deployment: Deployment) -> None:
    requester = deployment.client()
    created = (await requester.post("/api/v1/login-requests")).json()
    auth = {"authorization": f"Bearer {created['secret']}"}
    phone = await phone_of(deployment)
    handle = created["qr_url"].rsplit("/q/", 1)[1]
    await phone.scan(handle)
    code = (await phone.decide(handle, "approve")).json()["confirm_code"]
    exchanged = await requester.post(
        f"/api/v1/login-requests/{created['id']}/session", json={"confirm_code": code}, headers=auth
    )
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["access_token"]
    assert token and token != phone.token
    assert await deployment.user_of(token) == await deployment.user_of(phone.token)
    assert deployment.cookie not in exchanged.cookies
