"""The SQL store: SQLAlchemy Core on an async engine, for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import Table, delete, select

from qrlogin.store.accounts import SqlAccounts
from qrlogin.store.requests import SqlLoginRequests
from qrlogin.store.sessions import SqlSessions
from qrlogin.store.tables import audit_events, email_logins, login_requests

P = ParamSpec("P")
T = TypeVar("T")


def _shielded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Run the database call as its own task, so cancelling the caller (a browser leaving a
    stream mid-query) never cuts a transaction in half and strands its lock (PostgreSQL)."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        if args[0].sqlite:  # type: ignore[attr-defined]
            # SQLite runs a transaction's statements without suspending (store/sqlite.py):
            # a cancellation can only land before it starts, so no task is needed
            return await fn(*args, **kwargs)
        task = asyncio.ensure_future(fn(*args, **kwargs))
        # a caller that went away no longer awaits it: still collect its outcome
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    return call


class SqlStore(SqlLoginRequests, SqlAccounts, SqlSessions):
    """Every table of qrlogin behind one object. Each public call is shielded from
    cancellation (see ``_shielded``)."""

    async def _delete_older(self, table: Table, column: str, before: float, batch: int) -> int:
        pk = next(iter(table.primary_key.columns))
        ids = select(pk).where(table.c[column] < before).limit(batch)
        async with self._write() as conn:
            result = await conn.execute(delete(table).where(pk.in_(ids)))
        return int(result.rowcount or 0)

    async def collect_garbage(
        self,
        now: float,
        *,
        keep_requests: float = 3600.0,
        keep_sessions: float = 30 * 86400.0,
        keep_audit: float = 90 * 86400.0,
        batch: int = 500,
    ) -> int:
        """Delete what ended long enough ago, one bounded batch per table, so a large backlog
        never holds the write lock for long; call again while it returns ``batch``-sized work."""
        removed = await self._delete_older(login_requests, "expires_at", now - keep_requests, batch)
        removed += await self._delete_older(email_logins, "expires_at", now - keep_requests, batch)
        removed += await self.delete_old_sessions(now - keep_sessions, batch)
        removed += await self._delete_older(audit_events, "created_at", now - keep_audit, batch)
        return removed


for _name, _fn in inspect.getmembers(SqlStore, inspect.iscoroutinefunction):
    if not _name.startswith("_"):
        setattr(SqlStore, _name, _shielded(_fn))
