"""Operations (issue 5): /healthz, /readyz and the Prometheus /metrics, on every backend.

/readyz is checked against a real outage of each dependency: the store is pointed at a
PostgreSQL port where nothing listens, and a private Redis is killed under the bus.
The metrics that need a stream as it happens run against a real uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from web_support import Site

from qrlogin.core.policy import Policy
from qrlogin.store.engine import make_engine
from scale.scale_support import RedisServer, SseReader, metric_value
from support import LiveServer, free_port

# On every backend: readiness and metrics report each backend's own database and bus.
pytestmark = pytest.mark.backends

READY = {"status": "ready", "database": "ok", "bus": "ok"}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.kill()


async def test_healthz_says_the_process_is_alive(site: Site) -> None:
    response = await site.client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "worker": os.getpid()}


async def test_readyz_is_200_when_the_database_and_the_bus_answer(site: Site) -> None:
    response = await site.client().get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == READY


async def test_readyz_is_503_while_the_database_is_unreachable(site: Site) -> None:
    client = site.client()
    store = site.services.store
    errors_before = await metric_value(client, "qrlogin_database_errors_total")
    # the same store, now talking to a PostgreSQL port where nothing listens
    dead = make_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/gone")
    saved = {name: getattr(store, name) for name in ("engine", "writer") if hasattr(store, name)}
    try:
        for name in saved:
            setattr(store, name, dead)
        response = await client.get("/readyz")
        assert response.status_code == 503, response.text
        assert response.json() == {"status": "unavailable", "database": "unavailable", "bus": "ok"}
        assert (await client.get("/healthz")).status_code == 200  # alive all the same

        # a call that needs the database is refused with 503 and changes nothing
        created = await client.post("/api/v1/login-requests", json={})
        assert created.status_code == 503, created.text
        assert created.json()["error"] == "unavailable"

        # /metrics still answers, and counts the failures
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        errors = await metric_value(client, "qrlogin_database_errors_total")
        assert errors >= errors_before + 3, (errors_before, errors)
    finally:
        for name, engine in saved.items():
            setattr(store, name, engine)
        await dead.dispose()

    # the database is back: so is readiness
    response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (200, READY)


async def test_readyz_is_503_while_redis_is_down_and_200_once_the_bus_reconnects(
    make_site: Callable[..., Awaitable[Site]], redis_server: RedisServer
) -> None:
    site = await make_site(redis_url=redis_server.url, events="redis")
    client = site.client()
    assert (await client.get("/readyz")).json() == READY

    await asyncio.to_thread(redis_server.kill)
    for _ in range(200):  # bounded: the listener notices within its 5 s keep-alive check
        response = await client.get("/readyz")
        if response.status_code == 503:
            break
        await asyncio.sleep(0.05)
    assert response.status_code == 503, response.text
    assert response.json() == {"status": "unavailable", "database": "ok", "bus": "unavailable"}
    assert (await client.get("/healthz")).status_code == 200
    # the instance keeps serving; rate limits count locally meanwhile
    created = await client.post("/api/v1/login-requests", json={})
    assert created.status_code == 201, created.text
    assert await metric_value(client, "qrlogin_bus_errors_total") >= 1

    await asyncio.to_thread(redis_server.start)
    for _ in range(400):  # bounded: reconnect backoff is at most 2 s
        response = await client.get("/readyz")
        if response.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert (response.status_code, response.json()) == (200, READY)


async def test_metrics_count_login_requests_by_state(site: Site) -> None:
    client = site.client()
    approver = await site.sign_in()
    for _ in range(3):
        await site.new_requester("api")
    scanned = await site.new_requester("api")
    assert (await approver.scan(scanned.handle)).status_code == 200
    done = await site.new_requester("api")
    await site.signed_in(done, approver)

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for status, n in {
        "pending": 3,
        "scanned": 1,
        "approved": 0,
        "consumed": 1,
        "denied": 0,
    }.items():
        assert f'qrlogin_login_requests{{status="{status}"}} {float(n)}' in text, text
    for name in (
        "qrlogin_sse_streams_open",
        "qrlogin_approval_to_event_seconds",
        "qrlogin_rate_limit_refusals_total",
        "qrlogin_database_errors_total",
        "qrlogin_bus_errors_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


async def test_metrics_count_rate_limit_refusals_by_rule(site: Site) -> None:
    client = site.client()
    rule = 'rule="email_start_per_address_browser"'
    assert await metric_value(client, "qrlogin_rate_limit_refusals_total", rule) == 0
    await client.get("/signin")  # a browser: its budget per address goes by its cookie
    replies = [
        (await client.post("/api/v1/auth/email/start", json={"email": "a@example.com"})).status_code
        for _ in range(6)
    ]
    assert replies == [202] * 5 + [429]
    assert await metric_value(client, "qrlogin_rate_limit_refusals_total", rule) == 1


def _code_from(server: LiveServer, email: str) -> str:
    outbox = server.app.state.services.outbox.outbox
    mail = next(m for m in outbox if m.to == email)
    found = re.search(r"sign-in code is (\d{6})", mail.text)
    assert found
    return found.group(1)


async def test_metrics_of_streams_open_and_approval_to_event_latency(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(app_kwargs={"policy": Policy(heartbeat=30)})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        email = "ops@example.com"
        await client.post("/api/v1/auth/email/start", json={"email": email})
        verified = await client.post(
            "/api/v1/auth/email/verify", json={"email": email, "code": _code_from(server, email)}
        )
        approver = {"authorization": f"Bearer {verified.json()['access_token']}"}
        created = (await client.post("/api/v1/login-requests", json={})).json()
        handle = created["qr_url"].rsplit("/q/", 1)[1]
        bearer = {"authorization": f"Bearer {created['secret']}"}
        latency = "qrlogin_approval_to_event_seconds_count"
        assert await metric_value(client, latency) == 0

        stream = SseReader()
        url = f"/api/v1/login-requests/{created['id']}/events"
        task = asyncio.create_task(stream.read(client, url, bearer))
        await stream.wait_for("pending", 10)
        kind = 'kind="login_request"'
        assert await metric_value(client, "qrlogin_sse_streams_open", kind) == 1

        assert (await client.get(f"/api/v1/scan/{handle}", headers=approver)).status_code == 200
        approved = await client.post(f"/api/v1/scan/{handle}/approve", headers=approver)
        assert approved.status_code == 200
        await stream.wait_for("approved", 10)
        assert await metric_value(client, latency) >= 1
        text = (await client.get("/metrics")).text
        assert 'qrlogin_approval_to_event_seconds_bucket{le="15.0"} 1.0' in text, text

        confirm = {"confirm_code": approved.json()["confirm_code"]}
        path = f"/api/v1/login-requests/{created['id']}/session"
        assert (await client.post(path, json=confirm, headers=bearer)).status_code == 200
        await asyncio.wait_for(task, 10)  # the stream ends after "consumed"
        assert await metric_value(client, "qrlogin_sse_streams_open", kind) == 0
