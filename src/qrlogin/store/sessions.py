"""Sessions, refresh tokens and the activity log in SQL."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import bindparam, delete, insert, select, update

from qrlogin.store.base import SqlBase, insert_rows, shielded
from qrlogin.store.engine import Conn
from qrlogin.store.records import (
    AuditEntry,
    NewSessionRows,
    RefreshOutcome,
    RefreshResult,
    RefreshToken,
    Session,
    User,
)
from qrlogin.store.tables import audit_events, refresh_tokens, sessions, users

_S = sessions.c
_R = refresh_tokens.c
_BY_TOKEN = select(sessions).where(_S.token_hash == bindparam("token"))
_BY_ID = select(sessions).where(_S.id == bindparam("id"))
# a signed-in request's session and its user in one read (every approver call makes it)
_WITH_USER = (
    select(sessions, *(c.label(f"user__{c.name}") for c in users.c))
    .join(users, users.c.id == _S.user_id)
    .where(_S.token_hash == bindparam("token"))
)
_USER_PREFIX = "user__"


class SqlSessions(SqlBase):
    """``store.ports.SessionStore`` and ``AuditStore.activity`` in SQL."""

    @shielded
    async def insert_session(
        self, session: Session, audit: AuditEntry | None, refresh: RefreshToken | None = None
    ) -> None:
        async with self._write() as conn:
            await self._insert_session_rows(conn, NewSessionRows(session, refresh, audit))

    @shielded
    async def insert_refresh_token(self, refresh: RefreshToken) -> None:
        async with self._write() as conn:
            await insert_rows(conn, refresh_tokens, refresh.to_row())

    @shielded
    async def session_by_token_hash(self, token_hash: str) -> Session | None:
        row = await self._first(_BY_TOKEN, {"token": token_hash})
        return Session.from_mapping(row) if row else None

    @shielded
    async def session_with_user(self, token_hash: str) -> tuple[Session, User] | None:
        """The session with this token hash and its user, in one read (``None`` if either
        is missing)."""
        row = await self._first(_WITH_USER, {"token": token_hash})
        if row is None:
            return None
        user = {k[len(_USER_PREFIX) :]: v for k, v in row.items() if k.startswith(_USER_PREFIX)}
        return Session.from_mapping(row), User.from_mapping(user)

    @shielded
    async def get_session(self, session_id: str) -> Session | None:
        row = await self._first(_BY_ID, {"id": session_id})
        return Session.from_mapping(row) if row else None

    @shielded
    async def touch_session(self, session_id: str, now: float, every: float) -> None:
        """Move ``last_seen_at`` forward, at most once per ``every`` seconds."""
        async with self._write() as conn:
            await conn.execute(
                update(sessions)
                .where(_S.id == session_id, _S.last_seen_at < now - every)
                .values(last_seen_at=now)
            )

    async def _revoke(self, conn: Conn, session_id: str, now: float, reason: str) -> Session | None:
        row = await self._update(
            conn,
            sessions,
            (_S.id == session_id) & _S.revoked_at.is_(None),
            {"revoked_at": now, "revoked_reason": reason},
        )
        return Session.from_mapping(row) if row else None

    @shielded
    async def revoke_session(
        self,
        session_id: str,
        now: float,
        reason: str,
        audit: Callable[[Session], AuditEntry | None],
    ) -> Session | None:
        """Revoke one session; ``None`` if it was already revoked (then nothing is recorded)."""
        async with self._write() as conn:
            revoked = await self._revoke(conn, session_id, now, reason)
            if revoked is not None:
                await self._audit(conn, [audit(revoked)])
        return revoked

    @shielded
    async def active_sessions(self, user_id: str, now: float) -> list[Session]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(sessions)
                        .where(_S.user_id == user_id, _S.revoked_at.is_(None), _S.expires_at > now)
                        .order_by(_S.created_at.desc())
                    )
                )
                .mappings()
                .all()
            )
        return [Session.from_mapping(r) for r in rows]

    @shielded
    async def sessions_created_since(self, user_id: str, since: float) -> list[Session]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(sessions)
                        .where(_S.user_id == user_id, _S.created_at >= since)
                        .order_by(_S.created_at)
                    )
                )
                .mappings()
                .all()
            )
        return [Session.from_mapping(r) for r in rows]

    # -- refresh tokens --------------------------------------------------------------------

    @shielded
    async def rotate_refresh_token(
        self,
        old_hash: str,
        new_refresh: RefreshToken,  # its session_id is taken from the old token's session
        new_access_hash: str,
        access_expires_at: float,
        now: float,
        retry_window: float,
        audit_reuse: Callable[[Session], AuditEntry | None],
        client_id: str | None = None,
    ) -> RefreshResult:
        """One refresh, atomically. The first use of a token rotates the chain; a repeat within
        the retry window is told to hand out the same new tokens; any later reuse revokes the
        session the chain belongs to (OAuth 2.0 Security BCP §4.14). Only the session's own
        client may refresh it (``client_id``; ``None`` for qrlogin's own API clients): any
        other gets INVALID and changes nothing."""
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        select(refresh_tokens).where(_R.token_hash == old_hash).with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            if row is None or row["expires_at"] <= now:
                return RefreshResult(RefreshOutcome.INVALID, None)
            token = RefreshToken.from_mapping(row)
            srow = (
                (await conn.execute(select(sessions).where(_S.id == token.session_id)))
                .mappings()
                .first()
            )
            session = Session.from_mapping(srow) if srow else None
            if session is None or session.revoked_at is not None or now >= session.expires_at:
                return RefreshResult(RefreshOutcome.INVALID, None)
            if session.client_id != client_id:
                return RefreshResult(RefreshOutcome.INVALID, None)
            if token.used_at is None:
                await conn.execute(
                    update(refresh_tokens).where(_R.token_hash == old_hash).values(used_at=now)
                )
                await conn.execute(
                    insert(refresh_tokens).values(
                        **{**new_refresh.to_row(), "session_id": session.id}
                    )
                )
                updated = await self._update(
                    conn,
                    sessions,
                    _S.id == session.id,
                    {"token_hash": new_access_hash, "access_expires_at": access_expires_at},
                )
                assert updated is not None
                return RefreshResult(RefreshOutcome.ROTATED, Session.from_mapping(updated))
            child = (
                (
                    await conn.execute(
                        select(refresh_tokens.c.used_at).where(
                            _R.token_hash == new_refresh.token_hash
                        )
                    )
                )
                .mappings()
                .first()
            )
            if (
                now - token.used_at <= retry_window
                and child is not None
                and child["used_at"] is None
            ):
                return RefreshResult(RefreshOutcome.RETRY, session)
            revoked = await self._revoke(conn, session.id, now, "refresh_token_reused")
            if revoked is not None:
                await self._audit(conn, [audit_reuse(revoked)])
            return RefreshResult(RefreshOutcome.REUSED, revoked or session)

    # -- activity --------------------------------------------------------------------------

    @shielded
    async def activity(self, user_id: str, limit: int = 50) -> list[AuditEntry]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(audit_events)
                        .where(audit_events.c.user_id == user_id)
                        .order_by(audit_events.c.created_at.desc(), audit_events.c.id.desc())
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [AuditEntry.from_mapping(r) for r in rows]

    @shielded
    async def delete_old_sessions(self, before: float, batch: int) -> int:
        """Sessions that ended (expired or revoked) before ``before``, and their refresh tokens."""
        ended = (
            select(_S.id).where((_S.expires_at < before) | (_S.revoked_at < before)).limit(batch)
        )
        async with self._write() as conn:
            ids = [r[0] for r in (await conn.execute(ended)).all()]
            if not ids:
                return 0
            await conn.execute(delete(refresh_tokens).where(_R.session_id.in_(ids)))
            result = await conn.execute(delete(sessions).where(_S.id.in_(ids)))
        return int(result.rowcount or 0)
