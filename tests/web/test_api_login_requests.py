"""Requester API: create, read and long-poll, events, exchange, cancel (issue 2, "HTTP API").

Every requester test runs for both kinds of requester: ``api`` (bearer secret from the create
reply) and ``browser`` (HttpOnly cookie, ``Qrlogin-Client: browser`` on writes).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from web_support import BROWSER, PUBLIC_URL, SAFARI_ON_IPHONE, Site, set_cookies, within

from qrlogin.store.tables import login_requests, sessions

# -- create --------------------------------------------------------------------------------


async def test_create_replies_201_with_the_contract_fields(site: Site) -> None:
    response = await site.client().post("/api/v1/login-requests", json={"device_name": "TV"})

    assert response.status_code == 201
    body = response.json()
    assert {"id", "secret", "qr_url", "status", "version", "expires_at", "qr_expires_at"} <= set(
        body
    )
    assert body["status"] == "pending"
    assert body["version"] == 1
    assert body["qr_url"].startswith(f"{PUBLIC_URL}/q/")
    now = site.clock.now()
    assert body["expires_at"] == now + 300
    assert body["qr_expires_at"] == now + 30
    assert isinstance(body["secret"], str) and len(body["secret"]) >= 43
    assert re.fullmatch(r"\d{3} \d{3}", body["user_code"])


async def test_create_without_device_name_names_the_device_from_its_user_agent(
    site: Site,
) -> None:
    requester = await site.new_requester("api", user_agent="curl/8.5.0")
    approver = await site.sign_in()

    scanned = await approver.scan(requester.handle)

    assert scanned.json()["request"]["device_name"] == "curl on Unknown OS"


async def test_browser_create_sets_the_secret_as_an_httponly_cookie_not_in_the_body(
    site: Site,
) -> None:
    client = site.client()
    response = await client.post("/api/v1/login-requests", json={}, headers=BROWSER)

    assert response.status_code == 201
    assert response.json()["secret"] is None
    cookie = set_cookies(response)["qrl_requester"]
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Max-Age=300" in cookie
    assert "Path=/" in cookie
    assert client.cookies["qrl_requester"] not in response.text


async def test_create_ignores_the_host_header_when_building_the_qr_url(site: Site) -> None:
    response = await site.client().post(
        "/api/v1/login-requests", json={}, headers={"host": "evil.example"}
    )

    assert response.json()["qr_url"].startswith(f"{PUBLIC_URL}/q/")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "malformed JSON"),
        (b"[]", "not an object"),
        (b"null", "null"),
        (b'{"device_name": 123}', "wrong type"),
        (b'{"device_name": ["TV"]}', "wrong type"),
        (b'{"device_name": "TV", "id": "lr_mine"}', "client-chosen id"),
        (b'{"handle": "mine"}', "client-chosen handle"),
        (b'{"secret": "mine"}', "client-chosen secret"),
        (json.dumps({"device_name": "x" * 101}).encode(), "oversized device_name"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
async def test_bad_create_input_is_refused_with_400_and_writes_nothing(
    site: Site, content: bytes, why: str
) -> None:
    response = await site.client().post(
        "/api/v1/login-requests", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400, why
    body = response.json()
    assert body["error"] == "invalid_request"
    assert isinstance(body["message"], str) and body["message"]
    assert await site.count(login_requests) == 0


async def test_every_created_request_gets_a_fresh_id_handle_and_secret(site: Site) -> None:
    created = [(await site.new_requester("api")).created for _ in range(20)]

    for name in ("id", "secret", "qr_url"):
        assert len({c[name] for c in created}) == 20, name


# -- read ----------------------------------------------------------------------------------


async def test_requester_reads_its_state(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)

    state = await requester.current()

    assert state["id"] == requester.id
    assert state["status"] == "pending"
    assert state["version"] == 1
    assert state["qr_url"] == requester.created["qr_url"]
    assert "secret" not in state


async def test_state_follows_the_handshake(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in(user_agent=SAFARI_ON_IPHONE)

    await approver.scan(requester.handle)
    scanned = await requester.current()
    await approver.approve(requester.handle)
    approved = await requester.current()

    assert (scanned["status"], scanned["version"], scanned["qr_url"]) == ("scanned", 2, None)
    # the kind of device that scanned, nothing about who: no name, email or id
    assert scanned["approver_device"] == "Safari on iOS"
    assert (approved["status"], approved["version"]) == ("approved", 3)
    assert approved["confirm_code_required"] is True


async def test_handle_rotates_every_30_seconds_and_the_old_one_has_a_short_grace(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    first = requester.handle

    site.clock.advance(31)
    rotated = await requester.current()

    assert rotated["version"] == 1  # a rotation is no state change: nothing is written
    assert rotated["status"] == "pending"
    assert rotated["qr_url"] != requester.created["qr_url"]
    # handles rotate on the request's own 30 s grid, whenever the requester looks
    assert rotated["qr_expires_at"] == requester.created["qr_expires_at"] + 30
    site.clock.advance(5)
    assert (await (await site.sign_in()).scan(first)).status_code == 200


async def test_old_handle_is_refused_after_its_grace(site: Site) -> None:
    requester = await site.new_requester("api")
    first = requester.handle
    site.clock.advance(31)
    site.clock.advance(11)  # nobody asked for the new QR: the old handle dies all the same

    scanned = await (await site.sign_in()).scan(first)

    assert scanned.status_code == 404
    assert scanned.json()["error"] == "invalid_handle"


async def test_state_after_five_minutes_is_expired(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    site.clock.advance(300)

    state = await requester.current()

    assert state["status"] == "expired"
    assert state["qr_url"] is None
    assert state["user_code"] is None


def subscribed(site: Site, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once something subscribes to the event bus: a long-poll or stream now waits."""
    waiting = asyncio.Event()
    subscribe = site.services.bus.subscribe

    def subscribe_and_tell(channel: str) -> Any:
        sub = subscribe(channel)
        waiting.set()
        return sub

    monkeypatch.setattr(site.services.bus, "subscribe", subscribe_and_tell)
    return waiting


