"""Linked devices (list, revoke, revoke others), rotating refresh tokens, timeouts, the
activity log, and the audit table's one-row-per-event promise. In process, on every backend."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from web_support import BROWSER, CHROME_ON_WINDOWS, SAFARI_ON_IPHONE, Approver, Site

from qrlogin.core.policy import Policy
from qrlogin.store.tables import audit_events, refresh_tokens

# On every backend: refresh rotation (a row lock on PostgreSQL), fifty racing refreshes, revocation
# and the one-audit-row-per-event promise are transactions, which SQLite and PostgreSQL run apart.
pytestmark = pytest.mark.backends

SMART_TV = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def me_status(site: Site, token: str) -> int:
    return (await site.client().get("/api/v1/me", headers=bearer(token))).status_code


async def sessions_of(approver: Approver) -> list[dict[str, Any]]:
    response = await approver.client.get("/api/v1/sessions", headers=approver.headers())
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["sessions"]
    return listed


async def current_of(approver: Approver) -> dict[str, Any]:
    return next(s for s in await sessions_of(approver) if s["current"])


async def qr_linked(
    site: Site, phone: Approver, kind: str = "api", device_name: str | None = "Work laptop"
) -> dict[str, Any]:
    """A desktop signed in by QR, approved from ``phone``; the exchange's body."""
    requester = await site.new_requester(kind, device_name, user_agent=CHROME_ON_WINDOWS)
    body: dict[str, Any] = (await site.signed_in(requester, phone)).json()
    return body


async def refresh(site: Site, token: str) -> httpx.Response:
    return await site.client().post("/api/v1/token/refresh", json={"refresh_token": token})


# -- devices -------------------------------------------------------------------------------


async def test_sessions_list_every_device_and_how_it_was_linked(site: Site) -> None:
    phone = await site.sign_in(user_agent=SAFARI_ON_IPHONE, ip="203.0.113.7")
    site.clock.advance(5)
    await qr_linked(site, phone)
    site.clock.advance(5)
    tv = await site.new_requester("api", "Living-room TV", user_agent=SMART_TV)
    claimed = await phone.client.post(
        "/api/v1/link", json={"user_code": tv.created["user_code"]}, headers=phone.headers()
    )
    assert claimed.status_code == 200, claimed.text
    code = (await phone.approve(tv.handle)).json()["confirm_code"]
    assert (await tv.exchange(code)).status_code == 200

    listed = await sessions_of(phone)

    by_name = {s["device_name"]: s for s in listed}
    assert len(listed) == 3 and {"Work laptop", "Living-room TV"} <= set(by_name)
    mine = next(s for s in listed if s["current"])
    assert [s["current"] for s in listed].count(True) == 1
    assert (mine["linked_by"], mine["linked_from"], mine["ip"]) == ("email", None, "203.0.113.7")
    assert mine["os"] and "ios" in mine["os"].lower()
    laptop = by_name["Work laptop"]
    assert (laptop["linked_by"], laptop["linked_from"]) == ("qr", mine["device_name"])
    assert "chrome" in laptop["browser"].lower() and "windows" in laptop["os"].lower()
    assert laptop["ip"] == "127.0.0.1"
    assert laptop["created_at"] == mine["created_at"] + 5
    assert laptop["last_seen_at"] >= laptop["created_at"]
    tv_row = by_name["Living-room TV"]
    assert (tv_row["linked_by"], tv_row["linked_from"]) == ("user_code", mine["device_name"])
    assert tv_row["created_at"] == mine["created_at"] + 10
    for row in listed:
        assert set(row) >= {
            "id", "device_name", "browser", "os", "ip", "created_at", "last_seen_at",
            "linked_by", "linked_from", "current",
        }  # fmt: skip


async def test_revoking_another_device_refuses_its_very_next_request(site: Site) -> None:
    phone = await site.sign_in(user_agent=SAFARI_ON_IPHONE)
    desktop = (await qr_linked(site, phone))["access_token"]
    assert await me_status(site, desktop) == 200
    laptop = next(s for s in await sessions_of(phone) if not s["current"])

    response = await phone.client.delete(
        f"/api/v1/sessions/{laptop['id']}", headers=phone.headers()
    )

    assert response.status_code == 204, response.text
    assert await me_status(site, desktop) == 401
    assert (await phone.me()).status_code == 200
    assert [s["current"] for s in await sessions_of(phone)] == [True]


async def test_revoking_a_browser_device_from_a_browser_needs_the_browser_header(
    site: Site,
) -> None:
    phone = await site.sign_in(kind="browser", user_agent=SAFARI_ON_IPHONE)
    other = await site.sign_in(phone.email)
    target = (await current_of(other))["id"]

    refused = await phone.client.delete(f"/api/v1/sessions/{target}")
    done = await phone.client.delete(f"/api/v1/sessions/{target}", headers=BROWSER)

    assert refused.status_code == 403, refused.text
    assert done.status_code == 204, done.text
    assert (await other.me()).status_code == 401


