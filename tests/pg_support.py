"""PostgreSQL for the in-process tests: one schema per site or store, not one database.

Used by the ``pg_schemas`` fixture (tests/conftest.py), the web tests' ``make_site`` and the
store contract tests. Server: $QRLOGIN_TEST_PG (default: the local one, which trusts local users).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text

PG_ADMIN = os.environ.get("QRLOGIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_url_as(role: str, *, driver: str = "postgresql") -> str:
    """The test server's URL, logged in as ``role`` (the test server trusts local users)."""
    parts = urlsplit(PG_ADMIN)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((driver, f"{role}@{host}", parts.path, parts.query, ""))


class PgSchemas:
    """PostgreSQL for the in-process suite: one schema per site, not one database (creating
    and dropping a database costs seconds on a busy machine, a schema milliseconds).

    Each schema is owned by a login role of the same name whose ``search_path`` is that
    schema, so the app under test sees a database of its own through a plain URL. The
    migrations run once, into a template schema; every site gets a copy of its tables
    (``pg_dump --schema-only`` of the template replayed under the new name) and the same
    ``alembic_version``, so the app's own migration step at start finds the schema at head.
    """

    def __init__(self) -> None:
        self.template = f"qrlt_tmpl_{uuid.uuid4().hex[:12]}"
        self.ddl = ""
        self.revision = ""

    @staticmethod
    async def _admin(sql: str, *args: Any) -> Any:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            return await conn.fetch(sql, *args) if args else await conn.execute(sql)
        finally:
            await conn.close()

    @classmethod
    async def _create_owned(cls, name: str) -> None:
        await cls._admin(
            f'CREATE ROLE "{name}" LOGIN; CREATE SCHEMA "{name}" AUTHORIZATION "{name}"; '
            f'ALTER ROLE "{name}" SET search_path = "{name}"'
        )

    @classmethod
    async def drop(cls, name: str) -> None:
        await cls._admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'; "
            f'DROP SCHEMA IF EXISTS "{name}" CASCADE; DROP ROLE IF EXISTS "{name}"'
        )

    async def build(self) -> None:
        """Migrate the template schema and keep its DDL (once per test session)."""
        from qrlogin.store.engine import make_engine
        from qrlogin.store.migrate import upgrade

        await self._create_owned(self.template)
        engine = make_engine(pg_url_as(self.template, driver="postgresql+asyncpg"))
        try:
            await upgrade(engine)
            async with engine.connect() as conn:
                self.revision = str(
                    await conn.scalar(text("SELECT version_num FROM alembic_version"))
                )
        finally:
            await engine.dispose()
        dump = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--schema",
             self.template, PG_ADMIN],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        self.ddl = "\n".join(
            line
            for line in dump.splitlines()
            if not line.startswith(("CREATE SCHEMA", "ALTER SCHEMA", "\\"))  # psql meta lines
        )
        assert f"{self.template}.login_requests" in self.ddl, dump[:2000]

    async def new(self) -> str:
        """A new schema (and role) with every table at the migrations' head; its name.
        ``pg_url_as(name, driver="postgresql+asyncpg")`` reaches it."""
        import asyncpg

        name = f"qrlt_{uuid.uuid4().hex[:16]}"
        await self._create_owned(name)
        conn = await asyncpg.connect(pg_url_as(name), timeout=10)
        try:
            await conn.execute(self.ddl.replace(self.template, name))
            await conn.execute(
                f'INSERT INTO "{name}".alembic_version (version_num) VALUES ($1)', self.revision
            )
        finally:
            await conn.close()
        return name

    async def close(self) -> None:
        await self.drop(self.template)
