"""Approver API: scan a handle, approve or deny it, or claim a request by its user code.

Approvers come in two kinds too: ``api`` (``Authorization: Bearer <access token>``) and
``browser`` (session cookie; writes must send ``Qrlogin-Client: browser``).
"""

from __future__ import annotations

import re

import httpx
import pytest
from web_support import CHROME_ON_WINDOWS, Approver, Site

APPROVER_KINDS = ("api", "browser")


@pytest.fixture(params=APPROVER_KINDS)
def approver_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def approver(site: Site, approver_kind: str) -> Approver:
    return await site.sign_in(kind=approver_kind)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"]
    return response.status_code, body["error"]


# -- scan ----------------------------------------------------------------------------------


async def test_scan_shows_who_asks_and_marks_the_request_scanned(
    site: Site, approver: Approver
) -> None:
    requester = await site.new_requester(
        "api", device_name="Office PC", ip="203.0.113.5", user_agent=CHROME_ON_WINDOWS
    )
    site.clock.advance(7)

    response = await approver.scan(requester.handle)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "scanned"
    assert body["handle"] == requester.handle
    assert body["confirm_code"] is None
    assert body["request"] == {
        "id": requester.id,
        "device_name": "Office PC",
        "browser": "Chrome",
        "os": "Windows",
        "ip": "203.0.113.5",
        "created_at": site.clock.now() - 7,
        "age_seconds": 7,
        "same_network": False,
    }
    state = await requester.current()
    assert (state["status"], state["version"]) == ("scanned", 2)


async def test_scan_from_the_same_address_says_same_network(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")

    response = await approver.scan(requester.handle)

    assert response.json()["request"]["same_network"] is True


async def test_scan_is_idempotent_for_the_same_approver(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    first = await approver.scan(requester.handle)

    second = await approver.scan(requester.handle)

    assert second.status_code == 200
    assert second.json() == first.json()
    assert (await requester.current())["version"] == 2


async def test_scan_never_approves_by_itself(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)

    refused = await requester.exchange()

    assert error_of(refused) == (409, "authorization_pending")
    assert (await requester.current())["status"] == "scanned"


async def test_a_handle_scanned_by_one_approver_is_unknown_to_another(
    site: Site, approver: Approver
) -> None:
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)
    other = await site.sign_in()

    taken = await other.scan(requester.handle)
    unknown = await other.scan("AAAAAAAAAAAAAAAAAAAAAA")

    assert error_of(taken) == (404, "invalid_handle")
    assert taken.json() == unknown.json()
    assert (await other.approve(requester.handle)).json() == unknown.json()
    assert (await other.deny(requester.handle)).json() == unknown.json()
    assert (await requester.current())["status"] == "scanned"


@pytest.mark.parametrize("when", ["expired", "cancelled", "consumed", "denied"])
async def test_scan_of_a_finished_request_is_refused_like_an_unknown_handle(
    site: Site, approver: Approver, when: str
) -> None:
    requester = await site.new_requester("api")
    if when == "expired":
        site.clock.advance(300)
    elif when == "cancelled":
        await requester.cancel()
    elif when == "consumed":
        await site.signed_in(requester, approver)
    else:
        await approver.scan(requester.handle)
        await approver.deny(requester.handle)
    unknown = await approver.scan("AAAAAAAAAAAAAAAAAAAAAA")

    response = await approver.scan(requester.handle)

    assert error_of(response) == (404, "invalid_handle")
    assert response.json() == unknown.json()


@pytest.mark.parametrize("action", ["scan", "approve", "deny"])
@pytest.mark.parametrize("auth", ["none", "wrong bearer", "wrong cookie", "signed out"])
async def test_approver_calls_need_a_live_session(site: Site, action: str, auth: str) -> None:
    requester = await site.new_requester("api")
    client = site.client()
    headers = {"qrlogin-client": "browser"}
    if auth == "wrong bearer":
        headers["authorization"] = "Bearer not-a-session"
    elif auth == "wrong cookie":
        client.cookies.set("qrl_session", "not-a-session")
    elif auth == "signed out":
        gone = await site.sign_in()
        await gone.client.post("/api/v1/logout", headers=gone.headers())
        headers["authorization"] = f"Bearer {gone.token}"
    path = f"/api/v1/scan/{requester.handle}"

    if action == "scan":
        response = await client.get(path, headers=headers)
    else:
        response = await client.post(f"{path}/{action}", headers=headers)

    assert error_of(response) == (401, "not_signed_in")
    assert (await requester.current())["status"] == "pending"


# -- approve and deny ----------------------------------------------------------------------


async def test_approve_replies_with_the_confirm_code(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)

    response = await approver.approve(requester.handle)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "approved"
    assert re.fullmatch(r"\d{6}", body["confirm_code"])
    state = await requester.current()
    assert (state["status"], state["confirm_code_required"]) == ("approved", True)
    assert body["confirm_code"] not in str(state)


async def test_approve_under_tap_has_no_confirm_code(make_site, approver_kind: str) -> None:
    site = await make_site(confirm="tap")
    approver = await site.sign_in(kind=approver_kind)
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)

    response = await approver.approve(requester.handle)

    assert response.json() == {"status": "approved", "confirm_code": None}
    assert (await requester.current())["confirm_code_required"] is False


