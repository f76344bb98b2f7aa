"""LoginRequests on real SQLite with a FrozenClock: rotation, scanning, approval, exchange."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from qrlogin.core.codes import derive_confirm_code, derive_user_code
from qrlogin.core.errors import (
    AccessDenied,
    AlreadyUsed,
    AuthorizationPending,
    ConfirmCodeRequired,
    ExpiredToken,
    InvalidCode,
    InvalidHandle,
    InvalidSecret,
    QrLoginError,
)
from qrlogin.core.machine import Status
from qrlogin.core.tokens import HANDLE_TAG_LEN, derive_handle, handle_tag, sha256_hex
from qrlogin.handshake import requester
from qrlogin.handshake.service import Created
from qrlogin.identity.device import Device

from .world import (
    APPROVER_IP,
    DESKTOP,
    REQUESTER_IP,
    SignedIn,
    World,
    builtin_only,
    issued,
    sign_in,
)

# -- helpers -------------------------------------------------------------------------------


def handle_of(url: str) -> str:
    return url.rsplit("/q/", 1)[1]


async def poll(world: World, created: Created) -> dict[str, object]:
    """What the requester sees on one status call (which also rotates a due handle)."""
    rec = await world.lr.for_requester(created.request.id, created.secret)
    return world.lr.requester_view(rec).model_dump()


async def scanned_by(world: World, who: SignedIn) -> tuple[Created, str]:
    created = await world.lr.create(DESKTOP)
    handle = world.lr.handle(created.request)
    await world.lr.scan(handle, who.approver)
    return created, handle


async def approved_by(world: World, who: SignedIn) -> tuple[Created, str, str | None]:
    """A request approved by ``who``: (created, handle, confirm code shown to the approver)."""
    created, handle = await scanned_by(world, who)
    view = await world.lr.approve(handle, who.approver)
    return created, handle, view.confirm_code


async def exchange(world: World, created: Created, code: str | None):  # type: ignore[no-untyped-def]
    rec = await world.lr.for_requester(created.request.id, created.secret)
    return await issued(world, await world.lr.exchange(rec, code, DESKTOP))


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# -- creation and requester secrets -----------------------------------------------------------


async def test_created_request_is_pending_and_stores_only_the_hash_of_its_secret(
    world: World,
) -> None:
    created = await world.lr.create(DESKTOP)
    row = await world.row(created.request.id)
    assert row.status == Status.PENDING.value
    assert row.secret_hash == sha256_hex(created.secret)
    assert created.secret not in json.dumps(row.__dict__)
    handle = world.lr.handle(row)
    # the row holds the hash of the handle's fixed tag only: not the handle, not the tag
    assert row.handle_hash == sha256_hex(handle_tag(world.services.key, row.id))
    assert handle not in json.dumps(row.__dict__)
    assert handle[:HANDLE_TAG_LEN] not in json.dumps(row.__dict__)
    assert row.expires_at - row.created_at == 300


async def test_requester_calls_without_the_right_secret_get_one_identical_refusal(
    world: World,
) -> None:
    created = await world.lr.create(DESKTOP)
    other = await world.lr.create(DESKTOP)
    attempts = [
        (created.request.id, None),
        (created.request.id, ""),
        (created.request.id, other.secret),
        (created.request.id, created.secret + "x"),
        ("lr_doesnotexist", created.secret),
    ]
    replies = []
    for request_id, secret in attempts:
        with pytest.raises(InvalidSecret) as exc:
            await world.lr.for_requester(request_id, secret)
        replies.append(exc.value.to_dict())
    assert all(reply == replies[0] for reply in replies)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    assert rec.id == created.request.id


# -- handle rotation ------------------------------------------------------------------------


async def test_handle_rotates_after_30_seconds_and_gives_a_new_qr_url(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    first = await poll(world, created)
    world.clock.advance(29.9)
    assert (await poll(world, created))["qr_url"] == first["qr_url"]
    world.clock.advance(0.1)
    second = await poll(world, created)
    assert second["qr_url"] != first["qr_url"]
    assert second["status"] == "pending"
    assert second["qr_expires_at"] == world.clock.now() + 30
    assert second["version"] == first["version"]
    row = await world.row(created.request.id)
    assert row == created.request  # rotating wrote nothing
    assert handle_of(str(second["qr_url"])) == derive_handle(world.services.key, row.id, 1)


async def test_rotation_writes_nothing_however_long_the_request_waits(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    urls = set()
    for _ in range(9):
        urls.add((await poll(world, created))["qr_url"])
        world.clock.advance(30)
    assert len(urls) == 9
    assert await world.row(created.request.id) == created.request


async def test_a_handle_with_the_right_tag_but_a_forged_or_future_part_is_refused(
    world: World, alice: SignedIn
) -> None:
    created = await world.lr.create(DESKTOP)
    key, rid = world.services.key, created.request.id
    current = derive_handle(key, rid, 0)
    forged = current[:HANDLE_TAG_LEN] + derive_handle(key, "lr_other", 0)[HANDLE_TAG_LEN:]
    for handle in (forged, derive_handle(key, rid, 1), derive_handle(key, rid, 7), current[:-1]):
        with pytest.raises(InvalidHandle):
            await world.lr.scan(handle, alice.approver)
    assert (await world.row(rid)).status == Status.PENDING.value
    assert (await world.lr.scan(current, alice.approver)).status is Status.SCANNED


async def test_previous_handle_still_scans_within_the_10_second_grace(
    world: World, alice: SignedIn
) -> None:
    created = await world.lr.create(DESKTOP)
    old = handle_of(str((await poll(world, created))["qr_url"]))
    world.clock.advance(30)
    new = handle_of(str((await poll(world, created))["qr_url"]))
    assert new != old
    world.clock.advance(9.9)
    view = await world.lr.scan(old, alice.approver)
    assert view.status is Status.SCANNED
    assert view.request.id == created.request.id
    assert (await world.row(created.request.id)).approver_session_id == alice.session.id


async def test_previous_handle_is_refused_after_the_grace(world: World, alice: SignedIn) -> None:
    created = await world.lr.create(DESKTOP)
    old = handle_of(str((await poll(world, created))["qr_url"]))
    world.clock.advance(30)
    new = handle_of(str((await poll(world, created))["qr_url"]))
    world.clock.advance(10)
    with pytest.raises(InvalidHandle):
        await world.lr.scan(old, alice.approver)
    assert (await world.row(created.request.id)).status == Status.PENDING.value
    view = await world.lr.scan(new, alice.approver)
    assert view.status is Status.SCANNED


async def test_handle_scanned_in_the_grace_stays_valid_for_its_approver_until_approval(
    world: World, alice: SignedIn
) -> None:
    created = await world.lr.create(DESKTOP)
    old = world.lr.handle(created.request)
    assert old == derive_handle(world.services.key, created.request.id, 0)
    world.clock.advance(30)
    await poll(world, created)
    world.clock.advance(5)
    await world.lr.scan(old, alice.approver)
    world.clock.advance(60)  # long past the grace: the approver is still reading the screen
    view = await world.lr.approve(old, alice.approver)
    assert view.status is Status.APPROVED


async def test_a_handle_nobody_rotated_still_dies_at_its_due_time_plus_the_grace(
    world: World, alice: SignedIn
) -> None:
    in_time = await world.lr.create(DESKTOP)
    too_late = await world.lr.create(DESKTOP)
    key = world.services.key
    world.clock.advance(39.9)  # the requester stopped polling: nobody fetched a new QR
    view = await world.lr.scan(derive_handle(key, in_time.request.id, 0), alice.approver)
    assert view.status is Status.SCANNED
    world.clock.advance(0.1)
    with pytest.raises(InvalidHandle):
        await world.lr.scan(derive_handle(key, too_late.request.id, 0), alice.approver)
    assert (await world.row(too_late.request.id)).status == Status.PENDING.value


async def test_a_scanned_request_stops_rotating(world: World, alice: SignedIn) -> None:
    created, _ = await scanned_by(world, alice)
    world.clock.advance(120)
    view = await poll(world, created)
    assert view["status"] == "scanned"
    assert view["qr_url"] is None
    assert (await world.row(created.request.id)).handle_seq == 0


async def test_unknown_expired_and_rotated_out_handles_get_the_same_reply(
    world: World, alice: SignedIn
) -> None:
    key = world.services.key
    with pytest.raises(InvalidHandle) as unknown:
        await world.lr.scan(derive_handle(key, "lr_never_created", 0), alice.approver)

    expiring = await world.lr.create(DESKTOP)
    world.clock.advance(300)
    with pytest.raises(InvalidHandle) as expired:
        await world.lr.scan(world.lr.handle(expiring.request), alice.approver)
    with pytest.raises(InvalidHandle):
        await world.lr.scan(derive_handle(key, expiring.request.id, 0), alice.approver)

    rotated = await world.lr.create(DESKTOP)
    world.clock.advance(30)
    await poll(world, rotated)
    world.clock.advance(10)
    with pytest.raises(InvalidHandle) as rotated_out:
        await world.lr.scan(derive_handle(key, rotated.request.id, 0), alice.approver)

    replies = {json.dumps(e.value.to_dict()) for e in (unknown, expired, rotated_out)}
    assert len(replies) == 1
    assert {type(e.value) for e in (unknown, expired, rotated_out)} == {InvalidHandle}
    assert (await world.row(expiring.request.id)).approver_user_id is None


# -- scanning and approval --------------------------------------------------------------------


async def test_second_approver_scanning_an_already_scanned_request_gets_invalid_handle(
    world: World, alice: SignedIn, bob: SignedIn
) -> None:
    created, handle = await scanned_by(world, alice)
    with pytest.raises(InvalidHandle) as exc:
        await world.lr.scan(handle, bob.approver)
    assert exc.value.to_dict() == InvalidHandle().to_dict()
    row = await world.row(created.request.id)
    assert row.approver_user_id == alice.user.id
    assert row.approver_session_id == alice.session.id


async def test_rescanning_by_the_same_session_returns_the_same_request(
    world: World, alice: SignedIn
) -> None:
    created, handle = await scanned_by(world, alice)
    version = (await world.row(created.request.id)).version
    view = await world.lr.scan(handle, alice.approver)
    assert view.status is Status.SCANNED
    assert view.request.id == created.request.id
    assert (await world.row(created.request.id)).version == version


async def test_scanning_does_not_approve(world: World, alice: SignedIn) -> None:
    created, _ = await scanned_by(world, alice)
    assert (await world.row(created.request.id)).status == Status.SCANNED.value
    with pytest.raises(AuthorizationPending):
        await exchange(world, created, None)
    assert await world.sessions_of_request(created.request.id) == []


async def test_approval_binds_to_the_scanning_session(
    world: World, alice: SignedIn, bob: SignedIn
) -> None:
    created, handle = await scanned_by(world, alice)
    alice_tablet = await sign_in(world, "Alice", ip="198.51.100.8")  # same user, other session
    assert alice_tablet.user.id == alice.user.id
    for other in (bob, alice_tablet):
        with pytest.raises(InvalidHandle):
            await world.lr.approve(handle, other.approver)
        with pytest.raises(InvalidHandle):
            await world.lr.deny(handle, other.approver)
    assert (await world.row(created.request.id)).status == Status.SCANNED.value

    view = await world.lr.approve(handle, alice.approver)
    assert view.status is Status.APPROVED
    row = await world.row(created.request.id)
    assert row.approver_session_id == alice.session.id
    assert row.approved_at == world.clock.now()


async def test_approver_cannot_approve_a_request_they_never_scanned(
    world: World, alice: SignedIn
) -> None:
    created = await world.lr.create(DESKTOP)
    with pytest.raises(InvalidHandle):
        await world.lr.approve(world.lr.handle(created.request), alice.approver)
    assert (await world.row(created.request.id)).status == Status.PENDING.value


async def test_repeated_approve_click_gives_the_same_answer(world: World, alice: SignedIn) -> None:
    created, handle, code = await approved_by(world, alice)
    again = await world.lr.approve(handle, alice.approver)
    assert again.status is Status.APPROVED
    assert again.confirm_code == code
    assert (await world.row(created.request.id)).version == again.request.version


async def test_confirm_code_is_shown_to_the_approver_only_after_approval(
    world: World, alice: SignedIn
) -> None:
    created = await world.lr.create(DESKTOP)
    handle = world.lr.handle(created.request)
    scan_view = await world.lr.scan(handle, alice.approver)
    assert scan_view.confirm_code is None
    approve_view = await world.lr.approve(handle, alice.approver)
    assert approve_view.confirm_code == derive_confirm_code(world.services.key, created.request.id)
    row = await world.row(created.request.id)
    assert row.confirm_code_hmac is not None
    assert approve_view.confirm_code not in row.confirm_code_hmac


async def test_requester_view_before_approval_holds_nothing_about_the_approver(
    world: World, alice: SignedIn
) -> None:
    created = await world.lr.create(DESKTOP)
    pending = await poll(world, created)
    await world.lr.scan(world.lr.handle(created.request), alice.approver)
    scanned = await poll(world, created)
    assert pending["status"] == "pending"
    assert scanned["status"] == "scanned"
    for view in (pending, scanned):
        text = json.dumps(view)
        for secret in (
            alice.user.id,
            alice.user.email,
            alice.user.display_name,
            alice.session.id,
            APPROVER_IP,
        ):
            assert secret not in text
        assert view["confirm_code_required"] is False


async def test_approval_screen_describes_the_requester(world: World, alice: SignedIn) -> None:
    created = await world.lr.create(DESKTOP)
    world.clock.advance(42)
    info = world.lr.describe_requester(created.request, alice.approver.ip).model_dump()
    assert info["device_name"] == "Work laptop"
    assert (info["browser"], info["os"]) == ("Chrome", "Linux")
    assert info["ip"] == REQUESTER_IP
    assert info["age_seconds"] == 42
    assert info["same_network"] is False
    assert world.lr.describe_requester(created.request, REQUESTER_IP).same_network is True


# -- deny, cancel, expiry -------------------------------------------------------------------------


async def test_denied_request_refuses_exchange_with_access_denied(
    world: World, alice: SignedIn
) -> None:
    created, handle = await scanned_by(world, alice)
    view = await world.lr.deny(handle, alice.approver)
    assert view.status is Status.DENIED
    with pytest.raises(AccessDenied):
        await exchange(world, created, None)
    assert (await poll(world, created))["reason"] == "denied_by_approver"


async def test_cancelled_request_cannot_be_approved_or_exchanged(
    world: World, alice: SignedIn
) -> None:
    created, handle = await scanned_by(world, alice)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    cancelled = await world.lr.cancel(rec, DESKTOP)
    assert cancelled.status == Status.CANCELLED.value
    with pytest.raises(InvalidHandle):
        await world.lr.approve(handle, alice.approver)
    with pytest.raises(AccessDenied):
        await exchange(world, created, None)


async def test_approved_request_can_still_be_cancelled_by_the_requester(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    assert (await world.lr.cancel(rec, DESKTOP)).status == Status.CANCELLED.value
    with pytest.raises(AccessDenied):
        await exchange(world, created, code)
    assert await world.sessions_of_request(created.request.id) == []


async def test_cancel_after_consumed_changes_nothing(world: World, alice: SignedIn) -> None:
    created, _, code = await approved_by(world, alice)
    await exchange(world, created, code)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    after = await world.lr.cancel(rec, DESKTOP)
    assert after.status == Status.CONSUMED.value
    assert (await world.row(created.request.id)).status == Status.CONSUMED.value


async def test_approved_request_expires_after_five_minutes(world: World, alice: SignedIn) -> None:
    created, _, code = await approved_by(world, alice)
    world.clock.advance(300)
    assert (await poll(world, created))["status"] == "expired"
    with pytest.raises(ExpiredToken):
        await exchange(world, created, code)
    assert await world.sessions_of_request(created.request.id) == []


# -- exchange --------------------------------------------------------------------------------


async def test_exchange_gives_the_requester_a_new_session_of_the_approver(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    got = await exchange(world, created, code)
    assert got.user.id == alice.user.id
    assert got.token != alice.token
    assert got.session.id != alice.session.id
    assert got.session.linked_from_session_id == alice.session.id
    assert got.session.login_request_id == created.request.id
    assert await world.people.user_of(got.token) == alice.user.id
    row = await world.row(created.request.id)
    assert row.status == Status.CONSUMED.value
    assert [s.id for s in await world.sessions_of_request(created.request.id)] == [got.session.id]


async def test_second_exchange_of_a_request_is_refused(world: World, alice: SignedIn) -> None:
    created, _, code = await approved_by(world, alice)
    await exchange(world, created, code)
    with pytest.raises(AlreadyUsed):
        await exchange(world, created, code)
    assert len(await world.sessions_of_request(created.request.id)) == 1


async def test_exchange_with_a_stale_approved_record_after_consumption_is_refused(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    stale = await world.lr.for_requester(created.request.id, created.secret)
    await world.lr.exchange(stale, code, DESKTOP)
    with pytest.raises(AlreadyUsed):
        await world.lr.exchange(stale, code, DESKTOP)
    assert len(await world.sessions_of_request(created.request.id)) == 1


async def test_exchange_before_approval_is_pending(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    with pytest.raises(AuthorizationPending):
        await exchange(world, created, "123456")
    assert (await world.row(created.request.id)).confirm_attempts == 0


async def test_exchange_without_the_confirm_code_is_refused_and_not_counted(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    for missing in (None, ""):
        with pytest.raises(ConfirmCodeRequired):
            await exchange(world, created, missing)
    assert (await world.row(created.request.id)).confirm_attempts == 0
    assert (await exchange(world, created, code)).user.id == alice.user.id


async def test_confirm_code_typed_with_a_space_is_accepted(world: World, alice: SignedIn) -> None:
    created, _, code = await approved_by(world, alice)
    assert code is not None
    issued = await exchange(world, created, f" {code[:3]} {code[3:]} ")
    assert issued.user.id == alice.user.id


async def test_four_wrong_confirm_codes_leave_the_request_usable(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    assert code is not None
    for _ in range(4):
        with pytest.raises(InvalidCode):
            await exchange(world, created, wrong(code))
    row = await world.row(created.request.id)
    assert (row.status, row.confirm_attempts) == (Status.APPROVED.value, 4)
    assert (await exchange(world, created, code)).user.id == alice.user.id


async def test_fifth_wrong_confirm_code_burns_the_request(world: World, alice: SignedIn) -> None:
    created, _, code = await approved_by(world, alice)
    assert code is not None
    for _ in range(4):
        with pytest.raises(InvalidCode):
            await exchange(world, created, wrong(code))
    with pytest.raises(AccessDenied) as burned:
        await exchange(world, created, wrong(code))
    assert "Too many wrong confirm codes" in burned.value.message
    row = await world.row(created.request.id)
    assert (row.status, row.reason, row.confirm_attempts) == ("denied", "too_many_attempts", 5)
    with pytest.raises(AccessDenied):
        await exchange(world, created, code)  # even the right code is too late now
    assert await world.sessions_of_request(created.request.id) == []
    assert (await poll(world, created))["reason"] == "too_many_attempts"


async def test_tap_confirmation_exchanges_without_a_code(
    make_world: Callable[..., Awaitable[World]],
) -> None:
    world = await make_world(confirm="tap")
    alice = await sign_in(world, "Alice")
    created, _, code = await approved_by(world, alice)
    assert code is None
    assert (await poll(world, created))["confirm_code_required"] is False
    assert (await exchange(world, created, None)).user.id == alice.user.id


@pytest.mark.parametrize(
    ("approver_ip", "needs_code"),
    [(REQUESTER_IP, False), ("::ffff:" + REQUESTER_IP, False), ("192.0.2.9", True)],
)
async def test_auto_confirmation_asks_for_a_code_only_across_networks(
    make_world: Callable[..., Awaitable[World]], approver_ip: str, needs_code: bool
) -> None:
    world = await make_world(confirm="auto")
    approver = await sign_in(world, "Alice", ip=approver_ip)
    created, _, code = await approved_by(world, approver)
    assert (code is not None) is needs_code
    assert (await poll(world, created))["confirm_code_required"] is needs_code
    if needs_code:
        with pytest.raises(ConfirmCodeRequired):
            await exchange(world, created, None)
    else:
        assert (await exchange(world, created, None)).user.id == approver.user.id


async def test_exchange_takes_the_device_name_from_the_request(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    started = await world.lr.exchange(rec, code, Device("forged name", "curl/8.5.0", "192.0.2.1"))
    session = (await issued(world, started)).session
    assert session.device_name == "Work laptop"
    assert session.ip == "192.0.2.1"


# -- races -----------------------------------------------------------------------------------


async def test_fifty_concurrent_exchanges_start_exactly_one_session(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    sessions_before = await world.session_count()
    results = await asyncio.gather(
        *(world.lr.exchange(rec, code, DESKTOP) for _ in range(50)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    refusals = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyUsed) for r in refusals), refusals
    stored = await world.sessions_of_request(created.request.id)
    assert [s.id for s in stored] == [winners[0].session_id]
    assert stored[0].user_id == alice.user.id
    assert await world.session_count() == sessions_before + 1


async def test_fifty_concurrent_wrong_confirm_codes_count_exactly_five_and_burn(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    assert code is not None
    rec = await world.lr.for_requester(created.request.id, created.secret)
    results = await asyncio.gather(
        *(world.lr.exchange(rec, wrong(code), DESKTOP) for _ in range(50)),
        return_exceptions=True,
    )
    assert all(isinstance(r, QrLoginError) for r in results), results
    # four counted wrong codes say "wrong"; the fifth burns; every later one is told it is burned
    assert sum(isinstance(r, InvalidCode) for r in results) == 4
    assert sum(isinstance(r, AccessDenied) for r in results) == 46
    row = await world.row(created.request.id)
    assert (row.status, row.reason, row.confirm_attempts) == ("denied", "too_many_attempts", 5)
    assert await world.sessions_of_request(created.request.id) == []
    with pytest.raises(AccessDenied):
        await exchange(world, created, code)


async def test_concurrent_scans_by_different_approvers_have_one_winner(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    handle = world.lr.handle(created.request)
    people = [await sign_in(world, f"Person{i}", ip=f"192.0.2.{i + 1}") for i in range(10)]
    results = await asyncio.gather(
        *(world.lr.scan(handle, p.approver) for p in people), return_exceptions=True
    )
    winners = [
        (p, r) for p, r in zip(people, results, strict=True) if not isinstance(r, BaseException)
    ]
    assert len(winners) == 1
    assert all(isinstance(r, InvalidHandle) for r in results if isinstance(r, BaseException))
    row = await world.row(created.request.id)
    assert row.approver_session_id == winners[0][0].session.id
    assert row.version == 2


async def test_approve_racing_deny_always_ends_denied(world: World, alice: SignedIn) -> None:
    """A deny also withdraws an approval, so whichever write lands first the request ends
    denied: approve then withdraw (both succeed), or deny then a refused approve."""
    created, handle = await scanned_by(world, alice)
    approve, deny = await asyncio.gather(
        world.lr.approve(handle, alice.approver),
        world.lr.deny(handle, alice.approver),
        return_exceptions=True,
    )
    assert not isinstance(deny, BaseException) and deny.status is Status.DENIED
    row = await world.row(created.request.id)
    assert row.status == Status.DENIED.value
    if isinstance(approve, BaseException):
        assert isinstance(approve, InvalidHandle)
        assert row.version == 3
    else:
        assert approve.status is Status.APPROVED
        assert row.version == 4


# -- an approval is only as good as the approver's session (requirement 11) ------------------


async def test_approver_may_withdraw_an_approval_until_the_exchange(
    world: World, alice: SignedIn
) -> None:
    created, handle, code = await approved_by(world, alice)
    withdrawn = await world.lr.deny(handle, alice.approver)
    assert withdrawn.status is Status.DENIED
    assert withdrawn.confirm_code is None
    row = await world.row(created.request.id)
    assert (row.status, row.reason) == ("denied", "denied_by_approver")
    with pytest.raises(AccessDenied):
        await exchange(world, created, code)
    assert await world.sessions_of_request(created.request.id) == []


async def test_withdrawing_after_the_exchange_is_refused(world: World, alice: SignedIn) -> None:
    created, handle, code = await approved_by(world, alice)
    await exchange(world, created, code)
    with pytest.raises(InvalidHandle):
        await world.lr.deny(handle, alice.approver)
    assert (await world.row(created.request.id)).status == Status.CONSUMED.value


async def test_revoking_the_approving_session_denies_its_approval_and_tells_the_requester(
    world: World, alice: SignedIn
) -> None:
    created, _, code = await approved_by(world, alice)
    before = await world.row(created.request.id)
    sub = world.services.bus.subscribe(f"lr:{created.request.id}")
    try:
        await world.end_session(alice)
        await asyncio.wait_for(sub.wait(1.0), 2.0)
    finally:
        sub.close()
    row = await world.row(created.request.id)
    assert (row.status, row.reason) == ("denied", "approver_signed_out")
    assert row.version == before.version + 1
    with pytest.raises(AccessDenied) as refused:
        await exchange(world, created, code)
    assert "signed out" in refused.value.message
    assert await world.sessions_of_request(created.request.id) == []


async def test_revoking_the_approving_session_ends_a_scanned_request_too(
    world: World, alice: SignedIn
) -> None:
    created, _ = await scanned_by(world, alice)
    await world.end_session(alice)
    assert (await world.row(created.request.id)).status == Status.DENIED.value


@builtin_only
async def test_revoking_every_built_in_session_of_the_approver_ends_its_requests(
    world: World, alice: SignedIn
) -> None:
    """Built-in only: "sign out everywhere" of qrlogin's own sessions (revoke_all)."""
    created, _ = await scanned_by(world, alice)
    await world.services.sessions.revoke_all(alice.user.id, "signed_out", None)
    assert (await world.row(created.request.id)).status == Status.DENIED.value


