"""SQLAlchemy Core adapter of the store port, for SQLite and PostgreSQL.

Each state change is one conditional ``UPDATE … RETURNING``: the ``WHERE`` names the states the
transition may start from and the request's lifetime, so of two racing callers exactly one
gets a row back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from qrlogin.core.machine import TRANSITIONS, Action, Status
from qrlogin.store.records import EmailLogin, LoginRequest, Session, User
from qrlogin.store.tables import email_logins, login_requests, sessions, users

_LR = login_requests.c


class SqlStore:
    """The store on one SQLAlchemy async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))
        return True

    # -- helpers ---------------------------------------------------------------------------

    async def _one(self, table: Table, *where: ColumnElement[bool]) -> RowMapping | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(table).where(*where))).mappings().first()
        return row

    @staticmethod
    async def _update(
        conn: AsyncConnection, table: Table, where: ColumnElement[bool], values: Mapping[str, Any]
    ) -> RowMapping | None:
        stmt = update(table).where(where).values(**values).returning(*table.c)
        return (await conn.execute(stmt)).mappings().first()

    # -- login requests --------------------------------------------------------------------

    async def insert_login_request(self, rec: LoginRequest) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(login_requests).values(**asdict(rec)))

    async def get_login_request(self, request_id: str) -> LoginRequest | None:
        row = await self._one(login_requests, _LR.id == request_id)
        return LoginRequest.from_mapping(row) if row else None

    async def login_request_by_handle(self, handle_hash: str, now: float) -> LoginRequest | None:
        """The request whose current handle, or previous handle within its grace, matches."""
        row = await self._one(
            login_requests,
            or_(
                _LR.handle_hash == handle_hash,
                and_(_LR.prev_handle_hash == handle_hash, _LR.prev_handle_until > now),
            ),
        )
        return LoginRequest.from_mapping(row) if row else None

    async def login_request_by_user_code(self, code_hmac: str, now: float) -> LoginRequest | None:
        row = await self._one(
            login_requests,
            _LR.user_code_hmac == code_hmac,
            _LR.expires_at > now,
            _LR.status.in_([Status.PENDING.value]),
        )
        return LoginRequest.from_mapping(row) if row else None

    @staticmethod
    def _transition_where(
        request_id: str, action: Action, now: float, extra: Mapping[str, Any] | None
    ) -> ColumnElement[bool]:
        sources = [s.value for s in TRANSITIONS[action].sources]
        conds = [_LR.id == request_id, _LR.status.in_(sources), _LR.expires_at > now]
        for name, value in (extra or {}).items():
            conds.append(_LR[name].is_(None) if value is None else _LR[name] == value)
        return and_(*conds)

    async def transition(
        self,
        request_id: str,
        action: Action,
        now: float,
        values: Mapping[str, Any] | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> LoginRequest | None:
        """Apply ``action`` if the request is in one of its source states and alive (and the
        ``expect`` columns match); return the new row, or ``None`` if another caller won."""
        new_values = {
            "status": TRANSITIONS[action].target.value,
            "version": _LR.version + 1,
            **(values or {}),
        }
        async with self.engine.begin() as conn:
            row = await self._update(
                conn,
                login_requests,
                self._transition_where(request_id, action, now, expect),
                new_values,
            )
        return LoginRequest.from_mapping(row) if row else None

    async def exchange(
        self, request_id: str, now: float, session: Session, expect: Mapping[str, Any]
    ) -> LoginRequest | None:
        """approved → consumed and the new session, in one transaction, or nothing at all."""
        values = {
            "status": Status.CONSUMED.value,
            "version": _LR.version + 1,
            "finished_at": now,
            "session_id": session.id,
        }
        async with self.engine.begin() as conn:
            row = await self._update(
                conn,
                login_requests,
                self._transition_where(request_id, Action.EXCHANGE, now, expect),
                values,
            )
            if row is None:
                return None
            await conn.execute(insert(sessions).values(**asdict(session)))
        return LoginRequest.from_mapping(row)

    async def fail_confirm_code(
        self, request_id: str, now: float, limit: int
    ) -> LoginRequest | None:
        """Count one wrong confirm code; the ``limit``-th burns the request. Exact under races:
        the increment and the burn are one statement."""
        burn = _LR.confirm_attempts + 1 >= limit

        values = {
            "confirm_attempts": _LR.confirm_attempts + 1,
            "status": case((burn, Status.DENIED.value), else_=_LR.status),
            "reason": case((burn, "too_many_attempts"), else_=_LR.reason),
            "finished_at": case((burn, now), else_=_LR.finished_at),
            "version": case((burn, _LR.version + 1), else_=_LR.version),
        }
        async with self.engine.begin() as conn:
            row = await self._update(
                conn,
                login_requests,
                self._transition_where(request_id, Action.BURN, now, None),
                values,
            )
        return LoginRequest.from_mapping(row) if row else None

    async def count_pending_by_ip(self, ip: str, now: float) -> int:
        async with self.engine.connect() as conn:
            n = await conn.scalar(
                select(func.count())
                .select_from(login_requests)
                .where(_LR.ip == ip, _LR.status == Status.PENDING.value, _LR.expires_at > now)
            )
        return int(n or 0)

    # -- users -----------------------------------------------------------------------------

    async def record_code_failure(self, user_id: str, now: float, threshold: int) -> User | None:
        """One more consecutive wrong code for the account; the ``threshold``-th locks it.
        One statement, so concurrent failures count exactly."""
        c = users.c
        locks = and_(c.failed_code_streak + 1 >= threshold, c.locked_at.is_(None))
        async with self.engine.begin() as conn:
            row = await self._update(
                conn,
                users,
                c.id == user_id,
                {
                    "failed_code_streak": c.failed_code_streak + 1,
                    "locked_at": case((locks, now), else_=c.locked_at),
                },
            )
        return User.from_mapping(row) if row else None

    async def reset_code_failures(self, user_id: str) -> None:
        c = users.c
        async with self.engine.begin() as conn:
            await conn.execute(
                update(users)
                .where(c.id == user_id, c.failed_code_streak != 0)
                .values(failed_code_streak=0, locked_at=None)
            )

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one(users, users.c.id == user_id)
        return User.from_mapping(row) if row else None

    async def user_by_email(self, email: str) -> User | None:
        row = await self._one(users, users.c.email == email)
        return User.from_mapping(row) if row else None

    @staticmethod
    async def _ensure_user(conn: AsyncConnection, new_user: User) -> User:
        row = (
            (await conn.execute(select(users).where(users.c.email == new_user.email)))
            .mappings()
            .first()
        )
        if row is not None:
            return User.from_mapping(row)
        await conn.execute(insert(users).values(**asdict(new_user)))
        return new_user

    async def ensure_user(self, new_user: User) -> User:
        """The user with ``new_user.email``, created from ``new_user`` if there is none."""
        try:
            async with self.engine.begin() as conn:
                return await self._ensure_user(conn, new_user)
        except IntegrityError:  # created concurrently: take the winner's row
            existing = await self.user_by_email(new_user.email)
            assert existing is not None
            return existing

    # -- sessions --------------------------------------------------------------------------

    async def insert_session(self, session: Session) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(sessions).values(**asdict(session)))

    async def session_by_token_hash(self, token_hash: str) -> Session | None:
        row = await self._one(sessions, sessions.c.token_hash == token_hash)
        return Session.from_mapping(row) if row else None

    async def get_session(self, session_id: str) -> Session | None:
        row = await self._one(sessions, sessions.c.id == session_id)
        return Session.from_mapping(row) if row else None

    async def revoke_session(self, session_id: str, now: float) -> Session | None:
        async with self.engine.begin() as conn:
            row = await self._update(
                conn,
                sessions,
                and_(sessions.c.id == session_id, sessions.c.revoked_at.is_(None)),
                {"revoked_at": now},
            )
        return Session.from_mapping(row) if row else None

    # -- email logins ----------------------------------------------------------------------

    async def insert_email_login(self, login: EmailLogin) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(email_logins).values(**asdict(login)))

    def _live_email(self, now: float, limit: int) -> list[ColumnElement[bool]]:
        c = email_logins.c
        return [
            c.consumed_at.is_(None),
            c.confirmed_elsewhere_at.is_(None),
            c.expires_at > now,
            c.attempts < limit,
        ]

    async def latest_email_login(self, email: str, now: float, limit: int) -> EmailLogin | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(email_logins)
                        .where(email_logins.c.email == email, *self._live_email(now, limit))
                        .order_by(email_logins.c.created_at.desc())
                        .limit(1)
                    )
                )
                .mappings()
                .first()
            )
        return EmailLogin.from_mapping(row) if row else None

    async def email_login_by_link(
        self, link_hash: str, now: float, limit: int
    ) -> EmailLogin | None:
        row = await self._one(
            email_logins, email_logins.c.link_hash == link_hash, *self._live_email(now, limit)
        )
        return EmailLogin.from_mapping(row) if row else None

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

    async def fail_email_code(self, login_id: str) -> None:
        c = email_logins.c
        async with self.engine.begin() as conn:
            await conn.execute(
                update(email_logins).where(c.id == login_id).values(attempts=c.attempts + 1)
            )

    async def confirm_email_login_elsewhere(self, login_id: str, now: float, limit: int) -> bool:
        async with self.engine.begin() as conn:
            row = await self._update(
                conn,
                email_logins,
                and_(email_logins.c.id == login_id, *self._live_email(now, limit)),
                {"confirmed_elsewhere_at": now},
            )
        return row is not None

    async def complete_email_login(
        self,
        login_id: str,
        now: float,
        limit: int,
        new_user: Callable[[str], User],
        new_session: Callable[[User], Session],
        *,
        picked_up: bool = False,
    ) -> tuple[User, Session] | None:
        """Consume the email login and start a session, in one transaction, or do nothing."""
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
        async with self.engine.begin() as conn:
            row = await self._update(conn, email_logins, where, {"consumed_at": now})
            if row is None:
                return None
            user = await self._ensure_user(conn, new_user(str(row["email"])))
            session = new_session(user)
            await conn.execute(insert(sessions).values(**asdict(session)))
        return user, session

    # -- housekeeping ----------------------------------------------------------------------

    async def collect_garbage(self, now: float, keep: float = 3600.0, batch: int = 500) -> int:
        """Delete requests and email logins that ended more than ``keep`` seconds ago, in
        bounded batches so a large backlog never holds the write lock for long."""
        removed = 0
        for table in (login_requests, email_logins):
            ids = select(table.c.id).where(table.c.expires_at < now - keep).limit(batch)
            async with self.engine.begin() as conn:
                result = await conn.execute(delete(table).where(table.c.id.in_(ids)))
            removed += int(result.rowcount or 0)
        return removed
