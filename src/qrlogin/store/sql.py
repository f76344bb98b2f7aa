"""The SQL store: SQLAlchemy Core on an async engine, for SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Table, delete, select

from qrlogin.store.accounts import SqlAccounts
from qrlogin.store.base import shielded
from qrlogin.store.factors import SqlFactors
from qrlogin.store.oauth import SqlOAuth
from qrlogin.store.requests import SqlLoginRequests
from qrlogin.store.sessions import SqlSessions
from qrlogin.store.tables import (
    audit_events,
    email_logins,
    factor_challenges,
    known_browsers,
    login_requests,
)


class SqlStore(SqlLoginRequests, SqlAccounts, SqlSessions, SqlOAuth, SqlFactors):
    """Every table of qrlogin behind one object. Each public call is shielded from
    cancellation (``base.shielded``)."""

    async def _delete_older(self, table: Table, column: str, before: float, batch: int) -> int:
        pk = next(iter(table.primary_key.columns))
        ids = select(pk).where(table.c[column] < before).limit(batch)
        async with self._write() as conn:
            result = await conn.execute(delete(table).where(pk.in_(ids)))
        return int(result.rowcount or 0)

    async def _forget_browsers(self, before: float, batch: int) -> int:
        # two-column key: pick a batch of addresses, then only their old rows
        c = known_browsers.c
        emails = select(c.email).where(c.signed_in_at < before).limit(batch)
        async with self._write() as conn:
            result = await conn.execute(
                delete(known_browsers).where(c.signed_in_at < before, c.email.in_(emails))
            )
        return int(result.rowcount or 0)

    @shielded
    async def collect_garbage(
        self,
        now: float,
        *,
        keep_requests: float = 3600.0,
        keep_sessions: float = 30 * 86400.0,
        keep_audit: float = 90 * 86400.0,
        keep_browsers: float = 400 * 86400.0,
        batch: int = 500,
    ) -> int:
        """Delete what ended long enough ago, one bounded batch per table, so a large backlog
        never holds the write lock for long; call again while it returns ``batch``-sized work."""
        removed = await self._delete_older(login_requests, "expires_at", now - keep_requests, batch)
        removed += await self._delete_older(email_logins, "expires_at", now - keep_requests, batch)
        removed += await self._delete_older(
            factor_challenges, "expires_at", now - keep_requests, batch
        )
        removed += await self.delete_old_sessions(now - keep_sessions, batch)
        removed += await self._delete_older(audit_events, "created_at", now - keep_audit, batch)
        removed += await self._forget_browsers(now - keep_browsers, batch)
        # a code whose reuse must still be recognised lives a day past its expiry
        removed += await self._delete_old_codes(now - 86400.0, batch)
        return removed
