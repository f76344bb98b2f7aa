"""Async engines for SQLite (WAL, busy timeout, write-first transactions) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

WRITE_OPTION = "qrlogin_write"  # execution option marking a connection that will write


def writer_of(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, with connections that announce they will write."""
    return engine.execution_options(**{WRITE_OPTION: True})


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str) -> AsyncEngine:
    if not is_sqlite(url):
        # no pool_pre_ping: it costs a round trip per checkout; a dead connection's statement
        # fails (a 503, nothing written) and the pool replaces it
        return create_async_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from the driver so "begin" below decides how they start.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writes take the write lock up front (IMMEDIATE): a deferred transaction that reads
        # and then writes can fail with SQLITE_BUSY at once instead of waiting for the busy
        # timeout. Reads open no transaction at all (each statement is its own, and under WAL
        # takes no lock), which saves a round trip to the driver's thread.
        if conn.get_execution_options().get(WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
