"""Engines: SQLite (WAL, statements run on the event loop thread, see ``store/sqlite.py``)
and PostgreSQL (asyncpg through SQLAlchemy's async engine)."""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from qrlogin.store.sqlite import LoopConnection, SqliteEngine

WRITE_OPTION = "qrlogin_write"  # execution option marking a connection that will write

Engine: TypeAlias = AsyncEngine | SqliteEngine
Conn: TypeAlias = AsyncConnection | LoopConnection


def writer_of(engine: Engine) -> Engine:
    """The same engine, with connections that announce they will write (SQLite's engine
    always writes on its writer connection inside ``begin()``)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        return SqliteEngine(url)
    # no pool_pre_ping: it costs a round trip per checkout; a dead connection's statement
    # fails (a 503, nothing written) and the pool replaces it.
    # pool_size covers the concurrency of a busy instance: connections past it ("overflow")
    # are closed when returned, and under load that meant a new connection (a TLS attempt,
    # then statement preparation again) for every few requests (docs/benchmarks.md).
    return create_async_engine(url, pool_size=25, max_overflow=15, pool_recycle=1800)
