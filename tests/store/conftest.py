"""The ``store`` fixture: a ``SqlStore`` at the migrations' head, on each backend it supports.

``sqlite`` is a database file in tmp_path, migrated by the app's own ``upgrade``;
``postgresql`` is a schema of its own (a copy of the session's migrated template,
``pg_schemas`` in tests/conftest.py), dropped afterwards. The test id names the backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pg_support import PgSchemas, pg_url_as
from qrlogin.store.engine import make_engine
from qrlogin.store.migrate import upgrade
from qrlogin.store.sql import SqlStore

STORE_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    schema = None
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'qrlogin.db'}")
        await upgrade(engine)
    else:
        schemas: PgSchemas = request.getfixturevalue("pg_schemas")
        schema = await schemas.new()
        engine = make_engine(pg_url_as(schema, driver="postgresql+asyncpg"))
    sql_store = SqlStore(engine)
    try:
        yield sql_store
    finally:
        await sql_store.close()
        if schema is not None:
            await PgSchemas.drop(schema)
