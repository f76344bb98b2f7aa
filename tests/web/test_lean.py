"""The lean path (web/lean.py): the hot endpoints served from their own FastAPI routes
without FastAPI's per-request layers, and from outside indistinguishable from them.

Most tests compare two clients of one app: ``site.client()`` goes through the app as served
(``Lean`` takes the hot routes), ``routes_only`` through the same app built without ``Lean``,
where FastAPI's router serves every route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send
from web_support import BROWSER, Site

from qrlogin.web import lean
from qrlogin.web.lean import Lean, hot, hot_routes

UNKNOWN_ID = "lr_AAAAAAAAAAAAAAAAAAAAAA"
VARYING = {"x-request-id", "date", "content-length"}


def routes_only(site: Site) -> httpx.AsyncClient:
    """A client of the same app with its middleware stack built without ``Lean``."""
    app = site.app
    kept = app.user_middleware
    app.user_middleware = [m for m in kept if m.cls is not Lean]
    try:
        stack = app.build_middleware_stack()
    finally:
        app.user_middleware = kept

    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        await stack(scope, receive, send)

    transport = httpx.ASGITransport(app=call, client=("127.0.0.1", 50000))
    client = httpx.AsyncClient(transport=transport, base_url=site.base_url)
    site.stack.push_async_callback(client.aclose)
    return client


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the routes the lean path answered, in order."""
    seen: list[str] = []
    respond = lean.LeanRoute.respond

    async def spy(self: lean.LeanRoute, request: Request, kwargs: dict[str, Any]) -> Response:
        seen.append(self.route.path)
        return await respond(self, request, kwargs)

    monkeypatch.setattr(lean.LeanRoute, "respond", spy)
    return seen


def same_reply(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    heads_a = sorted((k, v) for k, v in a.headers.multi_items() if k not in VARYING)
    heads_b = sorted((k, v) for k, v in b.headers.multi_items() if k not in VARYING)
    assert heads_a == heads_b


async def test_a_whole_sign_in_takes_the_lean_path(site: Site, served: list[str]) -> None:
    """Create, scan, approve and exchange are each answered by the lean path, with the
    status, body and headers their routes declare."""
    approver = await site.sign_in()
    served.clear()
    requester = await site.new_requester("api")
    code = await site.approved(requester, approver)
    exchanged = await requester.exchange(code)
    assert exchanged.status_code == 200 and exchanged.json()["user"]["id"] == approver.user["id"]
    assert served == [
        "/api/v1/login-requests",
        "/api/v1/scan/{handle}",
        "/api/v1/scan/{handle}/approve",
        "/api/v1/login-requests/{request_id}/session",
    ]


async def test_lean_replies_are_the_routes_replies(site: Site, served: list[str]) -> None:
    """The same requests through the lean path and through FastAPI's router: byte for byte
    the same status and body, and the same headers but the request id. Refusals raised by
    the endpoints (no secret, unknown handle, not signed in, missing header) included."""
    lean_client, fastapi_client = site.client(), routes_only(site)
    approver = await site.sign_in()
    auth = {"authorization": f"Bearer {approver.token}"}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/healthz", {}),
        ("POST", f"/api/v1/login-requests/{UNKNOWN_ID}/session", {"json": {}}),
        (
            "POST",
            f"/api/v1/login-requests/{UNKNOWN_ID}/session",
            {"json": {}, "headers": {"authorization": "Bearer nope"}},
        ),
        ("GET", "/api/v1/scan/unknown-handle", {}),
        ("GET", "/api/v1/scan/unknown-handle", {"headers": auth}),
        ("POST", "/api/v1/scan/unknown-handle/approve", {"headers": auth}),
        ("POST", "/api/v1/scan/unknown-handle/deny", {"headers": auth}),
        ("POST", "/api/v1/link", {"json": {"user_code": "00000000"}, "headers": auth}),
    ]
    for method, path, kw in cases:
        served.clear()
        a = await lean_client.request(method, path, **kw)
        assert served, f"{method} {path} did not take the lean path"
        b = await fastapi_client.request(method, path, **kw)
        same_reply(a, b)


