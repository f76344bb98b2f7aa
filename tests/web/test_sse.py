"""Server-Sent Events and long-polling for requesters, against a real uvicorn on 127.0.0.1
(httpx's ASGI transport buffers whole responses, so it cannot show a stream as it happens)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from qrlogin.core.policy import Policy
from support import LiveServer, SmtpSink, mail_text

# Tests ask for `smtp_sink` before `live_server`, so the server stops (and finishes sending
# any background mail) before the SMTP sink goes away.
API = "/api/v1/login-requests"
BROWSER = {"qrlogin-client": "browser"}
TIMEOUT = httpx.Timeout(10, read=30)  # a stream may sit idle until its next heartbeat


# --------------------------------------------------------------------------- helpers


@dataclass
class Event:
    event: str  # "state", or "comment" for a ": ..." line
    data: Any  # the parsed JSON of a state, the text of a comment
    id: str | None = None


class EventStream:
    """Reads one text/event-stream response, event by event, each read bounded in time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10) -> Event | None:
        """The next event or comment, or ``None`` when the server ended the stream."""
        async with asyncio.timeout(timeout):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line.startswith(":"):
                    return Event("comment", line[1:].strip())
                if line == "":
                    if "data" in fields or "event" in fields:
                        data = json.loads(fields["data"]) if "data" in fields else None
                        return Event(fields.get("event", "message"), data, fields.get("id"))
                    fields.clear()
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[name] = fields[name] + "\n" + value if name in fields else value
            return None

    async def next_state(self, timeout: float = 10) -> dict[str, Any]:
        """The next ``state`` event's JSON, skipping heartbeats."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next(timeout)
                assert event is not None, "the stream ended before the next state"
                if event.event == "comment":
                    continue
                assert event.event == "state", event
                assert event.id == str(event.data["version"])
                data: dict[str, Any] = event.data
                return data

    async def ended(self, timeout: float = 10) -> bool:
        """True once the server closes the stream with no further state events."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next(timeout)
                if event is None:
                    return True
                assert event.event == "comment", f"unexpected event after the end: {event}"


@asynccontextmanager
async def events(
    client: httpx.AsyncClient, request_id: str, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    async with client.stream("GET", f"{API}/{request_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        yield EventStream(response)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def handle_of(qr_url: str) -> str:
    return qr_url.rsplit("/q/", 1)[1]


async def create(client: httpx.AsyncClient, *, browser: bool = False) -> dict[str, Any]:
    response = await client.post(
        API, json={"device_name": "Desk"}, headers=BROWSER if browser else {}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def sign_in(server: LiveServer, sink: SmtpSink, email: str) -> httpx.AsyncClient:
    """An approver: signed in by the email code read from the SMTP sink; sends its token."""
    client = httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT)
    before = len(sink)
    started = await client.post("/api/v1/auth/email/start", json={"email": email})
    assert started.status_code == 202, started.text
    msg = await asyncio.to_thread(sink.latest_to, email, 10, after=before)
    match = re.search(r"sign-in code is (\d{6})\b", mail_text(msg))
    assert match, mail_text(msg)
    verified = await client.post(
        "/api/v1/auth/email/verify", json={"email": email, "code": match.group(1)}
    )
    assert verified.status_code == 200, verified.text
    client.headers.update(bearer(verified.json()["access_token"]))
    return client


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[LiveServer], httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def new(server: LiveServer) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT)
        made.append(client)
        return client

    yield new
    for client in made:
        await client.aclose()


NewClient = Callable[[LiveServer], httpx.AsyncClient]


# --------------------------------------------------------------------------- tests


async def test_current_state_first_then_scan_approve_and_exchange_in_order(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer], clients: NewClient
) -> None:
    server = live_server(confirm="tap")
    requester = clients(server)
    approver = await sign_in(server, smtp_sink, "phone@example.com")
    try:
        created = await create(requester)
        auth = bearer(created["secret"])
        async with events(requester, created["id"], auth) as stream:
            first = await stream.next()
            assert first is not None and first.event == "state"
            state = first.data
            assert state["id"] == created["id"]
            assert state["status"] == "pending"
            assert state["version"] == created["version"] == 1
            assert state["qr_url"] == created["qr_url"]
            assert state["qr_url"].startswith(f"{server.url}/q/")
            assert "secret" not in state

            handle = handle_of(created["qr_url"])
            assert (await approver.get(f"/api/v1/scan/{handle}")).status_code == 200
            scanned = await stream.next_state()
            assert scanned["status"] == "scanned"
            assert scanned["qr_url"] is None

            approved_reply = await approver.post(f"/api/v1/scan/{handle}/approve")
            assert approved_reply.status_code == 200, approved_reply.text
            assert approved_reply.json()["confirm_code"] is None  # confirm="tap"
            approved = await stream.next_state()
            assert approved["status"] == "approved"
            assert approved["confirm_code_required"] is False

            session = await requester.post(f"{API}/{created['id']}/session", headers=auth)
            assert session.status_code == 200, session.text
            consumed = await stream.next_state()
            assert consumed["status"] == "consumed"

            versions = [state["version"], *(s["version"] for s in (scanned, approved, consumed))]
            assert versions == sorted(set(versions)), versions  # strictly increasing
            assert await stream.ended()
    finally:
        await approver.aclose()