@pytest.mark.parametrize("params", [{"wait": "-1"}, {"wait": "soon"}, {"version": "two"}])
async def test_bad_long_poll_parameters_are_refused_with_400(
    site: Site, params: dict[str, str]
) -> None:
    requester = await site.new_requester("api")

    response = await requester.state(**params)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_long_poll_with_an_old_version_answers_at_once(site: Site) -> None:
    requester = await site.new_requester("api")
    await (await site.sign_in()).scan(requester.handle)

    response = await within(requester.state(version=1, wait=60))

    assert response.json()["status"] == "scanned"


async def test_long_poll_on_a_finished_request_answers_at_once(site: Site) -> None:
    requester = await site.new_requester("api")
    await requester.cancel()
    version = (await requester.current())["version"]

    response = await within(requester.state(version=version, wait=60))

    assert response.json()["status"] == "cancelled"


async def test_long_poll_returns_as_soon_as_the_version_changes(
    site: Site, requester_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    waiting = subscribed(site, monkeypatch)
    poll = asyncio.create_task(requester.state(version=1, wait=60))
    await within(waiting.wait())
    assert not poll.done()

    await approver.scan(requester.handle)
    response = await within(poll)

    assert response.status_code == 200
    assert response.json()["status"] == "scanned"
    assert response.json()["version"] == 2


async def test_long_poll_without_a_change_ends_with_the_unchanged_state(
    make_site, requester_kind: str
) -> None:
    from qrlogin.core.policy import Policy

    site = await make_site(clock=None, policy=Policy(long_poll_max=0.05))
    requester = await site.new_requester(requester_kind)

    response = await within(requester.state(version=1, wait=60))

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["version"]) == ("pending", 1)


# -- events (in-process; the streaming itself is tested against uvicorn elsewhere) -----------