@pytest.mark.parametrize(
    ("path", "kw"),
    [
        ("/api/v1/login-requests", {"content": b"{not json"}),
        ("/api/v1/login-requests", {"content": b"[]"}),
        ("/api/v1/login-requests", {"json": {"device_name": 5}}),
        ("/api/v1/login-requests", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("/api/v1/login-requests", {"content": "\u00e9".encode("latin-1")}),
        ("/api/v1/link", {}),
        ("/api/v1/link", {"json": {"user_code": 7}}),
        ("/api/v1/link", {"content": b"{", "headers": {"content-type": "application/json"}}),
        # nested past the JSON decoder's recursion limit: FastAPI's 400, not a 500
        ("/api/v1/login-requests", {"content": b"[" * 100_000 + b"]" * 100_000}),
    ],
)
async def test_bodies_out_of_the_ordinary_are_answered_by_fastapi_as_before(
    site: Site, served: list[str], path: str, kw: dict[str, Any]
) -> None:
    """A body that is not plain valid JSON for the route goes on to FastAPI, the read
    body handed on: the reply is FastAPI's own, and nothing is created."""
    headers = kw.pop("headers", {"content-type": "application/json"})
    a = await site.client().post(path, headers=headers, **kw)
    b = await routes_only(site).post(path, headers=headers, **kw)
    assert not served  # the lean path declined it
    assert a.status_code in (400, 401, 403)
    same_reply(a, b)


async def test_an_empty_body_means_none_where_the_route_allows_it(
    site: Site, served: list[str]
) -> None:
    """``POST /api/v1/login-requests`` with no body at all: 201 through the lean path, as
    through FastAPI; a browser gets its cookie (the sub-response's headers are kept)."""
    a = await site.client().post("/api/v1/login-requests", headers=BROWSER)
    assert served == ["/api/v1/login-requests"]
    b = await routes_only(site).post("/api/v1/login-requests", headers=BROWSER)
    assert a.status_code == b.status_code == 201
    assert a.json().keys() == b.json().keys() and a.json()["secret"] is None
    assert "qrl_requester" in a.headers["set-cookie"]
    assert [k for k, _ in a.headers.multi_items() if k not in VARYING] == [
        k for k, _ in b.headers.multi_items() if k not in VARYING
    ]


async def test_a_head_or_another_method_goes_to_fastapi(site: Site, served: list[str]) -> None:
    """Only the methods a hot route declares take the lean path; 405 is FastAPI's, with
    its ``Allow``."""
    a = await site.client().put("/api/v1/login-requests")
    b = await routes_only(site).put("/api/v1/login-requests")
    assert not served
    assert a.status_code == 405
    same_reply(a, b)


async def test_a_hot_route_under_a_root_path_is_matched_after_it(
    make_site: Callable[..., Awaitable[Site]], served: list[str]
) -> None:
    """Mounted under a host's prefix, the lean path matches the part after the root path."""
    site = await make_site()

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        scope = {**scope, "root_path": "/auth", "path": "/auth" + scope["path"]}
        await site.app(scope, receive, send)

    transport = httpx.ASGITransport(app=mounted, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=site.base_url) as client:
        created = await client.post("/api/v1/login-requests", json={})
    assert created.status_code == 201 and served == ["/api/v1/login-requests"]


# -- what may take the lean path ---------------------------------------------------------


class Item(BaseModel):
    name: str


def _dep() -> int:
    return 1


def test_routes_that_need_more_than_it_gives_are_refused_at_start_up() -> None:
    """A hot endpoint with a dependency, a query parameter or a typed path parameter
    cannot be served faithfully without FastAPI: refused when the app is built."""
    router = APIRouter()

    @router.get("/api/with-query")
    @hot
    async def with_query(q: int = Query(0)) -> Item:
        return Item(name=str(q))

    @router.get("/api/with-dep")
    @hot
    async def with_dep(n: int = Depends(_dep)) -> Item:
        return Item(name=str(n))

    @router.get("/api/typed/{n:int}")
    @hot
    async def typed(n: int) -> Item:
        return Item(name=str(n))

    for route in router.routes:
        with pytest.raises(ValueError, match="cannot take the lean path"):
            hot_routes([route])


async def test_a_reply_outside_its_response_model_is_a_bug_not_a_reply() -> None:
    """An endpoint replying outside its declared model gets no reply of that shape: an
    exception, as FastAPI raises one, for the last resort to answer."""
    router = APIRouter()

    @router.post("/api/item", response_model=Item)
    @hot
    async def item() -> Any:
        return {"nom": "x"}

    app = FastAPI()
    app.include_router(router)
    app.add_middleware(Lean, routes=hot_routes(router.routes))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(ValueError, match="outside its response model"):
            await client.post("/api/item")


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM_TYPE = "application/x-www-form-urlencoded"
FORM_POLL = {"grant_type": DEVICE_GRANT, "device_code": "made-up", "client_id": "nobody"}


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8"],
)
async def test_an_urlencoded_token_poll_takes_the_lean_path_with_the_routes_reply(
    site: Site, served: list[str], content_type: str
) -> None:
    """RFC 8628 polls and device authorizations are urlencoded forms: parsed by Starlette
    and validated by FastAPI's own form handling on the lean path, with the reply the route
    gives (here the refusal of an unknown client)."""
    content = str(httpx.QueryParams(FORM_POLL)).encode()
    headers = {"content-type": content_type}
    for path in ("/oauth/token", "/oauth/device_authorization"):
        served.clear()
        a = await site.client().post(path, content=content, headers=headers)
        assert served == [path]
        b = await routes_only(site).post(path, content=content, headers=headers)
        assert a.status_code == 401 and a.json()["error"] == "invalid_client"
        same_reply(a, b)


@pytest.mark.parametrize(
    ("kw", "lean"),
    [
        (
            {"files": {"device_code": ("x.txt", b"made-up")}, "data": {"grant_type": DEVICE_GRANT}},
            False,
        ),
        ({"data": FORM_POLL, "files": {"other": ("y.txt", b"y")}}, False),  # multipart
        ({"json": FORM_POLL}, False),
        ({"content": b""}, False),
        # a form that parses takes the lean path, oddly encoded or not
        ({"content": b"grant_type=%zz", "headers": {"content-type": FORM_TYPE}}, True),
    ],
)
async def test_other_token_bodies_are_answered_as_fastapi_answers_them(
    site: Site, served: list[str], kw: dict[str, Any], lean: bool
) -> None:
    """Multipart (files among the fields or not), JSON, an empty body: not for the lean
    path; FastAPI answers them as it would have. Whichever path answers, the reply is the
    FastAPI route's, byte for byte."""
    a = await site.client().post("/oauth/token", **kw)
    b = await routes_only(site).post("/oauth/token", **kw)
    assert served == (["/oauth/token"] if lean else [])
    assert a.status_code in (400, 401)
    same_reply(a, b)
