"""The contract of ``SessionStore`` (store/ports.py) on SQLite and PostgreSQL: a session and
its refresh token written together or not at all, revoked once, touched at most once per
interval, and refresh tokens rotated with retry and reuse detection (OAuth 2.0 Security BCP
§4.14)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from sqlalchemy.exc import IntegrityError

from qrlogin.store.records import AuditEntry, RefreshOutcome, RefreshResult, RefreshToken, Session
from qrlogin.store.sql import SqlStore

from .contract_support import (
    NOW,
    RACERS,
    entry,
    hash64,
    race,
    refresh_token,
    session,
    uid,
    user,
)

RETRY_WINDOW = 30.0


def access_hash_for(refresh: RefreshToken) -> str:
    """The access token hash issued with ``refresh`` (sessions/ derives both from one secret)."""
    return hashlib.sha256(refresh.token_hash.encode()).hexdigest()


def audit_revocation(auditor: str) -> Callable[[Session], AuditEntry]:
    return lambda s: entry("session.revoked", auditor, session_id=s.id)


async def test_a_session_and_its_refresh_token_are_written_together(store: SqlStore) -> None:
    user_id = uid()
    new = session(user_id, access_expires_at=NOW + 600)
    refresh = refresh_token(new.id)
    await store.insert_session(new, entry("session.created", user_id), refresh)
    assert await store.get_session(new.id) == new
    assert await store.session_by_token_hash(new.token_hash) == new
    assert [e.event for e in await store.activity(user_id)] == ["session.created"]
    rotated = await _rotate(store, refresh.token_hash, refresh_token(""), NOW)
    assert rotated.outcome is RefreshOutcome.ROTATED


async def test_a_session_whose_refresh_token_cannot_be_written_is_not_written_either(
    store: SqlStore,
) -> None:
    first = session(uid())
    taken = refresh_token(first.id)
    await store.insert_session(first, None, taken)
    second = session(first.user_id)
    with pytest.raises(IntegrityError):  # the same refresh token hash again
        await store.insert_session(second, entry("session.created", first.user_id), taken)
    assert await store.get_session(second.id) is None
    assert await store.session_by_token_hash(second.token_hash) is None
    assert await store.activity(first.user_id) == []


async def test_unknown_sessions_read_as_none(store: SqlStore) -> None:
    assert await store.get_session(uid()) is None
    assert await store.session_by_token_hash(hash64()) is None


async def test_of_racing_revocations_exactly_one_revokes_and_is_audited(store: SqlStore) -> None:
    auditor = uid()
    target = session(uid())
    await store.insert_session(target, None)
    results = await race(
        RACERS,
        lambda i: store.revoke_session(target.id, NOW + i, f"reason{i}", audit_revocation(auditor)),
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    (revoked,) = winners
    assert revoked.revoked_at is not None and revoked.revoked_reason is not None
    assert await store.get_session(target.id) == revoked
    assert len(await store.activity(auditor)) == 1
    assert await store.revoke_session(uid(), NOW, "gone", audit_revocation(auditor)) is None


async def test_touch_moves_last_seen_at_most_once_per_interval(store: SqlStore) -> None:
    seen = session(uid())
    await store.insert_session(seen, None)

    async def last_seen() -> float:
        stored = await store.get_session(seen.id)
        assert stored is not None
        return stored.last_seen_at

    await store.touch_session(seen.id, NOW + 60, every=60)
    assert await last_seen() == NOW  # not yet more than one interval
    await race(RACERS, lambda i: store.touch_session(seen.id, NOW + 61 + i / 100, every=60))
    touched = await last_seen()
    assert NOW + 61 <= touched < NOW + 62
    await store.touch_session(seen.id, touched + 30, every=60)
    assert await last_seen() == touched


async def test_active_sessions_are_the_users_unrevoked_unexpired_newest_first(
    store: SqlStore,
) -> None:
    user_id = uid()
    older, newer = session(user_id, created_at=NOW - 5), session(user_id, created_at=NOW)
    revoked, expired = session(user_id), session(user_id, expires_at=NOW)
    for s in (older, newer, revoked, expired, session(uid())):
        await store.insert_session(s, None)
    await store.revoke_session(revoked.id, NOW, "signed_out", lambda s: None)
    assert [s.id for s in await store.active_sessions(user_id, NOW)] == [newer.id, older.id]
    since = await store.sessions_created_since(user_id, NOW - 1)
    assert sorted(s.id for s in since) == sorted([newer.id, revoked.id, expired.id])
    assert [s.id for s in await store.sessions_created_since(user_id, NOW - 5)][:1] == [older.id]


# ---------------------------------------------------------------- refresh tokens


async def _rotate(
    store: SqlStore, old_hash: str, new: RefreshToken, now: float, auditor: str = ""
) -> RefreshResult:
    return await store.rotate_refresh_token(
        old_hash,
        new,
        access_hash_for(new),
        now + 600,
        now,
        RETRY_WINDOW,
        lambda s: entry("session.revoked", auditor or None, session_id=s.id),
    )


async def _session_with_refresh(store: SqlStore) -> tuple[Session, RefreshToken]:
    new = session(uid(), access_expires_at=NOW + 600)
    refresh = refresh_token(new.id)
    await store.insert_session(new, None, refresh)
    return new, refresh


async def test_the_first_use_of_a_refresh_token_rotates_the_chain(store: SqlStore) -> None:
    signed_in, refresh = await _session_with_refresh(store)
    child = refresh_token("", created_at=NOW + 5)
    result = await _rotate(store, refresh.token_hash, child, NOW + 5)
    assert result.outcome is RefreshOutcome.ROTATED
    rotated = result.session
    assert rotated is not None
    assert rotated.id == signed_in.id
    assert (rotated.token_hash, rotated.access_expires_at) == (
        access_hash_for(child),
        NOW + 605,
    )
    assert await store.session_by_token_hash(signed_in.token_hash) is None
    assert await store.get_session(signed_in.id) == rotated
    # the child belongs to the old token's session, whatever session_id it came with
    grandchild = refresh_token("")
    again = await _rotate(store, child.token_hash, grandchild, NOW + 6)
    assert again.outcome is RefreshOutcome.ROTATED
    assert again.session is not None and again.session.id == signed_in.id


async def test_of_racing_uses_of_one_refresh_token_one_rotates_and_the_rest_retry(
    store: SqlStore,
) -> None:
    signed_in, refresh = await _session_with_refresh(store)
    child = refresh_token("")  # the same derived next token for every caller, as sessions/ does
    results = await race(RACERS, lambda i: _rotate(store, refresh.token_hash, child, NOW + 1))
    outcomes = [r.outcome for r in results]
    assert outcomes.count(RefreshOutcome.ROTATED) == 1
    assert outcomes.count(RefreshOutcome.RETRY) == RACERS - 1
    stored = await store.get_session(signed_in.id)
    assert stored is not None and stored.revoked_at is None
    assert all(r.session is not None and r.session.id == signed_in.id for r in results)


async def test_a_used_refresh_token_after_the_retry_window_revokes_the_session(
    store: SqlStore,
) -> None:
    signed_in, refresh = await _session_with_refresh(store)
    auditor = uid()
    child = refresh_token("")
    await _rotate(store, refresh.token_hash, child, NOW)
    reused = await _rotate(store, refresh.token_hash, child, NOW + RETRY_WINDOW + 1, auditor)
    assert reused.outcome is RefreshOutcome.REUSED
    stored = await store.get_session(signed_in.id)
    assert stored is not None
    assert (stored.revoked_at, stored.revoked_reason) == (
        NOW + RETRY_WINDOW + 1,
        "refresh_token_reused",
    )
    assert reused.session == stored
    assert [e.event for e in await store.activity(auditor)] == ["session.revoked"]
    # the chain is dead: its newest token is refused too
    after = await _rotate(store, child.token_hash, refresh_token(""), NOW + RETRY_WINDOW + 2)
    assert after.outcome is RefreshOutcome.INVALID


async def test_a_used_refresh_token_whose_child_was_used_is_reuse_even_within_the_window(
    store: SqlStore,
) -> None:
    signed_in, refresh = await _session_with_refresh(store)
    child = refresh_token("")
    await _rotate(store, refresh.token_hash, child, NOW)
    await _rotate(store, child.token_hash, refresh_token(""), NOW + 1)
    reused = await _rotate(store, refresh.token_hash, child, NOW + 2)
    assert reused.outcome is RefreshOutcome.REUSED
    stored = await store.get_session(signed_in.id)
    assert stored is not None and stored.revoked_reason == "refresh_token_reused"


async def test_unknown_expired_or_orphaned_refresh_tokens_are_invalid(store: SqlStore) -> None:
    assert (
        await _rotate(store, hash64(), refresh_token(""), NOW)
    ).outcome is RefreshOutcome.INVALID
    _, expiring = await _session_with_refresh(store)
    late = await _rotate(store, expiring.token_hash, refresh_token(""), expiring.expires_at)
    assert late.outcome is RefreshOutcome.INVALID
    revoked, of_revoked = await _session_with_refresh(store)
    await store.revoke_session(revoked.id, NOW, "signed_out", lambda s: None)
    gone = await _rotate(store, of_revoked.token_hash, refresh_token(""), NOW + 1)
    assert gone.outcome is RefreshOutcome.INVALID and gone.session is None
    orphan = refresh_token(uid())  # its session was never written
    await store.insert_refresh_token(orphan)
    lost = await _rotate(store, orphan.token_hash, refresh_token(""), NOW)
    assert lost.outcome is RefreshOutcome.INVALID


async def test_a_session_and_its_user_come_in_one_read(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    phone = session(alice.id)
    await store.insert_session(phone, None)

    assert await store.session_with_user(phone.token_hash) == (phone, alice)
    assert await store.session_with_user(hash64()) is None
    orphan = session(uid())  # its user does not exist
    await store.insert_session(orphan, None)
    assert await store.session_with_user(orphan.token_hash) is None