def _events(text: str) -> list[dict[str, object]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


async def test_events_of_a_finished_request_send_the_state_once_and_end(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    await requester.cancel()

    response = await within(requester.events())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: state" in response.text
    assert [e["status"] for e in _events(response.text)] == ["cancelled"]


async def test_events_carry_every_change_until_the_request_ends(
    site: Site, requester_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    waiting = subscribed(site, monkeypatch)
    stream = asyncio.create_task(requester.events())
    await within(waiting.wait())

    await site.signed_in(requester, approver)
    response = await within(stream)

    statuses = [e["status"] for e in _events(response.text)]
    assert (statuses[0], statuses[-1]) == ("pending", "consumed")
    order = ["pending", "scanned", "approved", "consumed"]
    assert statuses == sorted(set(statuses), key=order.index)


# -- exchange ------------------------------------------------------------------------------


async def test_exchange_of_an_approved_request_starts_a_new_session(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()

    response = await site.signed_in(requester, approver)

    body = response.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 30 * 24 * 3600
    assert body["user"] == {
        "id": approver.user["id"],
        "display_name": approver.user["display_name"],
    }
    if requester_kind == "api":
        token = body["access_token"]
        assert token and token != approver.token
        me = await site.client().get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    else:
        assert body["access_token"] is None
        assert body.get("refresh_token") is None
        cookies = set_cookies(response)
        assert "HttpOnly" in cookies["qrl_session"]
        assert "Max-Age=0" in cookies["qrl_requester"]  # the requester secret is done
        me = await requester.client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["user"]["id"] == approver.user["id"]
    assert me.json()["session_id"] != (await approver.me()).json()["session_id"]
    state = await site.client().get(
        requester.path, headers={"authorization": f"Bearer {requester.secret}"}
    )
    assert state.json()["status"] == "consumed"


async def test_exchange_under_tap_needs_no_confirm_code(make_site, requester_kind: str) -> None:
    site = await make_site(confirm="tap")
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    assert await site.approved(requester, approver) is None
    assert (await requester.current())["confirm_code_required"] is False

    response = await requester.exchange()

    assert response.status_code == 200


async def _refusal(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"]
    return response.status_code, body["error"]


async def test_exchange_while_pending_is_authorization_pending(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)

    assert await _refusal(await requester.exchange()) == (409, "authorization_pending")


async def test_exchange_while_scanned_is_authorization_pending(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    await (await site.sign_in()).scan(requester.handle)

    assert await _refusal(await requester.exchange()) == (409, "authorization_pending")


async def test_exchange_after_deny_is_access_denied(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    await approver.scan(requester.handle)
    await approver.deny(requester.handle)

    assert await _refusal(await requester.exchange()) == (403, "access_denied")


async def test_exchange_after_cancel_is_access_denied(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    code = await site.approved(requester, approver)
    await requester.cancel()

    assert await _refusal(await requester.exchange(code)) == (403, "access_denied")


async def test_exchange_after_five_minutes_is_expired_token(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    code = await site.approved(requester, await site.sign_in())
    site.clock.advance(301)

    assert await _refusal(await requester.exchange(code)) == (410, "expired_token")


async def test_second_exchange_is_already_used(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    code = await site.approved(requester, approver)
    assert (await requester.exchange(code)).status_code == 200
    if requester_kind == "browser":  # the first exchange cleared the cookie; replay it
        requester.client.cookies.set("qrl_requester", requester.secret)

    assert await _refusal(await requester.exchange(code)) == (409, "already_used")
    assert await site.count(sessions) == 2  # the approver's and the one new session


async def test_exchange_without_the_confirm_code_is_refused(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    await site.approved(requester, await site.sign_in())

    assert await _refusal(await requester.exchange()) == (400, "confirm_code_required")
    assert (await requester.current())["status"] == "approved"


async def test_wrong_confirm_code_is_refused_and_the_fifth_burns_the_request(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    code = await site.approved(requester, await site.sign_in())
    assert code is not None
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    refusals = [await _refusal(await requester.exchange(wrong)) for _ in range(5)]

    assert refusals == [(400, "invalid_code")] * 4 + [(403, "access_denied")]
    assert await _refusal(await requester.exchange(code)) == (403, "access_denied")
    state = await requester.current()
    assert (state["status"], state["reason"]) == ("denied", "too_many_attempts")


async def test_a_wrong_confirm_code_says_how_many_attempts_are_left(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    code = await site.approved(requester, await site.sign_in())
    assert code is not None
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    replies = [(await requester.exchange(wrong)).json() for _ in range(5)]

    assert [r.get("attempts_left") for r in replies] == [4, 3, 2, 1, None]
    assert replies[-1]["error"] == "access_denied"


async def test_confirm_code_may_be_typed_with_a_space(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    code = await site.approved(requester, await site.sign_in())
    assert code is not None

    response = await requester.exchange(f"{code[:3]} {code[3:]}")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "content",
    [b"{oops", b"[]", b'{"confirm_code": 123456}', b'{"confirm_code": "1", "user_id": "x"}'],
)
async def test_bad_exchange_input_is_refused_with_400_and_changes_nothing(
    site: Site, content: bytes
) -> None:
    requester = await site.new_requester("api")
    await site.approved(requester, await site.sign_in())

    response = await requester.exchange(
        content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    state = await requester.current()
    assert (state["status"], state["version"]) == ("approved", 3)
    assert await site.count(sessions) == 1


async def test_browser_exchange_without_the_browser_header_is_refused(site: Site) -> None:
    requester = await site.new_requester("browser")
    code = await site.approved(requester, await site.sign_in())

    response = await requester.client.post(f"{requester.path}/session", json={"confirm_code": code})

    assert await _refusal(response) == (403, "csrf_failed")
    assert (await requester.current())["status"] == "approved"


# -- cancel --------------------------------------------------------------------------------


async def test_cancel_makes_the_request_cancelled(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    await approver.scan(requester.handle)

    response = await requester.cancel()

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["reason"], body["version"]) == (
        "cancelled",
        "cancelled_by_requester",
        3,
    )
    assert (await approver.approve(requester.handle)).status_code == 404


async def test_cancel_of_a_finished_request_changes_nothing(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()
    await approver.scan(requester.handle)
    await approver.deny(requester.handle)

    body = (await requester.cancel()).json()

    assert (body["status"], body["reason"]) == ("denied", "denied_by_approver")


async def test_browser_cancel_without_the_browser_header_is_refused(site: Site) -> None:
    requester = await site.new_requester("browser")

    response = await requester.client.delete(requester.path)

    assert await _refusal(response) == (403, "csrf_failed")
    assert (await requester.current())["status"] == "pending"


# -- requester secret ----------------------------------------------------------------------


@pytest.mark.parametrize("call", ["state", "events", "exchange", "cancel", "qr"])
async def test_requester_calls_without_the_secret_are_refused_with_401(
    site: Site, call: str
) -> None:
    requester = await site.new_requester("api")
    client = site.client()
    path = requester.path
    response = await {
        "state": lambda: client.get(path),
        "events": lambda: client.get(f"{path}/events"),
        "exchange": lambda: client.post(f"{path}/session", json={}, headers=BROWSER),
        "cancel": lambda: client.delete(path, headers=BROWSER),
        "qr": lambda: client.get(f"{path}/qr.svg"),
    }[call]()

    assert await _refusal(response) == (401, "invalid_secret")
    assert (await requester.current())["status"] == "pending"
