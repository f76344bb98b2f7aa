"""Redis goes away mid-flow and comes back (issue 5, "lost events lose nothing").

Twenty requesters wait on instance A; their approvals are made on instance B while Redis is
down, so no event can reach A. With a 1 s heartbeat every stream re-reads the database and
still reaches ``approved``; A stays up, serves API calls (rate limits counting locally) and
answers /readyz honestly; when Redis is back the bus reconnects by itself.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from qrlogin.core.policy import Policy
from scale.scale_support import (
    RedisServer,
    SseReader,
    asyncpg_url,
    eventually,
    http_client,
    metric_value,
)
from support import LiveServer, SmtpSink, mail_text

N = 20
BOUND = 15.0  # seconds: generous next to the 1 s heartbeat
SECRET_KEY = "redis-outage-shared-key-" + "y" * 24


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.kill()


async def sign_in(client: httpx.AsyncClient, sink: SmtpSink, email: str) -> dict[str, str]:
    before = len(sink)
    assert (await client.post("/api/v1/auth/email/start", json={"email": email})).status_code == 202
    mail = await asyncio.to_thread(sink.latest_to, email, 15, after=before)
    code = re.search(r"sign-in code is (\d{6})", mail_text(mail))
    assert code
    verified = await client.post(
        "/api/v1/auth/email/verify", json={"email": email, "code": code.group(1)}
    )
    assert verified.status_code == 200, verified.text
    return {"authorization": f"Bearer {verified.json()['access_token']}"}


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status_code, response.json()


async def test_requesters_finish_and_the_bus_comes_back_when_redis_restarts(
    smtp_sink: SmtpSink,
    redis_server: RedisServer,
    pg_url: str,
    live_server: Callable[..., LiveServer],
) -> None:
    settings = {
        "database_url": asyncpg_url(pg_url),
        "redis_url": redis_server.url,
        "redis_prefix": f"qrlt{uuid.uuid4().hex[:8]}",
        "secret_key": SECRET_KEY,
    }
    policy = Policy(heartbeat=1)
    a = live_server(app_kwargs={"policy": policy}, **settings)
    b = live_server(app_kwargs={"policy": policy}, **settings)

    async with http_client(a.url) as on_a, http_client(b.url) as on_b:
        approver = await sign_in(on_b, smtp_sink, "ops@example.test")

        # twenty requesters waiting on A, each with its stream open
        requesters: list[dict[str, Any]] = []
        readers: list[SseReader] = []
        tasks: list[asyncio.Task[None]] = []
        for i in range(N):
            created = await on_a.post("/api/v1/login-requests", json={"device_name": f"D{i}"})
            assert created.status_code == 201, created.text
            body = created.json()
            body["auth"] = {"authorization": f"Bearer {body['secret']}"}
            requesters.append(body)
            reader = SseReader()
            url = f"/api/v1/login-requests/{body['id']}/events"
            tasks.append(asyncio.create_task(reader.read(on_a, url, body["auth"])))
            readers.append(reader)
        for reader in readers:
            await reader.wait_for("pending", BOUND)
        assert await metric_value(on_a, "qrlogin_sse_streams_open", 'kind="login_request"') == N

        # Redis goes away
        errors_before = await metric_value(on_a, "qrlogin_bus_errors_total")
        await asyncio.to_thread(redis_server.kill)

        async def a_unready() -> Any:
            status, body = await readiness(on_a)
            return status == 503 and body

        body = await eventually(a_unready, BOUND, "A's /readyz turns 503")
        assert body == {"status": "unavailable", "database": "ok", "bus": "unavailable"}
        assert (await on_a.get("/healthz")).status_code == 200

        # every approval is made on B while no event can travel
        for req in requesters:
            handle = req["qr_url"].rsplit("/q/", 1)[1]
            scanned = await on_b.get(f"/api/v1/scan/{handle}", headers=approver)
            assert scanned.status_code == 200, scanned.text
            approved = await on_b.post(f"/api/v1/scan/{handle}/approve", headers=approver)
            assert approved.status_code == 200, approved.text
            req["confirm_code"] = approved.json()["confirm_code"]

        # ... and every stream on A still reaches "approved", by re-reading at its heartbeat
        for reader in readers:
            await reader.wait_for("approved", BOUND)
        assert await readiness(on_a) == (503, body), "Redis is still down"

        # A keeps serving API calls, its rate limits counting locally meanwhile
        extra = await on_a.post("/api/v1/login-requests", json={})
        assert extra.status_code == 201, extra.text
        email = "limited@example.test"
        await on_a.get("/signin")  # a browser: its budget per address goes by its cookie
        replies = [
            (await on_a.post("/api/v1/auth/email/start", json={"email": email})).status_code
            for _ in range(6)
        ]
        assert replies == [202] * 5 + [429], replies  # 5 per address and browser
        assert await metric_value(on_a, "qrlogin_bus_errors_total") > errors_before
        refused = 'rule="email_start_per_address_browser"'
        assert await metric_value(on_a, "qrlogin_rate_limit_refusals_total", refused) == 1

        # Redis comes back: both buses reconnect by themselves
        await asyncio.to_thread(redis_server.start)
        for client in (on_a, on_b):

            async def ready(client: httpx.AsyncClient = client) -> bool:
                return await readiness(client) == (
                    200,
                    {"status": "ready", "database": "ok", "bus": "ok"},
                )

            await eventually(ready, BOUND, f"{client.base_url} /readyz back to 200")

        # every approved request is exchanged exactly once, on A
        for req, reader in zip(requesters, readers, strict=True):
            path = f"/api/v1/login-requests/{req['id']}/session"
            confirm = {"confirm_code": req["confirm_code"]}
            exchanged = await on_a.post(path, json=confirm, headers=req["auth"])
            assert exchanged.status_code == 200, exchanged.text
            await reader.wait_for("consumed", BOUND)
        await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
        assert all(r.error is None for r in readers), [r.error for r in readers]
        assert await metric_value(on_a, "qrlogin_sse_streams_open", 'kind="login_request"') == 0