async def test_revoking_someone_elses_session_is_not_found_and_revokes_nothing(
    site: Site,
) -> None:
    me = await site.sign_in()
    stranger = await site.sign_in()
    theirs = (await current_of(stranger))["id"]

    response = await me.client.delete(f"/api/v1/sessions/{theirs}", headers=me.headers())
    unknown = await me.client.delete("/api/v1/sessions/ses_nope", headers=me.headers())

    assert error_of(response)[0] == 404
    assert response.json() == unknown.json()
    assert (await stranger.me()).status_code == 200
    assert (await me.me()).status_code == 200
    assert len(await sessions_of(stranger)) == 1


async def test_revoke_others_keeps_only_the_current_session(site: Site) -> None:
    phone = await site.sign_in(user_agent=SAFARI_ON_IPHONE)
    desktop = (await qr_linked(site, phone))["access_token"]
    tablet = await site.sign_in(phone.email)
    stranger = await site.sign_in()

    response = await phone.client.post("/api/v1/sessions/revoke-others", headers=phone.headers())

    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": 2}
    listed = await sessions_of(phone)
    assert [s["current"] for s in listed] == [True]
    assert await me_status(site, desktop) == 401
    assert (await tablet.me()).status_code == 401
    assert (await phone.me()).status_code == 200
    assert (await stranger.me()).status_code == 200


# -- refresh tokens ------------------------------------------------------------------------


async def test_api_clients_get_a_refresh_token_and_browsers_do_not(site: Site) -> None:
    api_phone = await site.sign_in(kind="api")
    browser_phone = await site.sign_in(kind="browser")
    api_desktop = await qr_linked(site, api_phone, "api")
    browser_desktop = await qr_linked(site, api_phone, "browser")

    assert api_phone.session["refresh_token"] and api_phone.session["access_token"]
    assert api_desktop["refresh_token"] and api_desktop["access_token"]
    assert api_desktop["refresh_token"] != api_desktop["access_token"]
    assert browser_phone.session["refresh_token"] is None
    assert browser_desktop["refresh_token"] is None
    assert browser_desktop["access_token"] is None


async def test_refresh_rotates_both_tokens(site: Site) -> None:
    phone = await site.sign_in()
    old = await qr_linked(site, phone)
    site.clock.advance(30)

    response = await refresh(site, old["refresh_token"])

    assert response.status_code == 200, response.text
    new = response.json()
    assert new["access_token"] not in (None, old["access_token"])
    assert new["refresh_token"] not in (None, old["refresh_token"])
    assert new["user"] == old["user"]
    assert await me_status(site, new["access_token"]) == 200
    assert await me_status(site, old["access_token"]) == 401
    # the new refresh token moves the chain on again
    again = await refresh(site, new["refresh_token"])
    assert again.status_code == 200, again.text
    assert await me_status(site, again.json()["access_token"]) == 200
    assert await me_status(site, new["access_token"]) == 401


async def test_a_repeat_within_the_retry_window_returns_the_same_new_tokens(site: Site) -> None:
    phone = await site.sign_in()
    old = (await qr_linked(site, phone))["refresh_token"]

    first = await refresh(site, old)
    site.clock.advance(9)
    second = await refresh(site, old)

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    pick = ("access_token", "refresh_token")
    assert [first.json()[k] for k in pick] == [second.json()[k] for k in pick]
    assert await me_status(site, first.json()["access_token"]) == 200


async def test_reuse_after_the_window_revokes_the_whole_chain(site: Site) -> None:
    phone = await site.sign_in()
    old = (await qr_linked(site, phone))["refresh_token"]
    new = (await refresh(site, old)).json()
    assert await me_status(site, new["access_token"]) == 200

    site.clock.advance(11)
    reused = await refresh(site, old)

    assert error_of(reused) == (401, "invalid_grant")
    assert await me_status(site, new["access_token"]) == 401
    assert error_of(await refresh(site, new["refresh_token"])) == (401, "invalid_grant")
    assert [s["current"] for s in await sessions_of(phone)] == [True]  # the laptop is gone
    assert (await phone.me()).status_code == 200


async def test_fifty_parallel_refreshes_mint_exactly_one_new_token(site: Site) -> None:
    phone = await site.sign_in()
    old = (await qr_linked(site, phone))["refresh_token"]
    rows_before = await site.count(refresh_tokens)
    client = site.client()

    responses = await asyncio.wait_for(
        asyncio.gather(
            *(client.post("/api/v1/token/refresh", json={"refresh_token": old}) for _ in range(50))
        ),
        60,
    )

    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses[:3]]
    assert len({r.json()["access_token"] for r in responses}) == 1
    assert len({r.json()["refresh_token"] for r in responses}) == 1
    assert await site.count(refresh_tokens) == rows_before + 1
    assert await me_status(site, responses[0].json()["access_token"]) == 200


