"""Instances started at the same moment on an empty PostgreSQL database migrate one at a
time (an advisory lock): none fails with "relation already exists"."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from qrlogin.config import Settings
from qrlogin.web.app import create_app
from scale.scale_support import asyncpg_url


async def test_instances_starting_together_migrate_one_at_a_time(
    pg_url: str, tmp_path: Path
) -> None:
    apps = [
        create_app(
            Settings(
                data_dir=tmp_path / str(i),
                database_url=asyncpg_url(pg_url),
                secret_key="migrate-together-" + "m" * 30,
            )
        )
        for i in range(4)
    ]
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.wait_for(
            asyncio.gather(
                *(stack.enter_async_context(app.router.lifespan_context(app)) for app in apps)
            ),
            120,
        )
        for app in apps:
            assert await app.state.services.store.ping()
            assert await app.state.services.store.count_by_status() == {}