async def test_rotation_arrives_as_an_event_with_no_other_action(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer], clients: NewClient
) -> None:
    policy = Policy(handle_rotation=1, handle_grace=1, heartbeat=0.5)
    server = live_server(confirm="tap", app_kwargs={"policy": policy})
    requester = clients(server)
    created = await create(requester)
    async with events(requester, created["id"], bearer(created["secret"])) as stream:
        first = await stream.next_state()
        assert first["qr_url"] == created["qr_url"]

        rotated = await stream.next_state()
        assert rotated["status"] == "pending"
        assert rotated["version"] == first["version"]  # rotating writes nothing
        assert rotated["qr_url"] != first["qr_url"]
        assert rotated["qr_url"].startswith(f"{server.url}/q/")
        assert rotated["qr_expires_at"] > first["qr_expires_at"]
        assert rotated["user_code"] == first["user_code"]  # only the QR's handle rotates

        again = await stream.next_state()
        assert again["version"] == rotated["version"]
        assert again["qr_expires_at"] > rotated["qr_expires_at"]
        assert again["qr_url"] not in (first["qr_url"], rotated["qr_url"])

    # the rotated handle is the one a phone can open now
    approver = await sign_in(server, smtp_sink, "phone@example.com")
    try:
        current = (
            await requester.get(f"{API}/{created['id']}", headers=bearer(created["secret"]))
        ).json()
        scanned = await approver.get(f"/api/v1/scan/{handle_of(current['qr_url'])}")
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["request"]["id"] == created["id"]
    finally:
        await approver.aclose()


async def test_heartbeats_arrive_while_nothing_happens(
    live_server: Callable[..., LiveServer], clients: NewClient
) -> None:
    server = live_server(confirm="tap", app_kwargs={"policy": Policy(heartbeat=0.5)})
    requester = clients(server)
    created = await create(requester)
    async with events(requester, created["id"], bearer(created["secret"])) as stream:
        first = await stream.next()
        assert first is not None and first.event == "state"
        for _ in range(3):
            beat = await stream.next(timeout=10)
            assert beat == Event("comment", "heartbeat")

        # the stream is still live: a change after the heartbeats still arrives
        cancelled = await requester.delete(
            f"{API}/{created['id']}", headers=bearer(created["secret"])
        )
        assert cancelled.status_code == 200
        assert (await stream.next_state())["status"] == "cancelled"
        assert await stream.ended()


@pytest.mark.parametrize("ending", ["denied", "cancelled"])
async def test_the_stream_ends_after_a_final_state(
    smtp_sink: SmtpSink,
    live_server: Callable[..., LiveServer],
    clients: NewClient,
    ending: str,
) -> None:
    server = live_server(confirm="tap", app_kwargs={"policy": Policy(heartbeat=0.5)})
    requester = clients(server)
    approver = await sign_in(server, smtp_sink, "phone@example.com")
    try:
        created = await create(requester)
        auth = bearer(created["secret"])
        handle = handle_of(created["qr_url"])
        async with events(requester, created["id"], auth) as stream:
            assert (await stream.next_state())["status"] == "pending"
            assert (await approver.get(f"/api/v1/scan/{handle}")).status_code == 200
            assert (await stream.next_state())["status"] == "scanned"
            if ending == "denied":
                response = await approver.post(f"/api/v1/scan/{handle}/deny")
            else:
                response = await requester.delete(f"{API}/{created['id']}", headers=auth)
            assert response.status_code == 200, response.text

            final = await stream.next_state()
            assert final["status"] == ending
            assert final["reason"] in ("denied_by_approver", "cancelled_by_requester")
            assert await stream.ended()

        # opening the stream of a finished request: its state once, then the end
        async with events(requester, created["id"], auth) as stream:
            assert (await stream.next_state())["status"] == ending
            assert await stream.ended()
    finally:
        await approver.aclose()


