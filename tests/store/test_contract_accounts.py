"""The contract of ``UserStore``, ``AuditStore`` and ``AccountStore`` (store/ports.py) on
SQLite and PostgreSQL: users created once whatever races, failure streaks counted exactly,
and an email sign-in consumed once."""

from __future__ import annotations

from qrlogin.store.records import NewSessionRows
from qrlogin.store.sql import SqlStore

from .contract_support import (
    NOW,
    RACERS,
    email_login,
    entry,
    latest_email_login,
    race,
    refresh_token,
    session,
    uid,
    user,
)

LIMIT = 5  # wrong codes an email sign-in takes

# ---------------------------------------------------------------- users


async def test_ensure_user_creates_a_user_once_and_then_returns_it(store: SqlStore) -> None:
    alice = user()
    assert await store.ensure_user(alice) == alice
    again = user(email=alice.email, display_name="Someone else")
    assert await store.ensure_user(again) == alice
    assert await store.get_user(alice.id) == alice
    assert await store.user_by_email(alice.email) == alice
    assert await store.get_user(again.id) is None


async def test_unknown_users_read_as_none(store: SqlStore) -> None:
    assert await store.get_user(uid()) is None
    assert await store.user_by_email("nobody@example.com") is None


async def test_of_racing_ensure_users_for_one_email_one_user_is_created(store: SqlStore) -> None:
    email = f"{uid()}@example.com"
    candidates = [user(email=email) for _ in range(RACERS)]
    results = await race(RACERS, lambda i: store.ensure_user(candidates[i]))
    assert len({r.id for r in results}) == 1
    (created,) = {r.id for r in results}
    assert created in {c.id for c in candidates}
    stored = await store.user_by_email(email)
    assert stored is not None and stored.id == created
    assert [await store.get_user(c.id) for c in candidates].count(None) == RACERS - 1


async def test_concurrent_code_failures_are_counted_exactly_and_lock_once(
    store: SqlStore,
) -> None:
    alice = await store.ensure_user(user())
    threshold = RACERS // 2
    results = await race(
        RACERS,
        lambda i: store.record_code_failure(
            alice.id, NOW + i, threshold, entry("code.failed", alice.id)
        ),
    )
    assert all(r is not None for r in results)
    counted = [r for r in results if r is not None]
    assert sorted(r.failed_code_streak for r in counted) == list(range(1, RACERS + 1))
    assert all(r.locked_at is None for r in counted if r.failed_code_streak < threshold)
    (locking,) = [r for r in counted if r.failed_code_streak == threshold]
    assert locking.locked_at is not None
    # the lock keeps the time of the failure that reached the threshold
    assert {r.locked_at for r in counted if r.failed_code_streak >= threshold} == {
        locking.locked_at
    }
    stored = await store.get_user(alice.id)
    assert stored is not None
    assert (stored.failed_code_streak, stored.locked_at) == (RACERS, locking.locked_at)
    assert len(await store.activity(alice.id)) == RACERS


async def test_a_code_failure_of_an_unknown_user_returns_none(store: SqlStore) -> None:
    assert await store.record_code_failure(uid(), NOW, 3, None) is None


