"""The OpenAPI document says what the app does (issue 11 item 10): the refusals each operation
can give, no 422 (validation is a 400), inputs it refuses excluded by the schema, the media
types of what is not JSON, and ``Allow`` answers that list the documented methods."""

from __future__ import annotations

import re
from typing import Any

import pytest
from web_support import BROWSER, Site

Spec = dict[str, Any]


async def spec_of(site: Site) -> Spec:
    response = await site.client().get("/openapi.json")
    assert response.status_code == 200
    spec: Spec = response.json()
    return spec


def operations(spec: Spec) -> list[tuple[str, str, Spec]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def error_codes(op: Spec, status: str) -> str:
    """The description of ``status`` on ``op`` (it names the error codes)."""
    assert status in op["responses"], f"{status} is not documented"
    description: str = op["responses"][status]["description"]
    return description


async def test_no_operation_promises_a_422(site: Site) -> None:
    spec = await spec_of(site)

    for method, path, op in operations(spec):
        assert "422" not in op["responses"], (method, path)
    assert not {"HTTPValidationError", "ValidationError"} & set(spec["components"]["schemas"])


async def test_every_operation_with_input_documents_400_invalid_request(site: Site) -> None:
    spec = await spec_of(site)

    for method, path, op in operations(spec):
        if op.get("parameters") or op.get("requestBody"):
            assert "invalid_request" in error_codes(op, "400"), (method, path)


async def test_a_malformed_request_gets_the_documented_400(site: Site) -> None:
    response = await site.client().get("/api/v1/login-requests/lr_x", params={"wait": "soon"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


COOKIE_WRITES = [
    ("DELETE", "/api/v1/sessions/{session_id}"),
    ("POST", "/api/v1/sessions/revoke-others"),
    ("POST", "/api/v1/auth/email/pickup"),
    ("POST", "/api/v1/logout"),
    ("POST", "/api/v1/scan/{handle}/approve"),
    ("POST", "/api/v1/scan/{handle}/deny"),
    ("POST", "/api/v1/link"),
    ("POST", "/api/v1/login-requests/{request_id}/session"),
    ("DELETE", "/api/v1/login-requests/{request_id}"),
]


@pytest.mark.parametrize(("method", "path"), COOKIE_WRITES)
async def test_writes_a_cookie_can_make_document_csrf_failed(
    site: Site, method: str, path: str
) -> None:
    spec = await spec_of(site)

    assert "csrf_failed" in error_codes(spec["paths"][path][method.lower()], "403")


SIGNED_IN = [
    ("DELETE", "/api/v1/sessions/{session_id}"),
    ("POST", "/api/v1/sessions/revoke-others"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/me/events"),
    ("GET", "/api/v1/me/activity"),
    ("POST", "/api/v1/logout"),
    ("POST", "/api/v1/link"),
    ("GET", "/api/v1/scan/{handle}"),
]


@pytest.mark.parametrize(("method", "path"), SIGNED_IN)
async def test_calls_that_need_a_session_document_401(site: Site, method: str, path: str) -> None:
    spec = await spec_of(site)

    assert "not_signed_in" in error_codes(spec["paths"][path][method.lower()], "401")


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/v1/sessions/ses_x"), ("POST", "/api/v1/sessions/revoke-others")],
)
async def test_a_write_without_credentials_is_told_to_sign_in_not_csrf(
    site: Site, method: str, path: str
) -> None:
    response = await site.client().request(method, path)

    assert response.status_code == 401
    assert response.json()["error"] == "not_signed_in"


async def test_pickup_without_the_browser_header_is_the_documented_403(site: Site) -> None:
    response = await site.client().post("/api/v1/auth/email/pickup")

    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


RATE_LIMITED = [
    ("POST", "/api/v1/login-requests"),
    ("POST", "/api/v1/link"),
    ("POST", "/api/v1/auth/email/start"),
    ("POST", "/api/v1/auth/email/verify"),
]


@pytest.mark.parametrize(("method", "path"), RATE_LIMITED)
async def test_rate_limited_calls_document_429(site: Site, method: str, path: str) -> None:
    spec = await spec_of(site)

    assert "rate_limited" in error_codes(spec["paths"][path][method.lower()], "429")


async def test_create_answers_the_documented_429_when_limited(make_site: Any) -> None:
    from qrlogin.limiter import Limits

    site = await make_site()
    site.app.state.services.limiter.rules = Limits(create_per_ip="1 per minute")
    client = site.client()
    assert (await client.post("/api/v1/login-requests")).status_code == 201

    refused = await client.post("/api/v1/login-requests")

    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0


async def test_metrics_and_the_qr_are_documented_as_what_they_are(site: Site) -> None:
    spec = await spec_of(site)

    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    qr = spec["paths"]["/api/v1/login-requests/{request_id}/qr.svg"]["get"]["responses"]
    assert set(metrics) == {"text/plain"}
    assert set(qr["200"]["content"]) == {"image/svg+xml"}
    assert "401" in qr
    assert (await site.client().get("/metrics")).headers["content-type"].startswith("text/plain")


async def test_the_schema_excludes_the_inputs_the_app_refuses(site: Site) -> None:
    models = (await spec_of(site))["components"]["schemas"]
    email = models["EmailStart"]["properties"]["email"]
    pattern = re.compile(email["pattern"])

    assert models["LinkBody"]["properties"]["user_code"]["minLength"] == 1
    assert models["EmailVerify"]["properties"]["code"]["minLength"] == 1
    assert models["EmailVerify"]["properties"]["email"] == email
    for refused in ("", " ", "ann", "ann@", "@example.com", "a b@example.com", "ann@example"):
        assert not pattern.match(refused), refused
    for accepted in ("ann@example.com", "  Ann@Example.COM ", "ünï@例え.jp"):
        assert pattern.match(accepted), accepted
    client = site.client()
    for refused in ("", "a b@example.com"):
        response = await client.post("/api/v1/auth/email/start", json={"email": refused})
        assert response.status_code == 400, refused


@pytest.mark.parametrize("content", [b"", b"null", b"{}", b" null "])
async def test_create_takes_an_empty_or_null_body_as_the_schema_allows(
    site: Site, content: bytes
) -> None:
    response = await site.client().post(
        "/api/v1/login-requests", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 201, response.text


async def test_a_405_lists_the_methods_documented_for_its_path(site: Site) -> None:
    spec = await spec_of(site)
    client = site.client()

    for template, ops in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x1", template)
        documented = ", ".join(sorted(m.upper() for m in ops))
        response = await client.request("OPTIONS", path)
        assert response.status_code == 405, template
        assert response.headers.get_list("allow") == [documented], template


async def test_revoke_others_is_not_taken_for_a_session_id(site: Site) -> None:
    response = await site.client().get("/api/v1/sessions/revoke-others")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_stream_events_carry_the_documented_models(site: Site) -> None:
    spec = await spec_of(site)

    def data_models(path: str) -> set[str]:
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]
        variants = schema["schema"].get("oneOf", [schema["schema"]])
        refs = {v["properties"]["data"]["contentSchema"]["$ref"] for v in variants}
        return {ref.rsplit("/", 1)[1] for ref in refs}

    assert data_models("/api/v1/login-requests/{request_id}/events") == {"LoginRequestState"}
    assert data_models("/api/v1/me/events") == {"StreamSession", "SessionInfo"}
    assert {"LoginRequestState", "StreamSession", "SessionInfo"} <= set(
        spec["components"]["schemas"]
    )


async def test_the_browser_header_is_what_csrf_failed_asks_for(site: Site) -> None:
    approver = await site.sign_in(kind="browser")

    refused = await approver.client.post("/api/v1/sessions/revoke-others")
    allowed = await approver.client.post("/api/v1/sessions/revoke-others", headers=BROWSER)

    assert refused.status_code == 403
    assert refused.json()["error"] == "csrf_failed"
    assert allowed.status_code == 200
    assert allowed.json() == {"revoked": 0}


async def test_who_may_call_is_declared_as_the_401_says(site: Site) -> None:
    spec = await spec_of(site)
    schemes = spec["components"]["securitySchemes"]

    assert {"session", "session_cookie", "requester_secret", "requester_cookie"} <= set(schemes)
    for method, path, op in operations(spec):
        names = {name for requirement in op.get("security", []) for name in requirement}
        unauthorized = op["responses"].get("401", {}).get("description", "")
        if unauthorized.startswith("not_signed_in"):
            assert names == {"session", "session_cookie"}, (method, path)
        elif unauthorized.startswith("invalid_secret"):
            assert names == {"requester_secret", "requester_cookie"}, (method, path)
        else:
            assert not names, (method, path)


async def test_an_operation_that_declares_a_session_refuses_a_call_without_one(
    site: Site,
) -> None:
    spec = await spec_of(site)
    client = site.client()

    for method, path, op in operations(spec):
        if {"session": []} not in op.get("security", []):
            continue
        body = {"user_code": "123456"} if path == "/api/v1/link" else None
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        response = await client.request(method, concrete, json=body)
        assert response.status_code == 401, (method, path, response.text)
