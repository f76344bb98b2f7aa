"""Run the Alembic migrations on an engine (``qrlogin migrate`` and at ``serve`` start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from qrlogin.store.engine import Engine, writer_of
from qrlogin.store.sqlite import SqliteEngine

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK = 0x71726C6F  # advisory lock id so concurrent instances migrate one at a time


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade(engine: Engine) -> None:
    writer = writer_of(engine)
    # SQLite: a transaction of its own, not a group-committed one (store/sqlite.py)
    begin = writer.begin_alone if isinstance(writer, SqliteEngine) else writer.begin
    async with begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        await conn.run_sync(_upgrade)
