"""The app as a whole: OpenAPI document, interactive docs, health, and error shapes."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from web_support import Site

from qrlogin.logs import ACCESS_LOGGER
from support import LiveServer

CONTRACT = {
    "/api/v1/login-requests": {"post"},
    "/api/v1/login-requests/{request_id}": {"get", "delete"},
    "/api/v1/login-requests/{request_id}/events": {"get"},
    "/api/v1/login-requests/{request_id}/session": {"post"},
    "/api/v1/scan/{handle}": {"get"},
    "/api/v1/scan/{handle}/approve": {"post"},
    "/api/v1/scan/{handle}/deny": {"post"},
    "/api/v1/auth/email/start": {"post"},
    "/api/v1/auth/email/verify": {"post"},
    "/api/v1/auth/email/pickup": {"post"},
    "/api/v1/me": {"get"},
    "/api/v1/logout": {"post"},
}


async def test_openapi_lists_every_contract_path(site: Site) -> None:
    response = await site.client().get("/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, methods in CONTRACT.items():
        assert path in paths, path
        assert methods <= set(paths[path]), path


async def test_openapi_documents_the_exchange_refusals(site: Site) -> None:
    spec = (await site.client().get("/openapi.json")).json()

    exchange = spec["paths"]["/api/v1/login-requests/{request_id}/session"]["post"]

    assert {"200", "401", "403", "409", "410"} <= set(exchange["responses"])
    created = spec["paths"]["/api/v1/login-requests"]["post"]["responses"]["201"]
    schema_ref = created["content"]["application/json"]["schema"]["$ref"]
    fields = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]["properties"]
    assert {"id", "secret", "qr_url", "status", "version", "expires_at", "qr_expires_at"} <= set(
        fields
    )


async def test_openapi_leaves_the_pages_out(site: Site) -> None:
    paths = (await site.client().get("/openapi.json")).json()["paths"]

    assert not {"/login", "/signin", "/q/{handle}", "/dev/outbox"} & set(paths)


async def test_docs_serve_html(site: Site) -> None:
    response = await site.client().get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_healthz(site: Site) -> None:
    response = await site.client().get("/healthz")

    assert response.json() == {"status": "ok", "worker": os.getpid()}


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/nothing"])
async def test_unknown_paths_get_the_error_shape(site: Site, path: str) -> None:
    response = await site.client().get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response.json()["message"]


async def test_a_wrong_method_is_refused_without_a_500(site: Site) -> None:
    response = await site.client().put("/api/v1/login-requests")

    assert response.status_code == 405
    assert set(response.json()) == {"error", "message"}


GARBAGE = [
    b"",
    b"{",
    b"[1, 2]",
    b'"text"',
    b"1e999999",
    b'{"device_name": {"$gt": ""}, "email": [], "code": null, "confirm_code": 1.5}',
    b'{"__proto__": {"admin": true}}',
    b"\x00\xff\xfe",
    b"{" * 5000 + b"}" * 5000,
]


@pytest.mark.parametrize("content", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_bodies_never_cause_a_500(site: Site, content: bytes) -> None:
    requester = await site.new_requester("api")
    approver = await site.sign_in()
    handle = requester.handle
    calls = [
        ("/api/v1/login-requests", {}),
        (f"{requester.path}/session", requester.headers()),
        (f"/api/v1/scan/{handle}/approve", approver.headers()),
        (f"/api/v1/scan/{handle}/deny", approver.headers()),
        ("/api/v1/link", approver.headers()),
        ("/api/v1/auth/email/start", {}),
        ("/api/v1/auth/email/verify", {}),
        ("/api/v1/auth/email/pickup", {"qrlogin-client": "browser"}),
    ]
    client = site.client()

    for path, headers in calls:
        response = await client.post(
            path, content=content, headers={**headers, "content-type": "application/json"}
        )
        assert response.status_code < 500, (path, response.text)
        assert set(response.json()) >= {"error", "message"} or response.status_code < 300, path


async def test_an_unhandled_error_is_answered_like_every_other_reply(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 item 3: the last-resort 500 carries the security headers and X-Request-Id,
    gets its access-log line, and its traceback is logged once."""

    async def broken() -> None:
        raise RuntimeError("a bug")

    site.app.add_api_route("/api/v1/broken", broken)
    caplog.set_level(logging.INFO)

    response = await site.client().get("/api/v1/broken", headers={"x-request-id": "req-500"})

    assert response.status_code == 500
    assert set(response.json()) == {"error", "message"}
    assert response.json()["error"] == "server_error"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-request-id"] == "req-500"
    assert response.headers["referrer-policy"] == "no-referrer"
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
    assert "a bug" in str(tracebacks[0].exc_info[1])  # type: ignore[index]
    access = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [r.getMessage() for r in access] == ["GET /api/v1/broken 500"]


def test_an_unhandled_error_under_uvicorn_is_logged_once(
    live_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 item 3, as served: uvicorn no longer logs the error a second time."""

    async def broken() -> None:
        raise RuntimeError("a bug under uvicorn")

    server = live_server()
    server.app.add_api_route("/api/v1/broken", broken)
    caplog.set_level(logging.INFO)

    response = httpx.get(f"{server.url}/api/v1/broken", timeout=10)

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert "x-request-id" in response.headers
    assert "content-security-policy" in response.headers
    assert server.server_errors == []  # no "Exception in ASGI application" from uvicorn
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
    assert [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER] == [
        "GET /api/v1/broken 500"
    ]


async def test_serve_freezes_what_start_up_allocated(tmp_path: Path) -> None:
    """``qrlogin serve`` builds its app with ``freeze_gc``: after start-up the collector's
    permanent generation holds the modules, routes and templates (no full-collection pauses
    walking them under load); an app built without it (tests, embedding) freezes nothing."""
    import gc

    from qrlogin.config import Settings
    from qrlogin.web.app import create_app

    gc.unfreeze()
    plain = create_app(Settings(data_dir=tmp_path / "a"))
    async with plain.router.lifespan_context(plain):
        assert gc.get_freeze_count() == 0
    served = create_app(Settings(data_dir=tmp_path / "b"), freeze_gc=True)
    try:
        async with served.router.lifespan_context(served):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
