"""The requester's event stream served ahead of FastAPI (web/events_asgi.py): from outside it
is the FastAPI route it stands in for (same replies, headers, access log, metrics).

Most tests compare the two: ``site.client()`` goes through the app as served (the raw
handler takes ``GET …/events``), ``full_stack`` calls the FastAPI app without it. httpx's
ASGI transport buffers whole responses, so streams compared here are of finished requests;
a stream as it happens is tested against uvicorn in test_sse.py and at the end of this file.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from web_support import BROWSER, Site, within

from qrlogin.core.policy import Policy
from qrlogin.logs import JsonFormatter
from qrlogin.store.engine import make_engine
from support import LiveServer, free_port

# On every backend: the stream waits on the event bus (in-process, Redis pub/sub, LISTEN/NOTIFY)
# and must end cleanly when the database (SQLite or PostgreSQL) fails under it.
pytestmark = pytest.mark.backends

UNKNOWN_ID = "lr_AAAAAAAAAAAAAAAAAAAAAA"
SECURITY = {
    "content-security-policy",
    "x-frame-options",
    "referrer-policy",
    "x-content-type-options",
}


def _client(
    site: Site, app: Callable[[Scope, Receive, Send], Awaitable[None]]
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    client = httpx.AsyncClient(transport=transport, base_url=site.base_url)
    site.stack.push_async_callback(client.aclose)
    return client


def full_stack(site: Site) -> httpx.AsyncClient:
    """A client of the FastAPI app alone: every request through its routes and middlewares."""

    async def fastapi_only(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(site.app, scope, receive, send)

    return _client(site, fastapi_only)


def handler_only(site: Site) -> httpx.AsyncClient:
    """A client of the raw handler alone, no FastAPI behind it (event stream paths only)."""
    events = site.app.requester_events  # type: ignore[attr-defined]

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        lr_id = events.match(scope)
        assert lr_id is not None, scope["path"]
        await events(scope, receive, send, lr_id)

    return _client(site, handler)


def comparable(response: httpx.Response) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
    """Status, headers in order (the request id's value left out: each request has its own)
    and body."""
    headers = tuple(
        (k, "<id>" if k == "x-request-id" else v) for k, v in response.headers.multi_items()
    )
    return response.status_code, headers, response.content


class AccessLines(logging.Handler):
    """The access log as JSON lines, formatted as they are written (the request id comes
    from the context of the request)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.formatter = JsonFormatter()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def access_log() -> Iterator[AccessLines]:
    handler = AccessLines()
    logger = logging.getLogger("qrlogin.access")
    saved = logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.disabled = saved[1]


def sample(site: Site, name: str, labels: dict[str, str] | None = None) -> float:
    return site.services.metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def open_streams(site: Site) -> float:
    return sample(site, "qrlogin_sse_streams_open", {"kind": "login_request"})


# --------------------------------------------------------------------------- tests


async def test_a_stream_is_the_same_as_the_fastapi_routes_headers_and_body_included(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    assert (await requester.cancel()).status_code == 200  # a finished stream: state, then end
    path = f"{requester.path}/events"
    reference, alone = full_stack(site), handler_only(site)
    reference.cookies = alone.cookies = requester.client.cookies

    served = await within(requester.events())
    by_handler = await within(alone.get(path, headers=requester.headers()))
    by_fastapi = await within(reference.get(path, headers=requester.headers()))

    assert served.status_code == 200
    assert comparable(served) == comparable(by_handler) == comparable(by_fastapi)
    assert served.text.startswith("retry: 2000\nevent: state\nid: ")
    assert '"status":"cancelled"' in served.text
    assert served.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert served.headers["cache-control"] == "no-store"
    assert served.headers["x-accel-buffering"] == "no"
    assert SECURITY <= set(served.headers)
    assert served.headers["x-request-id"] != by_fastapi.headers["x-request-id"]


@pytest.mark.parametrize("carrier", ["bearer", "cookie"])
async def test_refusals_are_byte_for_byte_the_fastapi_routes(site: Site, carrier: str) -> None:
    victim = await site.new_requester("api")
    other = await site.new_requester("api")
    secrets = {
        "none": None,
        "wrong": "wrong" + victim.secret[5:],
        "another requester's": other.secret,
        "the handle": victim.handle,
    }
    replies = set()
    for request_id in (victim.id, UNKNOWN_ID):
        for name, secret in secrets.items():
            headers = {}
            if secret is not None and carrier == "bearer":
                headers = {"authorization": f"Bearer {secret}"}
            elif secret is not None:
                headers = {"cookie": f"qrl_requester={secret}"}
            path = f"/api/v1/login-requests/{request_id}/events"
            served = await site.client().get(path, headers=headers)
            by_handler = await handler_only(site).get(path, headers=headers)
            by_fastapi = await full_stack(site).get(path, headers=headers)
            assert comparable(served) == comparable(by_handler) == comparable(by_fastapi), name
            assert served.status_code == 401, (name, served.text)
            assert served.json()["error"] == "invalid_secret"
            assert SECURITY <= set(served.headers)
            replies.add(comparable(served))
    assert len(replies) == 1


async def test_the_bearer_wins_over_the_cookie_as_in_the_route(site: Site) -> None:
    requester = await site.new_requester("browser")
    await requester.cancel()
    path = f"{requester.path}/events"
    # the cookie is right, the bearer wrong: refused, as the route does
    wrong = {"authorization": "Bearer not-the-secret"}
    assert (await requester.client.get(path, headers=wrong)).status_code == 401
    assert (await full_stack(site).get(path, headers=wrong)).status_code == 401
    assert (await requester.client.get(path)).status_code == 200


async def test_one_access_log_line_with_the_request_id_and_no_id_in_the_path(
    site: Site, access_log: AccessLines
) -> None:
    requester = await site.new_requester("api")
    await requester.cancel()
    access_log.lines.clear()

    streamed = await within(
        requester.client.get(
            f"{requester.path}/events",
            headers={**requester.headers(), "x-request-id": "proxy-id-7"},
        )
    )
    refused = await site.client().get(f"/api/v1/login-requests/{UNKNOWN_ID}/events")

    assert streamed.headers["x-request-id"] == "proxy-id-7"  # a sane id from a proxy is kept
    assert len(refused.headers["x-request-id"]) == 16
    lines = {line["request_id"]: line for line in access_log.lines}
    assert len(access_log.lines) == 2 == len(lines)
    for response in (streamed, refused):
        line = lines[response.headers["x-request-id"]]
        assert line["status"] == response.status_code
        assert line["method"] == "GET"
        assert line["path"] == "/api/v1/login-requests/{…}/events"
        assert line["message"] == f"GET /api/v1/login-requests/{{…}}/events {line['status']}"
        assert isinstance(line["ms"], float)
    assert requester.id not in json.dumps(access_log.lines)


async def test_the_handler_takes_exactly_get_on_the_event_stream_path(site: Site) -> None:
    events = site.app.requester_events  # type: ignore[attr-defined]

    def scope(method: str, path: str, root_path: str = "") -> Scope:
        return {"type": "http", "method": method, "path": path, "root_path": root_path}

    assert events.match(scope("GET", "/api/v1/login-requests/lr_x/events")) == "lr_x"
    assert events.match(scope("GET", "/p/api/v1/login-requests/lr_x/events", "/p")) == "lr_x"
    for method, path in [
        ("POST", "/api/v1/login-requests/lr_x/events"),
        ("HEAD", "/api/v1/login-requests/lr_x/events"),
        ("GET", "/api/v1/login-requests/lr_x/events/"),
        ("GET", "/api/v1/login-requests//events"),
        ("GET", "/api/v1/login-requests/lr_x/y/events"),
        ("GET", "/api/v1/login-requests/lr_x"),
        ("GET", "/api/v1/me/events"),
    ]:
        assert events.match(scope(method, path)) is None, (method, path)
    assert events.match({"type": "websocket", "path": "/api/v1/login-requests/x/events"}) is None


async def test_other_methods_and_near_paths_still_go_to_fastapi(site: Site) -> None:
    requester = await site.new_requester("api")
    client = site.client()
    path = f"{requester.path}/events"
    for method in ("POST", "DELETE", "HEAD"):
        served = await client.request(method, path, headers=requester.headers())
        reference = await full_stack(site).request(method, path, headers=requester.headers())
        assert served.status_code == 405, method
        assert comparable(served) == comparable(reference), method
    slash = await client.get(f"{path}/", headers=requester.headers())
    assert slash.status_code == 307  # FastAPI's redirect to the path without the slash
    assert slash.headers["location"].endswith(path)
    assert (await client.get(f"{path}/more")).status_code == 404


async def test_a_database_out_of_reach_is_a_503_like_the_routes_and_is_counted(
    site: Site,
) -> None:
    requester = await site.new_requester("api")
    store = site.services.store
    dead = make_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/gone")
    saved = {name: getattr(store, name) for name in ("engine", "writer") if hasattr(store, name)}
    path = f"{requester.path}/events"
    try:
        for name in saved:
            setattr(store, name, dead)
        before = sample(site, "qrlogin_database_errors_total")
        served = await within(requester.client.get(path, headers=requester.headers()))
        by_handler = await within(handler_only(site).get(path, headers=requester.headers()))
        by_fastapi = await within(full_stack(site).get(path, headers=requester.headers()))
        counted = sample(site, "qrlogin_database_errors_total") - before
    finally:
        for name, engine in saved.items():
            setattr(store, name, engine)
        await dead.dispose()
    assert served.status_code == 503, served.text
    assert served.json()["error"] == "unavailable"
    assert comparable(served) == comparable(by_handler) == comparable(by_fastapi)
    assert counted == 3  # one each
    assert await open_streams(site) == 0


async def until_one_stream_is_open(site: Site) -> None:
    for _ in range(200):  # at most 2 s
        if await open_streams(site) == 1:
            break
        await asyncio.sleep(0.01)
    assert await open_streams(site) == 1


async def test_the_stream_carries_changes_and_counts_itself_open_until_it_ends(
    make_site: Callable[..., Awaitable[Site]],
) -> None:
    site = await make_site(clock=None, policy=Policy(heartbeat=0.2))
    requester = await site.new_requester("browser")
    approver = await site.sign_in()
    stream = asyncio.create_task(requester.events())
    await until_one_stream_is_open(site)
    await asyncio.sleep(0.5)  # a heartbeat or two
    assert (await approver.scan(requester.handle)).status_code == 200
    await asyncio.sleep(0.1)
    assert (await requester.cancel()).status_code == 200

    response = await within(stream)
    assert response.status_code == 200
    assert await open_streams(site) == 0
    assert ": heartbeat" in response.text
    statuses = [
        json.loads(line.removeprefix("data: "))["status"]
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    assert statuses == ["pending", "scanned", "cancelled"]


async def test_a_database_lost_mid_stream_ends_the_stream_cleanly_and_is_counted(
    make_site: Callable[..., Awaitable[Site]],
) -> None:
    site = await make_site(clock=None, policy=Policy(heartbeat=0.2))
    requester = await site.new_requester("api")
    store = site.services.store
    before = sample(site, "qrlogin_database_errors_total")
    stream = asyncio.create_task(requester.events())
    await until_one_stream_is_open(site)
    dead = make_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/gone")
    saved = {name: getattr(store, name) for name in ("engine", "writer") if hasattr(store, name)}
    try:
        for name in saved:
            setattr(store, name, dead)
        response = await within(stream)  # the next heartbeat's re-read fails
    finally:
        for name, engine in saved.items():
            setattr(store, name, engine)
        await dead.dispose()

    assert response.status_code == 200
    assert response.text.count("event: state") == 1  # the state it had, then a clean end
    assert sample(site, "qrlogin_database_errors_total") == before + 1
    assert await open_streams(site) == 0


async def test_a_client_that_leaves_closes_its_stream_on_the_server(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(app_kwargs={"policy": Policy(heartbeat=30)})
    gauge = 'qrlogin_sse_streams_open{kind="login_request"}'

    async def streams_open(client: httpx.AsyncClient) -> float:
        text = (await client.get("/metrics")).text
        line = next((x for x in text.splitlines() if x.startswith(gauge)), f"{gauge} 0")
        return float(line.rsplit(" ", 1)[1])

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        created = (await client.post("/api/v1/login-requests", json={}, headers=BROWSER)).json()
        path = f"/api/v1/login-requests/{created['id']}/events"
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as leaving:
            leaving.cookies = client.cookies
            async with leaving.stream("GET", path) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
                assert SECURITY <= set(response.headers)
                assert response.headers["x-request-id"]
                lines = response.aiter_lines()
                assert await within(anext(lines)) == "retry: 2000"
                assert await streams_open(client) == 1
        # the connection is closed: the server notices at once, long before a heartbeat
        for _ in range(100):
            if await streams_open(client) == 0:
                break
            await asyncio.sleep(0.05)
        assert await streams_open(client) == 0
        # and it still serves the same request to a new stream
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as again:
            again.cookies = client.cookies
            async with again.stream("GET", path) as response:
                assert response.status_code == 200