async def test_reset_code_failures_clears_the_streak_and_the_lock(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    for _ in range(3):
        await store.record_code_failure(alice.id, NOW, 2, None)
    await store.reset_code_failures(alice.id)
    assert await store.get_user(alice.id) == alice


# ---------------------------------------------------------------- activity


async def test_activity_lists_a_users_entries_newest_first_up_to_the_limit(
    store: SqlStore,
) -> None:
    alice, bob = uid(), uid()
    await store.audit(*(entry(f"event.{i}", alice, created_at=NOW + i) for i in range(5)))
    await store.audit(entry("event.bob", bob))
    listed = await store.activity(alice, limit=3)
    assert [e.event for e in listed] == ["event.4", "event.3", "event.2"]
    assert all(e.id is not None and e.user_id == alice for e in listed)
    assert [e.event for e in await store.activity(bob)] == ["event.bob"]
    assert await store.activity(uid()) == []


# ---------------------------------------------------------------- email sign-ins


def _rows(email_user: str) -> NewSessionRows:
    new = session(email_user)
    return NewSessionRows(new, refresh_token(new.id), entry("session.created", email_user))


async def test_the_latest_live_email_login_is_found_by_email_and_by_link(store: SqlStore) -> None:
    email = f"{uid()}@example.com"
    older = email_login(email, created_at=NOW - 10)
    latest = email_login(email, browser_hash=uid(), next="/account")
    for login in (older, latest):
        await store.insert_email_login(login)
    assert await latest_email_login(store, email, NOW, LIMIT, latest.browser_hash) == latest
    assert await store.email_login_by_link(older.link_hash, NOW, LIMIT) == older
    gone = await latest_email_login(store, email, latest.expires_at, LIMIT, latest.browser_hash)
    assert gone is None
    assert await store.email_login_by_link(latest.link_hash, latest.expires_at, LIMIT) is None


async def test_an_email_login_with_its_wrong_codes_used_up_is_no_longer_found(
    store: SqlStore,
) -> None:
    login = email_login(f"{uid()}@example.com")
    await store.insert_email_login(login)
    auditor = uid()
    for _ in range(LIMIT - 1):
        await store.fail_email_code(login.id, entry("code.failed", auditor))
    assert await latest_email_login(store, login.email, NOW, LIMIT) is not None
    await store.fail_email_code(login.id, entry("code.failed", auditor))
    assert await latest_email_login(store, login.email, NOW, LIMIT) is None
    assert await store.email_login_by_link(login.link_hash, NOW, LIMIT) is None
    assert len(await store.activity(auditor)) == LIMIT
    assert not await store.complete_email_login(login.id, NOW, LIMIT, _rows(uid()))


async def test_concurrent_wrong_email_codes_are_counted_exactly(store: SqlStore) -> None:
    login = email_login(f"{uid()}@example.com")
    await store.insert_email_login(login)
    await race(RACERS, lambda i: store.fail_email_code(login.id, None))
    assert await latest_email_login(store, login.email, NOW, RACERS) is None
    found = await latest_email_login(store, login.email, NOW, RACERS + 1)
    assert found is not None and found.attempts == RACERS


async def test_of_racing_completions_of_an_email_login_exactly_one_signs_in(
    store: SqlStore,
) -> None:
    alice = await store.ensure_user(user())
    login = email_login(alice.email)
    await store.insert_email_login(login)
    rows = [_rows(alice.id) for _ in range(RACERS)]
    results = await race(
        RACERS, lambda i: store.complete_email_login(login.id, NOW, LIMIT, rows[i])
    )
    assert results.count(True) == 1
    won = results.index(True)
    for i, written in enumerate(rows):
        assert await store.get_session(written.session.id) == (
            written.session if i == won else None
        )
    assert len(await store.activity(alice.id)) == 1
    assert await latest_email_login(store, alice.email, NOW, LIMIT) is None
    assert not await store.complete_email_login(login.id, NOW, LIMIT, _rows(alice.id))


async def test_an_expired_email_login_cannot_be_completed(store: SqlStore) -> None:
    login = email_login(f"{uid()}@example.com")
    await store.insert_email_login(login)
    rows = _rows(uid())
    assert not await store.complete_email_login(login.id, login.expires_at, LIMIT, rows)
    assert await store.get_session(rows.session.id) is None


async def test_a_link_confirmed_elsewhere_is_picked_up_once_by_the_asking_browser(
    store: SqlStore,
) -> None:
    browser = uid()
    login = email_login(f"{uid()}@example.com", browser_hash=browser)
    await store.insert_email_login(login)
    # not confirmed yet: nothing to pick up
    assert await store.email_login_confirmed_for_browser(browser, NOW) is None
    assert not await store.complete_email_login(login.id, NOW, LIMIT, _rows(uid()), picked_up=True)
    confirmations = await race(
        RACERS, lambda i: store.confirm_email_login_elsewhere(login.id, NOW, LIMIT)
    )
    assert confirmations.count(True) == 1
    confirmed = await store.email_login_confirmed_for_browser(browser, NOW)
    assert confirmed is not None and confirmed.confirmed_elsewhere_at == NOW
    # confirmed elsewhere, it is no longer a live code or link ...
    assert await latest_email_login(store, login.email, NOW, LIMIT) is None
    assert not await store.complete_email_login(login.id, NOW, LIMIT, _rows(uid()))
    # ... only the asking browser's pick-up, once
    rows = [_rows(uid()) for _ in range(RACERS)]
    picked = await race(
        RACERS,
        lambda i: store.complete_email_login(login.id, NOW, LIMIT, rows[i], picked_up=True),
    )
    assert picked.count(True) == 1
    assert await store.email_login_confirmed_for_browser(browser, NOW) is None
    assert await store.email_login_confirmed_for_browser(uid(), NOW) is None
