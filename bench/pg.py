"""A fresh PostgreSQL database per run: ``CREATE DATABASE bench_<random>``, dropped after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ADMIN_URL = os.environ.get(
    "QRLOGIN_BENCH_PG",
    os.environ.get("QRLOGIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
)


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def available() -> bool:
    try:
        conn = await asyncpg.connect(ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Yield a ``postgresql+asyncpg://`` URL of a new, empty database; drop it afterwards."""
    name = f"bench_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_db(ADMIN_URL, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def is_available() -> bool:
    return asyncio.run(available())


def server_version() -> str:
    async def run() -> str:
        conn = await asyncpg.connect(ADMIN_URL, timeout=3)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(run())
