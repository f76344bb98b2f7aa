"""Second factors in SQL: passkeys, TOTP, recovery codes, factor challenges and mfa tokens,
the per-account second-factor failure window, and sessions' step-up time.

Every use of a factor is one conditional write, so of racing callers exactly one wins: a
passkey's sign counter moves only from the value the verifier saw, a TOTP time step is
accepted only once per account (``last_step``), a recovery code and a challenge only once.
Removing a factor locks the user's row first (PostgreSQL) and checks in the same statement
that an account which requires a second factor keeps one.
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Delete,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)

from qrlogin.store.base import SqlBase, insert_rows, shielded
from qrlogin.store.engine import Conn
from qrlogin.store.records import (
    AuditEntry,
    FactorChallenge,
    Passkey,
    RecoveryCode,
    TotpFactor,
    User,
)
from qrlogin.store.tables import (
    factor_challenges,
    passkeys,
    recovery_codes,
    sessions,
    totp_factors,
    users,
)

_P = passkeys.c
_T = totp_factors.c
_RC = recovery_codes.c
_CH = factor_challenges.c
_U = users.c
_PASSKEY_BY_CREDENTIAL = select(passkeys).where(_P.credential_id == bindparam("cid"))
_TOTP_OF = select(totp_factors).where(_T.user_id == bindparam("uid"))
# (passkeys, enabled TOTP, unused recovery codes) of an account, built once
_FACTOR_SUMMARY = select(
    select(func.count()).where(_P.user_id == bindparam("uid")).scalar_subquery().label("keys"),
    select(func.count())
    .where(_T.user_id == bindparam("uid"), _T.enabled_at.is_not(None))
    .scalar_subquery()
    .label("totp"),
    select(func.count())
    .where(_RC.user_id == bindparam("uid"), _RC.used_at.is_(None))
    .scalar_subquery()
    .label("codes"),
)


def _other_factor(
    user_id: str, *, passkey_id: str | None = None, totp: bool = True
) -> ColumnElement[bool]:
    """The account has a second factor besides the one being removed."""
    others = select(_P.id).where(_P.user_id == user_id)
    if passkey_id is not None:
        others = others.where(_P.id != passkey_id)
    have: ColumnElement[bool] = exists(others)
    if totp:
        have = or_(
            have,
            exists(select(_T.user_id).where(_T.user_id == user_id, _T.enabled_at.is_not(None))),
        )
    return have


def _may_remove(
    user_id: str, *, passkey_id: str | None = None, totp: bool = True
) -> ColumnElement[bool]:
    not_required = exists(select(_U.id).where(_U.id == user_id, _U.mfa_required == 0))
    return or_(not_required, _other_factor(user_id, passkey_id=passkey_id, totp=totp))


class SqlFactors(SqlBase):
    """``store.ports.FactorStore`` in SQL."""

    async def _lock_user(self, conn: Conn, user_id: str) -> None:
        if not self.sqlite:  # SQLite has one writer at a time already
            await conn.execute(select(_U.id).where(_U.id == user_id).with_for_update())

    async def _forget_recovery_if_bare(self, conn: Conn, user_id: str) -> None:
        """Recovery codes go with the last second factor."""
        bare = ~_other_factor(user_id)
        await conn.execute(delete(recovery_codes).where(_RC.user_id == user_id, bare))
        await conn.execute(update(users).where(_U.id == user_id, bare).values(mfa_required=0))

    async def _remove_factor(self, user_id: str, removal: Delete, audit: AuditEntry) -> bool:
        """Run a factor's conditional ``DELETE`` with the user's row locked; when it removed
        one, recovery codes go if no factor is left, and the activity row is written."""
        async with self._write() as conn:
            await self._lock_user(conn, user_id)
            result = await conn.execute(removal)
            if not result.rowcount:
                return False
            await self._forget_recovery_if_bare(conn, user_id)
            await self._audit(conn, [audit])
        return True

    # -- what an account has -------------------------------------------------------------

    @shielded
    async def factor_summary(self, user_id: str) -> tuple[int, bool, int]:
        """(passkeys, TOTP on, unused recovery codes) of an account, in one read (every
        email sign-in and every approval asks)."""
        row = await self._first(_FACTOR_SUMMARY, {"uid": user_id})
        counts = list(row.values()) if row else [0, 0, 0]
        return int(counts[0]), bool(counts[1]), int(counts[2])

    @shielded
    async def set_mfa_required(self, user_id: str, required: bool, audit: AuditEntry) -> bool:
        """Require a second factor (only an account that has one) or stop requiring it."""
        where = _U.id == user_id
        if required:
            where = and_(where, _other_factor(user_id))
        async with self._write() as conn:
            row = await self._update(conn, users, where, {"mfa_required": int(required)})
            if row is None:
                return False
            await self._audit(conn, [audit])
        return True

    # -- passkeys --------------------------------------------------------------------------

    @shielded
    async def insert_passkey(self, passkey: Passkey, audit: AuditEntry) -> None:
        async with self._write() as conn:
            await insert_rows(conn, passkeys, passkey.to_row())
            await self._audit(conn, [audit])

    @shielded
    async def passkeys_of(self, user_id: str) -> list[Passkey]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(passkeys).where(_P.user_id == user_id).order_by(_P.created_at)
                    )
                )
                .mappings()
                .all()
            )
        return [Passkey.from_mapping(r) for r in rows]

    @shielded
    async def passkey_by_credential(self, credential_id: str) -> Passkey | None:
        row = await self._first(_PASSKEY_BY_CREDENTIAL, {"cid": credential_id})
        return Passkey.from_mapping(row) if row else None

    @shielded
    async def use_passkey(
        self, passkey_id: str, seen_count: int, new_count: int, backup_state: bool, now: float
    ) -> bool:
        """Record a verified assertion, if the counter is still what the verifier saw: of
        two assertions checked against the same counter, one wins."""
        async with self._write() as conn:
            row = await self._update(
                conn,
                passkeys,
                and_(_P.id == passkey_id, _P.sign_count == seen_count),
                {"sign_count": new_count, "last_used_at": now, "backup_state": int(backup_state)},
            )
        return row is not None

    @shielded
    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> Passkey | None:
        async with self._write() as conn:
            row = await self._update(
                conn, passkeys, and_(_P.id == passkey_id, _P.user_id == user_id), {"name": name}
            )
        return Passkey.from_mapping(row) if row else None

    @shielded
    async def delete_passkey(self, user_id: str, passkey_id: str, audit: AuditEntry) -> bool:
        """Remove a passkey, unless it is the last factor of an account requiring one."""
        return await self._remove_factor(
            user_id,
            delete(passkeys).where(
                _P.id == passkey_id,
                _P.user_id == user_id,
                _may_remove(user_id, passkey_id=passkey_id),
            ),
            audit,
        )

    # -- TOTP ------------------------------------------------------------------------------

    @shielded
    async def get_totp(self, user_id: str) -> TotpFactor | None:
        row = await self._first(_TOTP_OF, {"uid": user_id})
        return TotpFactor.from_mapping(row) if row else None

    @shielded
    async def begin_totp(self, factor: TotpFactor) -> bool:
        """Start (or restart) enrolling; ``False`` while TOTP is on."""
        async with self._write() as conn:
            await conn.execute(
                delete(totp_factors).where(_T.user_id == factor.user_id, _T.enabled_at.is_(None))
            )
            taken = (
                await conn.execute(select(_T.user_id).where(_T.user_id == factor.user_id))
            ).first()
            if taken is not None:
                return False
            await insert_rows(conn, totp_factors, factor.to_row())
        return True

    @shielded
    async def enable_totp(
        self,
        user_id: str,
        step: int,
        now: float,
        codes: list[RecoveryCode],
        audit: AuditEntry,
    ) -> bool:
        """Turn an enrolment on with its first code's time step, and replace the account's
        recovery codes, in one transaction; ``False`` if it is not being enrolled."""
        async with self._write() as conn:
            row = await self._update(
                conn,
                totp_factors,
                and_(_T.user_id == user_id, _T.enabled_at.is_(None)),
                {"enabled_at": now, "last_step": step},
            )
            if row is None:
                return False
            await conn.execute(delete(recovery_codes).where(_RC.user_id == user_id))
            if codes:
                await insert_rows(conn, recovery_codes, [c.to_row() for c in codes])
            await self._audit(conn, [audit])
        return True

    @shielded
    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Accept time step ``step`` once: only if it is newer than every step accepted."""
        async with self._write() as conn:
            row = await self._update(
                conn,
                totp_factors,
                and_(_T.user_id == user_id, _T.enabled_at.is_not(None), _T.last_step < step),
                {"last_step": step},
            )
        return row is not None

    @shielded
    async def delete_totp(self, user_id: str, audit: AuditEntry) -> bool:
        return await self._remove_factor(
            user_id,
            delete(totp_factors).where(
                _T.user_id == user_id,
                _T.enabled_at.is_not(None),
                _may_remove(user_id, totp=False),
            ),
            audit,
        )

    # -- recovery codes --------------------------------------------------------------------

    @shielded
    async def replace_recovery_codes(
        self, user_id: str, codes: list[RecoveryCode], audit: AuditEntry
    ) -> None:
        async with self._write() as conn:
            await conn.execute(delete(recovery_codes).where(_RC.user_id == user_id))
            await insert_rows(conn, recovery_codes, [c.to_row() for c in codes])
            await self._audit(conn, [audit])

    @shielded
    async def use_recovery_code(self, user_id: str, code_hmac: str, now: float) -> bool:
        async with self._write() as conn:
            row = await self._update(
                conn,
                recovery_codes,
                and_(_RC.code_hmac == code_hmac, _RC.user_id == user_id, _RC.used_at.is_(None)),
                {"used_at": now},
            )
        return row is not None

    # -- the failure window ------------------------------------------------------------------

    @shielded
    async def record_factor_failure(
        self,
        user_id: str,
        now: float,
        window: float,
        threshold: int,
        lock_for: float,
        audit: AuditEntry | None,
    ) -> User | None:
        """One more wrong second-factor code: counted in a window of ``window`` seconds
        from its first failure; the ``threshold``-th in a window locks the factor until
        ``now + lock_for``. One statement, so parallel failures count exactly."""
        fresh = or_(_U.factor_window_at.is_(None), _U.factor_window_at <= now - window)
        count = case((fresh, 1), else_=_U.factor_failures + 1)
        async with self._write() as conn:
            row = await self._update(
                conn,
                users,
                _U.id == user_id,
                {
                    "factor_failures": count,
                    "factor_window_at": case((fresh, now), else_=_U.factor_window_at),
                    "factor_locked_until": case(
                        (count >= threshold, now + lock_for), else_=_U.factor_locked_until
                    ),
                },
            )
            await self._audit(conn, [audit])
        return User.from_mapping(row) if row else None

    # -- challenges and mfa tokens ---------------------------------------------------------

    @shielded
    async def insert_challenge(self, challenge: FactorChallenge) -> None:
        async with self._write() as conn:
            await insert_rows(conn, factor_challenges, challenge.to_row())

    @shielded
    async def get_challenge(
        self, token_hash: str, kind: str, now: float, limit: int
    ) -> FactorChallenge | None:
        """A live, unused challenge (fewer than ``limit`` failures), without using it."""
        row = await self._one(
            factor_challenges,
            _CH.token_hash == token_hash,
            _CH.kind == kind,
            _CH.used_at.is_(None),
            _CH.expires_at > now,
            _CH.attempts < limit,
        )
        return FactorChallenge.from_mapping(row) if row else None

    @shielded
    async def take_challenge(
        self, token_hash: str, kind: str, now: float, limit: int
    ) -> FactorChallenge | None:
        """Use a challenge: once, while live; ``None`` for the losers of a race."""
        async with self._write() as conn:
            row = await self._update(
                conn,
                factor_challenges,
                and_(
                    _CH.token_hash == token_hash,
                    _CH.kind == kind,
                    _CH.used_at.is_(None),
                    _CH.expires_at > now,
                    _CH.attempts < limit,
                ),
                {"used_at": now},
            )
        return FactorChallenge.from_mapping(row) if row else None

    @shielded
    async def fail_challenge(self, token_hash: str) -> None:
        """One wrong code against an mfa token (it dies at the limit)."""
        async with self._write() as conn:
            await conn.execute(
                update(factor_challenges)
                .where(_CH.token_hash == token_hash)
                .values(attempts=_CH.attempts + 1)
            )

    # -- step-up ---------------------------------------------------------------------------

    @shielded
    async def mark_verified(self, session_id: str, now: float, audit: AuditEntry | None) -> None:
        """The session just proved a second factor."""
        async with self._write() as conn:
            await conn.execute(
                update(sessions).where(sessions.c.id == session_id).values(verified_at=now)
            )
            await self._audit(conn, [audit])

    @shielded
    async def spend_verification(self, session_id: str, since: float) -> bool:
        """Use the session's step-up, if it is newer than ``since``: one approval each."""
        async with self._write() as conn:
            row = await self._update(
                conn,
                sessions,
                and_(sessions.c.id == session_id, sessions.c.verified_at >= since),
                {"verified_at": None},
            )
        return row is not None
