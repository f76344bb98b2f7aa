"""The step-up before an approval (issue 14, QRLOGIN_APPROVE_STEP_UP): an approver whose
account has a second factor must have proved it lately, or the approval is refused with
``step_up_required`` (the API) or the approval page asks for it (the page). The factor is
given to the account through the store and the proof through ``mark_verified`` here; the
verify endpoints themselves are tested with their factors (test_api_totp.py,
test_api_passkeys.py) and end to end in Chromium: with the authenticator app in
tests/browser/test_totp.py, with a passkey in tests/browser/test_second_factors_person_path.py."""

from __future__ import annotations

from typing import Any

import pytest
from web_support import Approver, Site, csrf_of

from qrlogin.core.tokens import new_id
from qrlogin.store.records import AuditEntry, Passkey

APPROVER_KINDS = ("api", "browser")


@pytest.fixture(params=APPROVER_KINDS)
def approver_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


async def give_passkey(site: Site, approver: Approver) -> None:
    """The account gets a second factor (a passkey record, as registration writes it)."""
    now = site.clock.now()
    user_id = approver.user["id"]
    await site.services.store.insert_passkey(
        Passkey(
            id=new_id("pk"),
            user_id=user_id,
            credential_id=new_id("cred"),
            public_key="pQECAyYgASFYIA",
            sign_count=0,
            name="Phone",
            created_at=now,
        ),
        AuditEntry(event="factor.added", created_at=now, ip="", user_agent="", user_id=user_id),
    )


async def verify_now(site: Site, approver: Approver) -> None:
    """The approver's session proves a factor now (what the verify endpoints end with)."""
    me = await approver.me()
    assert me.status_code == 200, me.text
    await site.services.store.mark_verified(me.json()["session_id"], site.clock.now(), None)


async def scanned(site: Site, approver: Approver) -> Any:
    requester = await site.new_requester("api")
    response = await approver.scan(requester.handle)
    assert response.status_code == 200, response.text
    return requester


async def test_an_account_with_a_second_factor_must_step_up_before_it_approves(
    site: Site, approver_kind: str
) -> None:
    approver = await site.sign_in(kind=approver_kind)
    await give_passkey(site, approver)
    requester = await scanned(site, approver)

    refused = await approver.approve(requester.handle)

    assert refused.status_code == 403
    body = refused.json()
    assert body["error"] == "step_up_required"
    assert body["methods"] == ["passkey"]
    assert "passkey" in body["message"]
    assert (await requester.current())["status"] == "scanned"  # nothing was approved

    await verify_now(site, approver)
    approved = await approver.approve(requester.handle)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"


async def test_a_step_up_counts_for_five_minutes_under_recent(site: Site) -> None:
    approver = await site.sign_in()
    await give_passkey(site, approver)
    await verify_now(site, approver)
    first = await scanned(site, approver)
    assert (await approver.approve(first.handle)).status_code == 200

    site.clock.advance(299)
    second = await scanned(site, approver)
    assert (await approver.approve(second.handle)).status_code == 200  # still recent

    site.clock.advance(2)
    third = await scanned(site, approver)
    late = await approver.approve(third.handle)
    assert late.status_code == 403 and late.json()["error"] == "step_up_required"


async def test_always_wants_a_step_up_for_every_approval(make_site: Any) -> None:
    site: Site = await make_site(approve_step_up="always")
    approver = await site.sign_in()
    await give_passkey(site, approver)
    await verify_now(site, approver)
    first = await scanned(site, approver)
    assert (await approver.approve(first.handle)).status_code == 200
    again = await approver.approve(first.handle)  # a repeated click is not a new approval
    assert again.status_code == 200

    second = await scanned(site, approver)
    refused = await approver.approve(second.handle)
    assert refused.status_code == 403 and refused.json()["error"] == "step_up_required"


async def test_off_skips_the_step_up(make_site: Any) -> None:
    site: Site = await make_site(approve_step_up="off")
    approver = await site.sign_in()
    await give_passkey(site, approver)
    requester = await scanned(site, approver)

    assert (await approver.approve(requester.handle)).status_code == 200


async def test_an_account_without_a_second_factor_approves_as_before(site: Site) -> None:
    approver = await site.sign_in()
    requester = await scanned(site, approver)

    assert (await approver.approve(requester.handle)).status_code == 200


async def test_deny_never_needs_a_step_up(site: Site) -> None:
    approver = await site.sign_in()
    await give_passkey(site, approver)
    requester = await scanned(site, approver)

    denied = await approver.deny(requester.handle)

    assert denied.status_code == 200 and denied.json()["status"] == "denied"


async def test_a_step_up_of_one_session_does_not_let_another_approve(site: Site) -> None:
    phone = await site.sign_in()
    tablet = await site.sign_in(phone.email)  # the same account, another device
    await give_passkey(site, phone)
    await verify_now(site, tablet)
    requester = await scanned(site, phone)

    refused = await phone.approve(requester.handle)

    assert refused.status_code == 403 and refused.json()["error"] == "step_up_required"


async def test_the_approval_page_asks_for_the_step_up_and_approves_nothing(site: Site) -> None:
    approver = await site.sign_in(kind="browser")
    await give_passkey(site, approver)
    requester = await site.new_requester("api")
    page = await approver.client.get(f"/q/{requester.handle}")
    assert page.status_code == 200

    posted = await approver.client.post(
        f"/q/{requester.handle}/approve", data={"csrf": csrf_of(page.text)}
    )

    assert posted.status_code == 403
    assert 'id="step-up"' in posted.text and "Confirm it" in posted.text
    assert 'id="step-up-passkey"' in posted.text  # the factor it has
    assert 'id="step-up-code"' not in posted.text  # and not one it has not
    assert (await requester.current())["status"] == "scanned"

    await verify_now(site, approver)
    again = await approver.client.post(
        f"/q/{requester.handle}/approve", data={"csrf": csrf_of(page.text)}
    )
    assert again.status_code == 303
    assert (await requester.current())["status"] == "approved"