async def test_unknown_refresh_token_is_invalid_grant(site: Site) -> None:
    assert error_of(await refresh(site, "not-a-token")) == (401, "invalid_grant")


# -- timeouts and last_seen ----------------------------------------------------------------


async def test_idle_session_times_out(site: Site) -> None:
    idle = Policy().session_idle_timeout
    phone = await site.sign_in(kind="browser")
    site.clock.advance(idle - 60)
    assert (await phone.me()).status_code == 200  # used in time: the idle clock restarts

    site.clock.advance(idle + 1)

    assert (await phone.me()).status_code == 401


async def test_last_seen_is_written_at_most_once_a_minute(site: Site) -> None:
    phone = await site.sign_in(kind="browser")
    session_id = (await current_of(phone))["id"]
    store = site.services.store
    start = (await store.get_session(session_id)).last_seen_at  # type: ignore[union-attr]

    site.clock.advance(30)
    assert (await phone.me()).status_code == 200
    site.clock.advance(29)
    assert (await phone.me()).status_code == 200
    unchanged = (await store.get_session(session_id)).last_seen_at  # type: ignore[union-attr]
    site.clock.advance(2)
    assert (await phone.me()).status_code == 200
    moved = (await store.get_session(session_id)).last_seen_at  # type: ignore[union-attr]

    assert unchanged == start
    assert moved == start + 61


# -- activity and audit --------------------------------------------------------------------


async def test_activity_lists_events_newest_first(site: Site) -> None:
    phone = await site.sign_in(user_agent=SAFARI_ON_IPHONE)
    site.clock.advance(1)
    await qr_linked(site, phone)
    site.clock.advance(1)
    laptop = next(s for s in await sessions_of(phone) if not s["current"])
    revoked = await phone.client.delete(f"/api/v1/sessions/{laptop['id']}", headers=phone.headers())
    assert revoked.status_code == 204, revoked.text

    response = await phone.client.get("/api/v1/me/activity", headers=phone.headers())

    assert response.status_code == 200, response.text
    items = response.json()["activity"]
    times = [i["created_at"] for i in items]
    assert times == sorted(times, reverse=True)
    assert items[0]["event"] == "session.revoked" and items[0]["session_id"] == laptop["id"]
    assert items[-1]["event"] == "session.created"
    events = [i["event"] for i in items]
    assert {"request.scanned", "request.approved", "request.consumed"} <= set(events)
    assert all(i["ip"] and i["browser"] and i["os"] for i in items)
    # another account's activity stays out
    other = await site.sign_in()
    theirs = (await other.client.get("/api/v1/me/activity", headers=other.headers())).json()
    assert [i["event"] for i in theirs["activity"]] == ["session.created"]


async def test_every_audited_event_leaves_exactly_one_row(site: Site) -> None:
    phone = await site.sign_in(user_agent=SAFARI_ON_IPHONE)
    phone_session = (await current_of(phone))["id"]

    # created, scanned, approved, a wrong confirm code, consumed (and a session created)
    linked = await site.new_requester("api", "Laptop")
    assert (await phone.scan(linked.handle)).status_code == 200
    code = (await phone.approve(linked.handle)).json()["confirm_code"]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert (await linked.exchange(wrong)).status_code == 400
    exchanged = await linked.exchange(code)
    assert exchanged.status_code == 200, exchanged.text
    # denied
    denied = await site.new_requester("api")
    await phone.scan(denied.handle)
    assert (await phone.deny(denied.handle)).json()["status"] == "denied"
    # cancelled
    cancelled = await site.new_requester("api")
    assert (await cancelled.cancel()).status_code == 200
    # a wrong user code
    bad = await phone.client.post(
        "/api/v1/link", json={"user_code": "000 000"}, headers=phone.headers()
    )
    assert bad.status_code == 400, bad.text
    # expired
    expiring = await site.new_requester("api")
    site.clock.advance(301)
    assert await site.services.login_requests.expire_due() >= 1
    assert await site.services.login_requests.expire_due() == 0  # nothing twice
    # a session revoked
    laptop = next(s for s in await sessions_of(phone) if not s["current"])
    deleted = await phone.client.delete(f"/api/v1/sessions/{laptop['id']}", headers=phone.headers())
    assert deleted.status_code == 204
    again = await phone.client.delete(f"/api/v1/sessions/{laptop['id']}", headers=phone.headers())
    assert again.status_code in (204, 404)  # revoking twice records nothing more

    rows = await site.rows(audit_events)
    per_request = Counter((r["event"], r["request_id"]) for r in rows)
    for event, request in [
        ("request.created", linked.id),
        ("request.scanned", linked.id),
        ("request.approved", linked.id),
        ("request.consumed", linked.id),
        ("session.created", linked.id),
        ("request.created", denied.id),
        ("request.scanned", denied.id),
        ("request.denied", denied.id),
        ("request.created", cancelled.id),
        ("request.cancelled", cancelled.id),
        ("request.created", expiring.id),
        ("request.expired", expiring.id),
    ]:
        assert per_request[(event, request)] == 1, (event, request, per_request)
    assert per_request[("request.expired", linked.id)] == 0
    assert per_request[("request.expired", denied.id)] == 0
    assert per_request[("request.expired", cancelled.id)] == 0
    failures = Counter(r["detail"] for r in rows if r["event"] == "code.failed")
    assert failures == Counter({"confirm_code": 1, "user_code": 1}), failures
    confirm_failure = next(r for r in rows if r["detail"] == "confirm_code")
    assert confirm_failure["request_id"] == linked.id
    per_session = Counter((r["event"], r["session_id"]) for r in rows)
    assert per_session[("session.created", phone_session)] == 1
    assert per_session[("session.created", laptop["id"])] == 1
    assert per_session[("session.revoked", laptop["id"])] == 1
    assert per_session[("session.revoked", phone_session)] == 0
    totals = Counter(r["event"] for r in rows)
    assert totals == Counter(
        {
            "request.created": 4,
            "request.scanned": 2,
            "request.approved": 1,
            "request.denied": 1,
            "request.cancelled": 1,
            "request.expired": 1,
            "request.consumed": 1,
            "code.failed": 2,
            "session.created": 2,
            "session.revoked": 1,
        }
    ), totals
    for row in rows:
        assert row["ip"] and row["created_at"] is not None


