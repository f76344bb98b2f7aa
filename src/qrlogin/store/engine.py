"""Engines: SQLite (WAL, statements run on the event loop thread, see ``store/sqlite.py``)
and PostgreSQL (asyncpg through SQLAlchemy's async engine)."""

from __future__ import annotations

import shlex
from typing import TypeAlias

from sqlalchemy.engine import make_url
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


def server_settings(url: str) -> tuple[str, dict[str, str]]:
    """The URL without libpq's ``options`` parameter, and the ``-c name=value`` settings it
    held (``?options=-csearch_path%3Dqrlogin``: qrlogin's tables in a schema of their own).
    SQLAlchemy's asyncpg dialect would pass ``options`` on to ``asyncpg.connect()``, which
    has no such argument; asyncpg takes them as ``server_settings``."""
    parsed = make_url(url)
    options = parsed.query.get("options")
    if not options:
        return url, {}
    words = shlex.split(options if isinstance(options, str) else " ".join(options))
    found: dict[str, str] = {}
    for i, word in enumerate(words):
        setting = word[2:] if word.startswith("-c") else None
        if setting == "" and i + 1 < len(words):
            setting = words[i + 1]
        if setting:
            name, sep, value = setting.partition("=")
            if not sep:
                raise ValueError(f"options={options!r}: -c needs name=value")
            found[name] = value
    rest = parsed.difference_update_query(["options"])
    return rest.render_as_string(hide_password=False), found


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        return SqliteEngine(url)
    url, settings = server_settings(url)
    # no pool_pre_ping: it costs a round trip per checkout; a dead connection's statement
    # fails (a 503, nothing written) and the pool replaces it.
    # pool_size covers the concurrency of a busy instance: connections past it ("overflow")
    # are closed when returned, and under load that meant a new connection (a TLS attempt,
    # then statement preparation again) for every few requests (docs/benchmarks.md).
    return create_async_engine(
        url,
        pool_size=25,
        max_overflow=15,
        pool_recycle=1800,
        connect_args={"server_settings": settings} if settings else {},
    )
