"""Users and email sign-ins in SQL."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, bindparam, case, or_, select, update
from sqlalchemy.exc import IntegrityError

from qrlogin.store.base import SqlBase, insert_rows, shielded
from qrlogin.store.engine import Conn
from qrlogin.store.records import (
    AuditEntry,
    EmailLogin,
    FactorChallenge,
    KnownBrowser,
    NewSessionRows,
    User,
)
from qrlogin.store.tables import email_logins, factor_challenges, known_browsers, users

_USER_BY_ID = select(users).where(users.c.id == bindparam("id"))

# each kind of typed code has its own streak and lock (streak column, lock column)
_STREAKS = {
    "user_code": (users.c.failed_code_streak, users.c.locked_at),
    "email_code": (users.c.email_code_streak, users.c.email_locked_at),
}


class SqlAccounts(SqlBase):
    """``store.ports.AccountStore`` in SQL."""

    @shielded
    async def get_user(self, user_id: str) -> User | None:
        row = await self._first(_USER_BY_ID, {"id": user_id})
        return User.from_mapping(row) if row else None

    @shielded
    async def user_by_email(self, email: str) -> User | None:
        row = await self._one(users, users.c.email == email)
        return User.from_mapping(row) if row else None

    @staticmethod
    async def _ensure_user(conn: Conn, new_user: User) -> User:
        row = (
            (await conn.execute(select(users).where(users.c.email == new_user.email)))
            .mappings()
            .first()
        )
        if row is not None:
            return User.from_mapping(row)
        await insert_rows(conn, users, new_user.to_row())
        return new_user

    @shielded
    async def ensure_user(self, new_user: User) -> User:
        """The user with ``new_user.email``, created from ``new_user`` if there is none."""
        try:
            async with self._write() as conn:
                return await self._ensure_user(conn, new_user)
        except IntegrityError:  # created concurrently: take the winner's row
            existing = await self.user_by_email(new_user.email)
            assert existing is not None
            return existing

    @shielded
    async def record_code_failure(
        self,
        user_id: str,
        now: float,
        threshold: int,
        audit: AuditEntry | None,
        *,
        kind: str = "user_code",
    ) -> User | None:
        """One more consecutive wrong code of ``kind`` for the account; the ``threshold``-th
        locks it for that kind. One statement, so concurrent failures count exactly."""
        streak, locked_at = _STREAKS[kind]
        locks = and_(streak + 1 >= threshold, locked_at.is_(None))
        async with self._write() as conn:
            row = await self._update(
                conn,
                users,
                users.c.id == user_id,
                {streak.name: streak + 1, locked_at.name: case((locks, now), else_=locked_at)},
            )
            await self._audit(conn, [audit])
        return User.from_mapping(row) if row else None

    @shielded
    async def reset_code_failures(self, user_id: str, *, kind: str = "user_code") -> None:
        streak, locked_at = _STREAKS[kind]
        async with self._write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id, streak != 0)
                .values({streak.name: 0, locked_at.name: None})
            )

    # -- known browsers --------------------------------------------------------------------

    @shielded
    async def remember_browser(self, email: str, browser_hash: str, now: float) -> None:
        """Note that this browser completed an email sign-in for ``email``."""
        c = known_browsers.c
        where = and_(c.email == email, c.browser_hash == browser_hash)
        async with self._write() as conn:
            done = await conn.execute(update(known_browsers).where(where).values(signed_in_at=now))
            if not done.rowcount:
                known = KnownBrowser(email=email, browser_hash=browser_hash, signed_in_at=now)
                await insert_rows(conn, known_browsers, known.to_row())

    @shielded
    async def browser_is_known(self, email: str, browser_hash: str, since: float) -> bool:
        """Whether this browser completed an email sign-in for ``email`` after ``since``."""
        c = known_browsers.c
        row = await self._one(
            known_browsers, c.email == email, c.browser_hash == browser_hash, c.signed_in_at > since
        )
        return row is not None

    # -- email logins ----------------------------------------------------------------------

    @shielded
    async def insert_email_login(self, login: EmailLogin) -> None:
        async with self._write() as conn:
            await insert_rows(conn, email_logins, login.to_row())

    @staticmethod
    def _live_email(now: float, limit: int) -> list[ColumnElement[bool]]:
        c = email_logins.c
        return [
            c.consumed_at.is_(None),
            c.confirmed_elsewhere_at.is_(None),
            c.expires_at > now,
            c.attempts < limit,
        ]

    @shielded
    async def latest_email_login(
        self, email: str, browser_hash: str | None, ip: str, now: float, limit: int
    ) -> EmailLogin | None:
        """The newest live code for ``email`` that this caller asked for: in this browser (by
        its cookie's hash), or from this IP without a browser cookie. A code is only ever
        tried by whoever asked for it (DESIGN.md requirement 12)."""
        c = email_logins.c
        asker: ColumnElement[bool] = and_(c.browser_hash.is_(None), c.ip == ip)
        if browser_hash is not None:
            asker = or_(c.browser_hash == browser_hash, asker)
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(email_logins)
                        .where(c.email == email, asker, *self._live_email(now, limit))
                        .order_by(c.created_at.desc())
                        .limit(1)
                    )
                )
                .mappings()
                .first()
            )
        return EmailLogin.from_mapping(row) if row else None

    @shielded
    async def email_login_by_link(
        self, link_hash: str, now: float, limit: int
    ) -> EmailLogin | None:
        row = await self._one(
            email_logins, email_logins.c.link_hash == link_hash, *self._live_email(now, limit)
        )
        return EmailLogin.from_mapping(row) if row else None

    @shielded
    async def email_login_confirmed_for_browser(
        self, browser_hash: str, now: float
    ) -> EmailLogin | None:
        c = email_logins.c
        row = await self._one(
            email_logins,
            c.browser_hash == browser_hash,
            c.confirmed_elsewhere_at.is_not(None),
            c.consumed_at.is_(None),
            c.expires_at > now,
        )
        return EmailLogin.from_mapping(row) if row else None

    @shielded
    async def fail_email_code(self, login_id: str, audit: AuditEntry | None) -> None:
        c = email_logins.c
        async with self._write() as conn:
            await conn.execute(
                update(email_logins).where(c.id == login_id).values(attempts=c.attempts + 1)
            )
            await self._audit(conn, [audit])

    @shielded
    async def confirm_email_login_elsewhere(self, login_id: str, now: float, limit: int) -> bool:
        async with self._write() as conn:
            row = await self._update(
                conn,
                email_logins,
                and_(email_logins.c.id == login_id, *self._live_email(now, limit)),
                {"confirmed_elsewhere_at": now},
            )
        return row is not None

    @shielded
    async def complete_email_login(
        self,
        login_id: str,
        now: float,
        limit: int,
        rows: NewSessionRows | None,
        *,
        picked_up: bool = False,
        challenge: FactorChallenge | None = None,
    ) -> bool:
        """Consume the email login and write its new session's rows (or, for an account
        with a second factor, the mfa token that waits for it), in one transaction, or do
        nothing (``False``: used, expired or lost to a concurrent call)."""
        c = email_logins.c
        if picked_up:  # the asking browser collects a link confirmed on another device
            where = and_(
                c.id == login_id,
                c.consumed_at.is_(None),
                c.confirmed_elsewhere_at.is_not(None),
                c.expires_at > now,
            )
        else:
            where = and_(c.id == login_id, *self._live_email(now, limit))
        async with self._write() as conn:
            row = await self._update(conn, email_logins, where, {"consumed_at": now})
            if row is None:
                return False
            if rows is not None:
                await self._insert_session_rows(conn, rows)
            if challenge is not None:
                await insert_rows(conn, factor_challenges, challenge.to_row())
        return True
