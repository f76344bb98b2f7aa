"""Engines from database URLs: libpq's ``options`` parameter on PostgreSQL puts qrlogin's
tables in a schema of their own, beside a host app's tables of the same names."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from qrlogin.store.engine import make_engine, server_settings
from qrlogin.store.migrate import upgrade


@pytest.mark.parametrize(
    ("url", "rest", "settings"),
    [
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db", {}),
        (
            "postgresql+asyncpg://u:pw@h/db?options=-csearch_path%3Dqrlogin",
            "postgresql+asyncpg://u:pw@h/db",
            {"search_path": "qrlogin"},
        ),
        (
            "postgresql+asyncpg://u@h/db?ssl=require&options=-c%20search_path%3Dqrl%20-cstatement_timeout%3D5s",
            "postgresql+asyncpg://u@h/db?ssl=require",
            {"search_path": "qrl", "statement_timeout": "5s"},
        ),
    ],
)
def test_libpq_options_in_the_url_become_server_settings(
    url: str, rest: str, settings: dict[str, str]
) -> None:
    assert server_settings(url) == (rest, settings)


def test_an_option_without_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match="name=value"):
        server_settings("postgresql+asyncpg://u@h/db?options=-csearch_path")


async def test_qrlogin_migrates_into_its_own_schema_beside_a_hosts_tables_of_the_same_names(
    pg_url: str,
) -> None:
    host = await asyncpg.connect(pg_url)
    try:
        await host.execute(
            "CREATE TABLE users (id text PRIMARY KEY); CREATE TABLE sessions (id text PRIMARY KEY);"
            " CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
            " INSERT INTO alembic_version VALUES ('host_head'); CREATE SCHEMA qrlogin"
        )
        url = pg_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        engine = make_engine(f"{url}?options=-csearch_path%3Dqrlogin")
        try:
            await upgrade(engine)
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT current_schema()")) == "qrlogin"
                assert await conn.scalar(text("SELECT count(*) FROM login_requests")) == 0
        finally:
            await engine.dispose()
        tables = {
            (r["table_schema"], r["table_name"])
            for r in await host.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_schema IN ('public', 'qrlogin')"
            )
        }
        assert {("public", "users"), ("public", "sessions"), ("qrlogin", "users")} <= tables
        assert ("qrlogin", "login_requests") in tables
        assert ("public", "login_requests") not in tables
        assert await host.fetchval("SELECT version_num FROM public.alembic_version") == "host_head"
        assert await host.fetchval("SELECT count(*) FROM qrlogin.alembic_version") == 1
    finally:
        await host.close()
