"""Two real uvicorn instances on one PostgreSQL database: the requester waits on instance A
while the approver scans and approves on instance B. The heartbeat is 30 s and the QR
rotates every 2 min, so within the 10 s the test allows only the event bus (Redis pub/sub or
LISTEN/NOTIFY) can bring the change to A.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from browser.flows import (
    WAIT_MS,
    approve_and_read_confirm_code,
    assert_signed_in_without_reload,
    mark_page,
    open_login,
    sign_in_phone,
    type_confirm_code,
)
from qrlogin.core.policy import Policy
from scale.scale_support import SseReader, asyncpg_url, http_client
from support import LiveServer, SmtpSink, mail_text

PUSH_ONLY = Policy(heartbeat=30, handle_rotation=120)
PUSH_BOUND = 10.0  # seconds; far below the heartbeat, far above a normal delivery
SECRET_KEY = "two-instances-share-this-key-" + "x" * 20
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["redis", "postgres"])
def events(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"qrlt{uuid.uuid4().hex[:12]}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{name}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def instances(
    smtp_sink: SmtpSink,
    pg_url: str,
    prefix: str,
    live_server: Callable[..., LiveServer],
    events: str,
) -> tuple[LiveServer, LiveServer]:
    """Instance A and instance B: one database, one key, one bus. (The servers are asked for
    after the database and the SMTP sink, so they stop before either goes away.)"""
    settings: dict[str, Any] = {
        "database_url": asyncpg_url(pg_url),
        "secret_key": SECRET_KEY,
        "redis_prefix": prefix,
        "events": events,
    }
    if events == "redis":
        settings["redis_url"] = REDIS_URL
    a = live_server(app_kwargs={"policy": PUSH_ONLY}, **settings)
    b = live_server(app_kwargs={"policy": PUSH_ONLY}, **settings)
    return a, b


async def api_sign_in(client: httpx.AsyncClient, sink: SmtpSink, email: str) -> dict[str, Any]:
    before = len(sink)
    started = await client.post("/api/v1/auth/email/start", json={"email": email})
    assert started.status_code == 202, started.text
    mail = await asyncio.to_thread(sink.latest_to, email, 15, after=before)
    code = re.search(r"sign-in code is (\d{6})", mail_text(mail))
    assert code, mail_text(mail)
    verified = await client.post(
        "/api/v1/auth/email/verify", json={"email": email, "code": code.group(1)}
    )
    assert verified.status_code == 200, verified.text
    session: dict[str, Any] = verified.json()
    return session


async def test_a_requester_on_a_hears_a_scan_and_an_approval_made_on_b(
    instances: tuple[LiveServer, LiveServer], smtp_sink: SmtpSink, events: str
) -> None:
    a, b = instances
    async with http_client(a.url) as on_a, http_client(b.url) as on_b:
        approver = await api_sign_in(on_b, smtp_sink, "ada@example.test")
        approver_auth = {"authorization": f"Bearer {approver['access_token']}"}

        # the approver's own account stream, open on A
        account = SseReader()
        account_task = asyncio.create_task(account.read(on_a, "/api/v1/me/events", approver_auth))
        await account.wait_until(lambda: "hello" in account.names(), PUSH_BOUND, "hello")

        created = await on_a.post("/api/v1/login-requests", json={"device_name": "Desk"})
        assert created.status_code == 201, created.text
        request = created.json()
        handle = request["qr_url"].rsplit("/q/", 1)[1]
        requester_auth = {"authorization": f"Bearer {request['secret']}"}
        path = f"/api/v1/login-requests/{request['id']}"

        stream = SseReader()
        stream_task = asyncio.create_task(stream.read(on_a, f"{path}/events", requester_auth))
        await stream.wait_for("pending", PUSH_BOUND)

        scanned = await on_b.get(f"/api/v1/scan/{handle}", headers=approver_auth)
        assert scanned.status_code == 200, scanned.text
        await stream.wait_for("scanned", PUSH_BOUND)

        approved = await on_b.post(f"/api/v1/scan/{handle}/approve", headers=approver_auth)
        assert approved.status_code == 200, approved.text
        await stream.wait_for("approved", PUSH_BOUND)
        assert stream.heartbeats == 0, "the change came with a heartbeat, not by push"

        # any instance serves any call: exchange on B, and A refuses a second exchange
        confirm = {"confirm_code": approved.json()["confirm_code"]}
        exchanged = await on_b.post(f"{path}/session", json=confirm, headers=requester_auth)
        assert exchanged.status_code == 200, exchanged.text
        again = await on_a.post(f"{path}/session", json=confirm, headers=requester_auth)
        assert again.status_code == 409, again.text
        assert again.json()["error"] == "already_used"

        # A's stream hears the exchange made on B, and ends after the final state
        await stream.wait_for("consumed", PUSH_BOUND)
        await asyncio.wait_for(stream_task, PUSH_BOUND)
        assert stream.error is None, stream.error
        assert [s["status"] for s in stream.states] == [
            "pending",
            "scanned",
            "approved",
            "consumed",
        ]

        # and the account stream on A was told of the new device signed in on B
        await account.wait_until(lambda: "notice" in account.names(), PUSH_BOUND, "a notice")
        account_task.cancel()
        await asyncio.gather(account_task, return_exceptions=True)

        # the approval-to-event latency was measured on A, where the stream was
        metrics = (await on_a.get("/metrics")).text
        count = re.search(r"^qrlogin_approval_to_event_seconds_count (\S+)$", metrics, re.M)
        assert count and float(count.group(1)) >= 1, metrics

        # both instances say they are ready, each with a bus that answers
        for client in (on_a, on_b):
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ready", "database": "ok", "bus": "ok"}


async def test_long_poll_on_a_wakes_on_an_approval_made_on_b(
    instances: tuple[LiveServer, LiveServer], smtp_sink: SmtpSink
) -> None:
    a, b = instances
    async with http_client(a.url) as on_a, http_client(b.url) as on_b:
        approver = await api_sign_in(on_b, smtp_sink, "bo@example.test")
        auth = {"authorization": f"Bearer {approver['access_token']}"}
        request = (await on_a.post("/api/v1/login-requests", json={})).json()
        handle = request["qr_url"].rsplit("/q/", 1)[1]
        path = f"/api/v1/login-requests/{request['id']}"
        bearer = {"authorization": f"Bearer {request['secret']}"}
        assert (await on_b.get(f"/api/v1/scan/{handle}", headers=auth)).status_code == 200

        current = (await on_a.get(path, headers=bearer)).json()
        assert current["status"] == "scanned"
        poll = asyncio.create_task(
            on_a.get(path, params={"version": current["version"], "wait": 25}, headers=bearer)
        )
        await asyncio.sleep(0.5)  # let the long-poll subscribe (a miss still passes: re-read)
        assert (await on_b.post(f"/api/v1/scan/{handle}/approve", headers=auth)).status_code == 200
        answer = await asyncio.wait_for(poll, PUSH_BOUND)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "approved"


def test_desktop_on_a_is_signed_in_when_the_phone_approves_on_b(
    smtp_sink: SmtpSink,
    pg_url: str,
    prefix: str,
    live_server: Callable[..., LiveServer],
    events: str,
    desktop: BrowserContext,
    phone: BrowserContext,
) -> None:
    settings: dict[str, Any] = {
        "database_url": asyncpg_url(pg_url),
        "secret_key": SECRET_KEY,
        "redis_prefix": prefix,
        "events": events,
    }
    if events == "redis":
        settings["redis_url"] = REDIS_URL
    a = live_server(app_kwargs={"policy": PUSH_ONLY}, **settings)
    b = live_server(app_kwargs={"policy": PUSH_ONLY}, **settings)
    email = "cy@example.test"

    mobile = sign_in_phone(phone, b, smtp_sink, email)
    login = open_login(desktop, a)
    mark_page(login.page)
    qr_url = login.qr_url()
    assert qr_url.startswith(f"{a.url}/q/"), qr_url

    # behind a load balancer both would have one address; here the phone goes to B itself
    mobile.goto(b.url + qr_url.removeprefix(a.url))
    expect(mobile.locator("#approve")).to_be_visible(timeout=WAIT_MS)
    expect(login.page.locator("#state-scanned")).to_be_visible(timeout=PUSH_BOUND * 1000)
    code = approve_and_read_confirm_code(mobile)
    type_confirm_code(login, code)
    assert_signed_in_without_reload(login, a, email)
