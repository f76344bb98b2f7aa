"""Shared machinery of the SQL store: the engine, one-row reads, conditional updates, and
audit rows written in the same transaction as the change they record."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, Insert, Select, Table, Update, insert, select, update
from sqlalchemy.engine import RowMapping

from qrlogin.store.engine import Conn, Engine, writer_of
from qrlogin.store.records import AuditEntry, NewSessionRows
from qrlogin.store.sqlite import LoopConnection, SqliteEngine
from qrlogin.store.tables import audit_events, refresh_tokens, sessions

P = ParamSpec("P")
T = TypeVar("T")


def shielded(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
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


@functools.cache
def insert_into(table: Table) -> Insert:
    """One ``INSERT`` statement object per table, executed with a dict of values: SQLAlchemy
    compiles it once and finds it in its cache by identity, where ``insert(t).values(**row)``
    builds and hashes a new statement every time (about 0.3 ms in the hot paths)."""
    return insert(table)


async def insert_rows(
    conn: Conn, table: Table, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> None:
    """``INSERT`` one row (a mapping) or several (a list of mappings with the same keys) in
    the caller's transaction: on SQLite straight through ``sqlite3`` (``LoopConnection.insert``),
    on PostgreSQL through SQLAlchemy."""
    if isinstance(conn, LoopConnection):
        conn.insert(table, rows)
    else:
        await conn.execute(insert_into(table), rows)


class SqlBase:
    def __init__(self, engine: Engine) -> None:
        self.sqlite = engine.dialect.name == "sqlite"
        # reads: on PostgreSQL in autocommit, one round trip instead of BEGIN, query, ROLLBACK
        self.engine: Engine = (
            engine if self.sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.writer = writer_of(engine)  # transactions that write

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[Conn]:
        """A write transaction: committed on success, rolled back on error. On SQLite the
        writes of one event-loop round share one transaction and one commit, each caller's
        in a savepoint of its own (store/sqlite.py: group commit)."""
        async with self.writer.begin() as conn:
            yield conn

    @shielded
    async def close(self) -> None:
        await self.engine.dispose()

    @shielded
    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))
        return True

    async def _one(self, table: Table, *where: ColumnElement[bool]) -> RowMapping | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(table).where(*where))).mappings().first()
        return row

    async def _first(
        self, stmt: Select[Any], params: Mapping[str, Any]
    ) -> Mapping[Any, Any] | None:
        """The first row of a prebuilt statement (bound parameters by name): for the reads
        every request makes, built once at import rather than per call."""
        if isinstance(self.engine, SqliteEngine):
            return self.engine.first_row(stmt, params)
        async with self.engine.connect() as conn:
            row: RowMapping | None = (await conn.execute(stmt, dict(params))).mappings().first()
        return row

    @staticmethod
    async def _first_in(
        conn: Conn, stmt: Select[Any] | Update, params: Mapping[str, Any]
    ) -> Mapping[Any, Any] | None:
        """The first row of a prebuilt statement (a ``SELECT``, or an ``UPDATE … RETURNING``)
        inside the caller's transaction: on SQLite straight through ``sqlite3``."""
        if isinstance(conn, LoopConnection):
            return conn.first(stmt, params)
        row: RowMapping | None = (await conn.execute(stmt, dict(params))).mappings().first()
        return row

    @staticmethod
    async def _update(
        conn: Conn, table: Table, where: ColumnElement[bool], values: Mapping[str, Any]
    ) -> RowMapping | None:
        stmt = update(table).where(where).values(**values).returning(*table.c)
        return (await conn.execute(stmt)).mappings().first()

    @classmethod
    async def _insert_session_rows(cls, conn: Conn, rows: NewSessionRows) -> None:
        """A new built-in session, its first refresh token and its activity row, inside the
        caller's transaction (the one change that starts the session)."""
        await insert_rows(conn, sessions, rows.session.to_row())
        if rows.refresh is not None:
            await insert_rows(conn, refresh_tokens, rows.refresh.to_row())
        await cls._audit(conn, [rows.audit])

    @staticmethod
    async def _audit(conn: Conn, entries: Iterable[AuditEntry | None]) -> None:
        rows = [
            {k: v for k, v in e.to_row().items() if k != "id"} for e in entries if e is not None
        ]
        if rows:
            await insert_rows(conn, audit_events, rows)

    @shielded
    async def audit(self, *entries: AuditEntry) -> None:
        """Record entries that go with no other write."""
        async with self._write() as conn:
            await self._audit(conn, entries)