async def test_revoking_another_session_leaves_the_approval_alone(
    world: World, alice: SignedIn
) -> None:
    other = await sign_in(world, "Alice")  # the same person on a second phone
    created, _, code = await approved_by(world, alice)
    await world.end_session(other)
    assert (await exchange(world, created, code)).user.id == alice.user.id


async def test_exchange_is_refused_when_the_approving_session_ended_unannounced(
    world: World, alice: SignedIn
) -> None:
    """The session ended without qrlogin being told (the built-in session written straight to
    the store; the host's ended without ``qr.session_ended``, as a host that forgot it would):
    the exchange itself asks the identity port whether the approver's session is still live,
    and denies the request when it is not."""
    created, _, code = await approved_by(world, alice)
    await world.end_session(alice, announce=False)
    assert (await world.row(created.request.id)).status == Status.APPROVED.value
    with pytest.raises(AccessDenied):
        await exchange(world, created, code)
    row = await world.row(created.request.id)
    assert (row.status, row.reason) == ("denied", "approver_signed_out")
    assert await world.sessions_of_request(created.request.id) == []


async def test_a_taken_user_code_moves_creation_on_to_the_next_derived_code(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No read before the insert: when the first code derived for a new request is already
    held by a pending one, the unique index refuses the insert and creation takes the next
    derived code. The request is created once, with that code, and /link's lookup finds
    each request by its own code."""
    lr, store = world.lr, world.services.store
    new = "lr_NewRequestNewRequest0"
    first = derive_user_code(lr.key, new, 0, lr.user_code_format)
    # another pending request already holds the code ``new``'s seq 0 derives
    other = (await lr.create(DESKTOP)).request
    holder = replace(
        other,
        id="lr_HolderHolderHolderHo",
        handle_hash=sha256_hex("another handle"),
        user_code_hmac=lr._user_code_hmac(first),
    )
    await store.insert_login_request(holder, None)
    monkeypatch.setattr(requester, "new_id", lambda prefix: new)
    created = (await lr.create(DESKTOP)).request
    assert created.id == new and created.user_code_seq == 1
    second = derive_user_code(lr.key, new, 1, lr.user_code_format)
    assert lr.user_code(created) == second != first
    now = world.clock.now()
    assert await store.login_request_by_user_code(lr._user_code_hmac(first), now) == holder
    assert await store.login_request_by_user_code(lr._user_code_hmac(second), now) == created