@pytest.mark.parametrize(
    ("requester_ip", "needs_code"), [("127.0.0.1", False), ("198.51.100.9", True)]
)
async def test_approve_under_auto_asks_for_a_code_only_across_networks(
    make_site, requester_ip: str, needs_code: bool
) -> None:
    site = await make_site(confirm="auto")
    approver = await site.sign_in()
    requester = await site.new_requester("api", ip=requester_ip)
    await approver.scan(requester.handle)

    response = await approver.approve(requester.handle)

    assert (response.json()["confirm_code"] is not None) is needs_code
    assert (await requester.current())["confirm_code_required"] is needs_code


async def test_approving_twice_gives_the_same_answer(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)
    first = await approver.approve(requester.handle)

    second = await approver.approve(requester.handle)

    assert second.status_code == 200
    assert second.json() == first.json()
    assert (await requester.current())["version"] == 3


async def test_approve_without_a_scan_is_refused(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")

    response = await approver.approve(requester.handle)

    assert error_of(response) == (404, "invalid_handle")
    assert (await requester.current())["status"] == "pending"


async def test_approve_after_expiry_is_refused(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)
    site.clock.advance(300)

    response = await approver.approve(requester.handle)

    assert error_of(response) == (404, "invalid_handle")
    assert (await requester.current())["status"] == "expired"


async def test_deny_ends_the_request(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)

    response = await approver.deny(requester.handle)

    assert response.status_code == 200
    assert response.json() == {"status": "denied", "confirm_code": None}
    state = await requester.current()
    assert (state["status"], state["reason"]) == ("denied", "denied_by_approver")
    assert error_of(await approver.approve(requester.handle)) == (404, "invalid_handle")
    assert error_of(await requester.exchange()) == (403, "access_denied")


async def test_denying_twice_gives_the_same_answer(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)
    await approver.deny(requester.handle)

    again = await approver.deny(requester.handle)

    assert again.json() == {"status": "denied", "confirm_code": None}


@pytest.mark.parametrize("action", ["approve", "deny"])
async def test_cookie_approver_writes_need_the_browser_header(site: Site, action: str) -> None:
    approver = await site.sign_in(kind="browser")
    requester = await site.new_requester("api")
    await approver.scan(requester.handle)

    response = await approver.client.post(f"/api/v1/scan/{requester.handle}/{action}")

    assert error_of(response) == (403, "csrf_failed")
    assert (await requester.current())["status"] == "scanned"


# -- user code (camera-less requesters) ----------------------------------------------------


@pytest.mark.parametrize("typed", ["as shown", "without the space"])
async def test_user_code_claims_the_request_like_a_scan(
    site: Site, approver: Approver, typed: str
) -> None:
    requester = await site.new_requester("api", device_name="Living-room TV")
    code = requester.created["user_code"]
    if typed != "as shown":
        code = code.replace(" ", "")

    response = await approver.client.post(
        "/api/v1/link", json={"user_code": code}, headers=approver.headers()
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["request"]["device_name"]) == ("scanned", "Living-room TV")
    assert (await requester.current())["status"] == "scanned"
    assert (await approver.approve(body["handle"])).json()["status"] == "approved"


async def test_wrong_user_code_is_refused(site: Site, approver: Approver) -> None:
    requester = await site.new_requester("api")
    wrong = f"{(int(requester.created['user_code'].replace(' ', '')) + 1) % 10**6:06d}"

    responses = [
        await approver.client.post(
            "/api/v1/link", json={"user_code": code}, headers=approver.headers()
        )
        for code in (wrong, "nonsense")
    ]

    assert [error_of(r) for r in responses] == [(400, "invalid_code")] * 2
    assert responses[0].json() == responses[1].json()
    assert (await requester.current())["status"] == "pending"


async def test_user_code_needs_a_signed_in_approver(site: Site) -> None:
    requester = await site.new_requester("api")

    response = await site.client().post(
        "/api/v1/link", json={"user_code": requester.created["user_code"]}
    )

    assert error_of(response) == (401, "not_signed_in")
    assert (await requester.current())["status"] == "pending"


@pytest.mark.parametrize(
    "content", [b"{", b'{"user_code": 123456}', b'{"user_code": "1", "user_id": "x"}', b"{}"]
)
async def test_bad_user_code_input_is_refused_with_400(
    site: Site, approver: Approver, content: bytes
) -> None:
    response = await approver.client.post(
        "/api/v1/link",
        content=content,
        headers={**approver.headers(), "content-type": "application/json"},
    )

    assert error_of(response) == (400, "invalid_request")


async def test_a_handle_is_refused_once_its_rotation_and_grace_are_over_even_unpolled(
    site: Site, approver: Approver
) -> None:
    requester = await site.new_requester("api")
    site.clock.advance(30 + 10 + 5)  # nobody polled: the QR on screen was not replaced

    response = await approver.scan(requester.handle)

    assert error_of(response) == (404, "invalid_handle")


# -- an approval is only as good as the approver's session (issue 11, item 2) ----------------


# every backend (requirement 11): the withdrawal races the exchange's conditional update
@pytest.mark.backends
async def test_approval_is_withdrawn_by_deny_until_the_exchange(
    site: Site, approver: Approver
) -> None:
    requester = await site.new_requester("api")
    code = await site.approved(requester, approver)

    withdrawn = await approver.deny(requester.handle)

    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json() == {"status": "denied", "confirm_code": None}
    assert (await requester.current())["status"] == "denied"
    assert error_of(await requester.exchange(code)) == (403, "access_denied")


# every backend (requirement 11): revoking a session denies its claimed requests in one transaction
@pytest.mark.backends
async def test_signing_the_approver_out_refuses_its_approval(
    site: Site, approver: Approver
) -> None:
    requester = await site.new_requester("api")
    code = await site.approved(requester, approver)
    headers = {**approver.headers(), "qrlogin-client": "browser"}

    signed_out = await approver.client.post("/api/v1/logout", headers=headers)

    assert signed_out.status_code == 204, signed_out.text
    state = await requester.current()
    assert (state["status"], state["reason"]) == ("denied", "approver_signed_out")
    refused = await requester.exchange(code)
    assert error_of(refused) == (403, "access_denied")
    assert "signed out" in refused.json()["message"]


# every backend (requirement 11): as above, revoked from another device
@pytest.mark.backends
async def test_revoking_the_approver_from_another_device_refuses_its_approval(
    site: Site, approver: Approver
) -> None:
    other = await site.sign_in(approver.email)  # the same person, another signed-in device
    requester = await site.new_requester("api")
    code = await site.approved(requester, approver)
    approver_session = (await approver.me()).json()["session_id"]

    revoked = await other.client.delete(
        f"/api/v1/sessions/{approver_session}", headers=other.headers()
    )

    assert revoked.status_code == 204, revoked.text
    assert (await requester.current())["status"] == "denied"
    assert error_of(await requester.exchange(code)) == (403, "access_denied")


async def test_phone_pages_are_live_the_approver_stream_is_for_its_claimer_only(
    site: Site, approver: Approver
) -> None:
    requester = await site.new_requester("api")
    await site.signed_in(requester, approver)  # consumed: the stream says so, then ends
    other = await site.sign_in()

    mine = await approver.client.get(
        f"/api/v1/scan/{requester.handle}/events", headers=approver.headers()
    )
    theirs = await other.client.get(
        f"/api/v1/scan/{requester.handle}/events", headers=other.headers()
    )
    nobody = await site.client().get(f"/api/v1/scan/{requester.handle}/events")

    assert mine.status_code == 200
    assert mine.headers["content-type"].startswith("text/event-stream")
    assert "event: state\nid: " in mine.text
    assert '"status":"consumed","reason":null' in mine.text
    assert theirs.status_code == 404
    assert nobody.status_code == 401
