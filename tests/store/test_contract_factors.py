"""The contract of ``FactorStore`` (store/ports.py) on SQLite and PostgreSQL: every use of a
second factor has one winner whatever races (a TOTP time step, a recovery code, a challenge,
a passkey's counter), failures in the window are counted exactly and lock at the limit, the
last factor of an account that requires one cannot be removed, and an email sign-in can be
consumed together with the mfa token that waits for its second factor."""

from __future__ import annotations

from sqlalchemy import select

from qrlogin.store.records import FactorChallenge, Passkey, RecoveryCode, TotpFactor
from qrlogin.store.sql import SqlStore
from qrlogin.store.tables import factor_challenges

from .contract_support import NOW, RACERS, email_login, entry, hash64, race, session, uid, user

LIMIT = 5


def passkey(user_id: str, **fields: object) -> Passkey:
    values: dict[str, object] = {
        "id": uid(),
        "user_id": user_id,
        "credential_id": uid(),
        "public_key": "pQECAyYgASFYIA",
        "sign_count": 0,
        "name": "Phone",
        "created_at": NOW,
    }
    values.update(fields)
    return Passkey(**values)  # type: ignore[arg-type]


def challenge(**fields: object) -> FactorChallenge:
    values: dict[str, object] = {
        "token_hash": hash64(),
        "kind": "mfa",
        "created_at": NOW,
        "expires_at": NOW + 300,
        "user_id": uid(),
        "browser_hash": hash64(),
    }
    values.update(fields)
    return FactorChallenge(**values)  # type: ignore[arg-type]


async def with_totp(store: SqlStore, user_id: str, step: int = 100) -> None:
    assert await store.begin_totp(TotpFactor(user_id, "sealed", NOW))
    assert await store.enable_totp(user_id, step, NOW, [], entry("factor.added", user_id))


# ---------------------------------------------------------------- TOTP


