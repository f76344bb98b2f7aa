"""One wire model per reply shape: a state read as JSON, long-polled, or pushed as an SSE
``data:`` line is the same model's output, byte for byte; the OpenAPI document gives that
model; and no reply is a dict built by hand."""

from __future__ import annotations

import json

from web_support import BROWSER, Site

from qrlogin.core.errors import NotSignedIn
from qrlogin.handshake.views import LoginRequestState, RequesterInfo
from qrlogin.web.errors import error_response
from qrlogin.web.schemas import ErrorBody
from qrlogin.web.sse import sse_event


def data_lines(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


async def test_a_states_sse_data_is_its_json_body_byte_for_byte(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    cancelled = await requester.cancel()  # final: the stream sends it and ends
    assert cancelled.status_code == 200

    read = await requester.state()
    polled = await requester.state(version=0, wait=1)
    streamed = await requester.events()

    assert data_lines(streamed.text) == [read.text]
    assert polled.text == read.text == cancelled.text
    assert LoginRequestState.model_validate_json(read.text).status == "cancelled"


async def test_a_pending_states_stream_starts_with_the_json_of_its_model(site: Site) -> None:
    requester = await site.new_requester("api")
    lr = site.app.state.services.login_requests
    rec = await lr.for_requester(requester.id, requester.secret)

    event = sse_event("state", lr.requester_view(rec), rec.version).decode()

    assert data_lines(event) == [(await requester.state()).text]
    assert set(json.loads(data_lines(event)[0])) == set(LoginRequestState.model_fields)


async def test_the_approval_screen_and_the_link_reply_share_the_requester_model(
    site: Site,
) -> None:
    requester = await site.new_requester("api")
    approver = await site.sign_in()

    scanned = await approver.scan(requester.handle)

    assert set(scanned.json()["request"]) == set(RequesterInfo.model_fields)
    spec = (await site.client().get("/openapi.json")).json()
    scan_out = spec["components"]["schemas"]["ScanOut"]
    assert scan_out["properties"]["request"]["$ref"].endswith("/RequesterInfo")


async def test_every_error_reply_is_the_error_model(site: Site) -> None:
    client = site.client()
    replies = [
        await client.get("/api/v1/me"),
        await client.put("/api/v1/login-requests"),
        await client.get("/api/v1/nothing"),
        await client.post("/api/v1/login-requests", content=b"{", headers=BROWSER),
    ]

    for reply in replies:
        assert reply.status_code >= 400
        ErrorBody.model_validate_json(reply.text)
        assert set(reply.json()) == {"error", "message"}  # attempts_left: only where set


def test_the_error_model_carries_the_errors_code_and_message() -> None:
    response = error_response(NotSignedIn())

    assert response.status_code == 401
    assert json.loads(response.body) == {
        "error": "not_signed_in",
        "message": NotSignedIn.default_message,
    }


def test_a_models_sse_data_is_the_compact_json_of_its_fields() -> None:
    """The same bytes ``json.dumps`` of its fields gives with compact separators. How fast
    each is, is measured by ``python -m bench.wire_models``, not asserted here."""
    state = LoginRequestState(
        id="lr_AAAAAAAAAAAAAAAAAAAAAA",
        status="pending",
        version=3,
        expires_at=1796219001.744,
        qr_url="https://login.example/q/" + "h" * 43,
        qr_expires_at=1796218731.5,
        user_code="123 456",
    )
    assert state.model_dump_json() == json.dumps(state.model_dump(), separators=(",", ":"))