async def _me_events_reply(site: Site, last_event_id: str) -> httpx.Response:
    """The whole ``/api/v1/me/events`` stream of a session sent ``Last-Event-ID``, ended by
    signing that session out once the stream is open."""
    approver = await site.sign_in()
    try:  # as the server reads header bytes (latin-1): b"\xb2" arrives as "²"
        raw = last_event_id.encode("latin-1")
    except UnicodeEncodeError:
        raw = last_event_id.encode()
    headers: dict[str, str | bytes] = {**approver.headers(), "last-event-id": raw}
    streaming = asyncio.ensure_future(approver.client.get("/api/v1/me/events", headers=headers))
    gauge = site.services.metrics.open_streams.labels("me")
    for _ in range(200):  # until the stream counts itself open (or has already failed)
        if gauge._value.get() >= 1 or streaming.done():
            break
        await asyncio.sleep(0.01)
    own = (await current_of(approver))["id"]
    await approver.client.delete(f"/api/v1/sessions/{own}", headers=approver.headers())
    return await asyncio.wait_for(streaming, 10)


async def test_me_events_last_event_id_is_parsed_strictly(make_site: Any) -> None:
    """Issue 11 item 3: a Unicode digit or a 309-digit Last-Event-ID was a 500; anything but
    a short run of ASCII digits is now ignored (the stream starts from now)."""
    site = await make_site(policy=Policy(heartbeat=0.2))
    now_ms = int(site.clock.now() * 1000)
    for raw in ["²", "9" * 309, "1" * 16, "１２３", "-5", "1e9", " 12", "0x10", "٣"]:
        response = await _me_events_reply(site, raw)
        assert response.status_code == 200, (raw, response.text)
        assert f"event: hello\nid: {now_ms}\n" in response.text, raw
    response = await _me_events_reply(site, "1700000000000")
    assert "event: hello\nid: 1700000000000\n" in response.text


async def test_a_device_linked_by_qr_is_mailed_about_with_its_own_and_the_approvers_names(
    site: Site,
) -> None:
    """The new sign-in notice is written from the session the exchange just committed: it
    names the new device (its browser and system), the device that approved it, how it was
    linked and the new device's address; the approver's first sign-in by email got none."""
    phone = await site.sign_in(user_agent=SAFARI_ON_IPHONE)
    before = [m for m in site.outbox if m.to == phone.email and "New sign-in" in m.subject]
    assert before == []
    requester = await site.new_requester("api", user_agent=CHROME_ON_WINDOWS, ip="198.51.100.7")
    await site.signed_in(requester, phone)
    for _ in range(100):  # the notice goes out after the reply, without delaying it
        notices = [m for m in site.outbox if m.to == phone.email and "New sign-in" in m.subject]
        if notices:
            break
        await asyncio.sleep(0.01)
    assert len(notices) == 1
    text = notices[0].text
    assert "Chrome on Windows" in text and "linked by QR" in text
    assert "from Safari on iOS" in text and "(IP 198.51.100.7)" in text