async def test_no_or_wrong_secret_is_refused_alike_for_real_and_unknown_ids(
    live_server: Callable[..., LiveServer], clients: NewClient
) -> None:
    server = live_server(confirm="tap")
    client = clients(server)
    real = await create(client)
    other = await create(client)
    unknown_id = "lr_" + "A" * 22
    attempts = [
        (real["id"], {}),
        (real["id"], bearer("wrong" + real["secret"][5:])),
        (real["id"], bearer(other["secret"])),  # another requester's secret
        (real["id"], {"Authorization": real["secret"]}),  # not a bearer header
        (unknown_id, {}),
        (unknown_id, bearer(real["secret"])),
        (handle_of(real["qr_url"]), bearer(real["secret"])),  # the handle is not the id
    ]
    bodies = set()
    for request_id, headers in attempts:
        response = await client.get(f"{API}/{request_id}/events", headers=headers)
        assert response.status_code == 401, (request_id, headers, response.text)
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"error", "message"}
        assert body["error"] == "invalid_secret"
        bodies.add(response.content)
    assert len(bodies) == 1


async def test_browser_requesters_use_the_cookie_instead_of_the_bearer(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer], clients: NewClient
) -> None:
    server = live_server(confirm="tap")
    browser = clients(server)
    approver = await sign_in(server, smtp_sink, "phone@example.com")
    try:
        created = await create(browser, browser=True)
        assert created["secret"] is None  # the page never sees it
        assert browser.cookies.get("qrl_requester")
        handle = handle_of(created["qr_url"])

        async with events(browser, created["id"]) as stream:  # no Authorization header
            first = await stream.next_state()
            assert first["status"] == "pending"
            assert first["qr_url"] == created["qr_url"]
            assert (await approver.get(f"/api/v1/scan/{handle}")).status_code == 200
            assert (await stream.next_state())["status"] == "scanned"
            assert (await approver.post(f"/api/v1/scan/{handle}/approve")).status_code == 200
            assert (await stream.next_state())["status"] == "approved"

            session = await browser.post(f"{API}/{created['id']}/session", json={}, headers=BROWSER)
            assert session.status_code == 200, session.text
            assert session.json()["access_token"] is None
            assert browser.cookies.get("qrl_session")
            assert (await stream.next_state())["status"] == "consumed"
            assert await stream.ended()

        # another browser, without the cookie, is refused
        stranger = clients(server)
        refused = await stranger.get(f"{API}/{created['id']}/events")
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_secret"
    finally:
        await approver.aclose()


async def test_long_poll_returns_the_new_version_after_an_approval_elsewhere(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer], clients: NewClient
) -> None:
    server = live_server(confirm="tap")
    requester = clients(server)
    approver = await sign_in(server, smtp_sink, "phone@example.com")
    try:
        created = await create(requester)
        auth = bearer(created["secret"])
        path = f"{API}/{created['id']}"
        handle = handle_of(created["qr_url"])
        assert (await approver.get(f"/api/v1/scan/{handle}")).status_code == 200
        now = (await requester.get(path, headers=auth)).json()
        assert now["status"] == "scanned"

        # a stale version returns at once with the current state
        stale = await requester.get(path, params={"version": 1, "wait": 10}, headers=auth)
        assert stale.json()["version"] == now["version"]

        poll = asyncio.create_task(
            requester.get(path, params={"version": now["version"], "wait": 10}, headers=auth)
        )
        await asyncio.sleep(0.3)
        assert not poll.done()  # it waits while nothing changes
        approved = await approver.post(f"/api/v1/scan/{handle}/approve")
        assert approved.status_code == 200, approved.text

        # well before the 10 s wait runs out, with the approval in it
        response = await asyncio.wait_for(poll, 8)
        assert response.status_code == 200
        state = response.json()
        assert state["status"] == "approved"
        assert state["version"] == now["version"] + 1
    finally:
        await approver.aclose()


async def test_long_poll_without_a_change_returns_the_same_version(
    live_server: Callable[..., LiveServer], clients: NewClient
) -> None:
    server = live_server(confirm="tap")
    requester = clients(server)
    created = await create(requester)
    response = await asyncio.wait_for(
        requester.get(
            f"{API}/{created['id']}",
            params={"version": 1, "wait": 1},
            headers=bearer(created["secret"]),
        ),
        10,
    )
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert response.json()["status"] == "pending"