async def test_a_time_step_is_accepted_once_per_account_whatever_races(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    await with_totp(store, alice.id, step=100)

    results = await race(RACERS, lambda _: store.use_totp_step(alice.id, 101))

    assert results.count(True) == 1
    assert await store.use_totp_step(alice.id, 101) is False  # the same code again
    assert await store.use_totp_step(alice.id, 100) is False  # an older one
    assert await store.use_totp_step(alice.id, 102) is True
    factor = await store.get_totp(alice.id)
    assert factor is not None and factor.last_step == 102


async def test_enrolment_restarts_until_it_is_on_and_then_is_refused(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    assert await store.begin_totp(TotpFactor(alice.id, "first", NOW))
    assert await store.begin_totp(TotpFactor(alice.id, "second", NOW))
    assert await store.use_totp_step(alice.id, 5) is False  # not on yet
    code = RecoveryCode(hash64(), alice.id, NOW)
    assert await store.enable_totp(alice.id, 7, NOW, [code], entry("factor.added", alice.id))
    assert await store.enable_totp(alice.id, 8, NOW, [], entry("factor.added", alice.id)) is False
    assert await store.begin_totp(TotpFactor(alice.id, "third", NOW)) is False
    factor = await store.get_totp(alice.id)
    assert factor is not None and factor.secret_sealed == "second" and factor.enabled_at == NOW
    assert await store.factor_summary(alice.id) == (0, True, 1)


# ---------------------------------------------------------------- recovery codes


async def test_a_recovery_code_works_once_and_only_for_its_account(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    bob = await store.ensure_user(user())
    code = RecoveryCode(hash64(), alice.id, NOW)
    await store.replace_recovery_codes(alice.id, [code], entry("factor.added", alice.id))

    assert await store.use_recovery_code(bob.id, code.code_hmac, NOW) is False
    results = await race(RACERS, lambda _: store.use_recovery_code(alice.id, code.code_hmac, NOW))
    assert results.count(True) == 1
    assert await store.factor_summary(alice.id) == (0, False, 0)


# ---------------------------------------------------------------- the failure window


async def test_failures_are_counted_exactly_and_lock_at_the_limit(store: SqlStore) -> None:
    alice = await store.ensure_user(user())

    await race(
        RACERS,
        lambda _: store.record_factor_failure(alice.id, NOW, 900, LIMIT, 900, None),
    )

    after = await store.get_user(alice.id)
    assert after is not None
    assert after.factor_failures == RACERS
    assert after.factor_locked_until == NOW + 900


async def test_the_window_starts_again_after_fifteen_minutes(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    for i in range(LIMIT - 1):
        await store.record_factor_failure(alice.id, NOW + i, 900, LIMIT, 900, None)

    later = await store.record_factor_failure(alice.id, NOW + 901, 900, LIMIT, 900, None)

    assert later is not None
    assert (later.factor_failures, later.factor_window_at) == (1, NOW + 901)
    assert later.factor_locked_until is None


# ---------------------------------------------------------------- passkeys


async def test_a_passkey_counter_moves_only_from_what_the_verifier_saw(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    key = passkey(alice.id, sign_count=3)
    await store.insert_passkey(key, entry("factor.added", alice.id))

    results = await race(RACERS, lambda i: store.use_passkey(key.id, 3, 4 + i, True, NOW + 1))

    assert results.count(True) == 1
    stored = await store.passkey_by_credential(key.credential_id)
    assert stored is not None and stored.sign_count == 4 + results.index(True)
    assert stored.last_used_at == NOW + 1 and stored.backup_state == 1


async def test_the_last_factor_of_an_account_that_requires_one_stays(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    first, second = passkey(alice.id), passkey(alice.id)
    for key in (first, second):
        await store.insert_passkey(key, entry("factor.added", alice.id))
    assert await store.set_mfa_required(alice.id, True, entry("factor.required", alice.id))

    assert await store.delete_passkey(alice.id, first.id, entry("factor.removed", alice.id))
    assert not await store.delete_passkey(alice.id, second.id, entry("factor.removed", alice.id))
    assert [k.id for k in await store.passkeys_of(alice.id)] == [second.id]

    await with_totp(store, alice.id)  # another factor: now the passkey may go
    assert await store.delete_passkey(alice.id, second.id, entry("factor.removed", alice.id))
    assert not await store.delete_totp(alice.id, entry("factor.removed", alice.id))
    assert await store.set_mfa_required(alice.id, False, entry("factor.optional", alice.id))
    assert await store.delete_totp(alice.id, entry("factor.removed", alice.id))
    assert await store.factor_summary(alice.id) == (0, False, 0)


async def test_requiring_a_factor_needs_one_and_recovery_codes_go_with_the_last(
    store: SqlStore,
) -> None:
    alice = await store.ensure_user(user())
    assert not await store.set_mfa_required(alice.id, True, entry("factor.required", alice.id))
    key = passkey(alice.id)
    await store.insert_passkey(key, entry("factor.added", alice.id))
    codes = [RecoveryCode(hash64(), alice.id, NOW) for _ in range(3)]
    await store.replace_recovery_codes(alice.id, codes, entry("factor.added", alice.id))
    assert await store.factor_summary(alice.id) == (1, False, 3)

    assert await store.delete_passkey(alice.id, key.id, entry("factor.removed", alice.id))

    assert await store.factor_summary(alice.id) == (0, False, 0)
    after = await store.get_user(alice.id)
    assert after is not None and after.mfa_required == 0


async def test_only_its_owner_can_rename_or_remove_a_passkey(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    mallory = await store.ensure_user(user())
    key = passkey(alice.id)
    await store.insert_passkey(key, entry("factor.added", alice.id))

    assert await store.rename_passkey(mallory.id, key.id, "mine") is None
    assert not await store.delete_passkey(mallory.id, key.id, entry("factor.removed", mallory.id))
    renamed = await store.rename_passkey(alice.id, key.id, "Laptop")
    assert renamed is not None and renamed.name == "Laptop"


# ---------------------------------------------------------------- challenges and mfa tokens


async def test_a_challenge_is_taken_once_while_it_lives(store: SqlStore) -> None:
    live = challenge()
    await store.insert_challenge(live)

    assert await store.get_challenge(live.token_hash, "passkey_signin", NOW, LIMIT) is None
    results = await race(RACERS, lambda _: store.take_challenge(live.token_hash, "mfa", NOW, LIMIT))
    assert sum(r is not None for r in results) == 1
    assert await store.get_challenge(live.token_hash, "mfa", NOW, LIMIT) is None

    old = challenge()
    await store.insert_challenge(old)
    assert await store.take_challenge(old.token_hash, "mfa", NOW + 300, LIMIT) is None


async def test_a_challenge_dies_after_its_wrong_codes(store: SqlStore) -> None:
    token = challenge()
    await store.insert_challenge(token)
    for _ in range(LIMIT - 1):
        await store.fail_challenge(token.token_hash)
    assert await store.get_challenge(token.token_hash, "mfa", NOW, LIMIT) is not None

    await store.fail_challenge(token.token_hash)

    assert await store.get_challenge(token.token_hash, "mfa", NOW, LIMIT) is None
    assert await store.take_challenge(token.token_hash, "mfa", NOW, LIMIT) is None


async def test_an_email_sign_in_is_consumed_with_its_mfa_token_once(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    login = email_login(alice.email)
    await store.insert_email_login(login)
    tokens = [challenge(user_id=alice.id) for _ in range(RACERS)]

    results = await race(
        RACERS,
        lambda i: store.complete_email_login(login.id, NOW, LIMIT, None, challenge=tokens[i]),
    )

    assert results.count(True) == 1
    rows = [r for r in await _all(store) if r["user_id"] == alice.id]
    assert [r["token_hash"] for r in rows] == [tokens[results.index(True)].token_hash]


async def _all(store: SqlStore) -> list[dict[str, object]]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(factor_challenges))).mappings().all()
    return [dict(r) for r in rows]


# ---------------------------------------------------------------- step-up


async def test_a_verification_is_spent_by_one_approval(store: SqlStore) -> None:
    alice = await store.ensure_user(user())
    phone = session(alice.id)
    await store.insert_session(phone, None)
    await store.mark_verified(phone.id, NOW, entry("factor.verified", alice.id))

    assert not await store.spend_verification(phone.id, NOW + 1)  # older than asked
    results = await race(RACERS, lambda _: store.spend_verification(phone.id, NOW - 300))
    assert results.count(True) == 1
    after = await store.get_session(phone.id)
    assert after is not None and after.verified_at is None
