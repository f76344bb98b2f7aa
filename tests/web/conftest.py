"""In-process fixtures for the JSON API and the pages: the app runs on httpx's ASGI transport
with its lifespan entered by hand, so migrations run and nothing listens on a port.

Fixtures
--------
backend                 "sqlite"; or, for a test or module marked ``@pytest.mark.backends``, each
                        of "sqlite" | "pg-redis" | "pg-notify" (web_support.BACKENDS); the test
                        id names it (see ``pytest_generate_tests``)
make_site(**settings)   async factory: a running app with its own data dir (see ``Site``)
site                    one running app: confirm="code", dev=True, a FrozenClock
requester_kind          parametrized "api" | "browser" (STYLE.md: one API, two kinds of client)

Backends: ``sqlite`` is SQLite with in-process events and rate limits; ``pg-redis`` is
PostgreSQL with Redis pub/sub events and Redis rate-limit counters; ``pg-notify`` is
PostgreSQL with LISTEN/NOTIFY events and in-process rate limits. Each PostgreSQL site gets a
schema of its own (a copy of a template migrated once per session: ``pg_schemas`` in
tests/conftest.py, ``PgSchemas`` in tests/pg_support.py), and
each site a random ``QRLOGIN_REDIS_PREFIX`` (Redis keys, NOTIFY channel), all removed after.
Servers: $QRLOGIN_TEST_PG and $QRLOGIN_TEST_REDIS (default: the local ones).

Mail goes to the dev outbox (no SMTP here), so codes and link tokens are read from
``site.outbox``. Helpers (Site, Requester, Approver, parsers) live in web_support.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from web_support import (
    BACKENDS,
    PUBLIC_URL,
    REQUESTER_KINDS,
    Site,
    backend_settings,
    drop_redis_keys,
)

from pg_support import PgSchemas, pg_url_as
from qrlogin.config import Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.policy import Policy
from qrlogin.web.app import create_app

MakeSite = Callable[..., Awaitable[Site]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Test lanes: a test that makes a site runs on SQLite only, unless it (or its module) is
    marked ``@pytest.mark.backends``, for behaviour that differs by backend (events across a
    bus, rate-limit counters in Redis, transactions and races on PostgreSQL, database errors).
    The id keeps the backend's name either way (``[sqlite]``)."""
    if "backend" in metafunc.fixturenames:
        on_matrix = metafunc.definition.get_closest_marker("backends") is not None
        metafunc.parametrize("backend", BACKENDS if on_matrix else BACKENDS[:1], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def make_site(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[MakeSite]:
    """``await make_site(*, clock=FrozenClock() | None, policy=None, **settings)``.

    ``clock=None`` uses the system clock (needed where the app waits on the clock itself,
    such as a long-poll that times out)."""
    stack = contextlib.AsyncExitStack()
    made = 0

    async def make(
        *,
        clock: Any = "frozen",
        policy: Policy | None = None,
        **overrides: Any,
    ) -> Site:
        nonlocal made
        made += 1
        database_url = None
        prefix = f"qrlt{uuid.uuid4().hex[:12]}"
        if backend != "sqlite":
            schemas: PgSchemas = request.getfixturevalue("pg_schemas")
            schema = await schemas.new()
            database_url = pg_url_as(schema, driver="postgresql+asyncpg")
            # pushed before the app starts, so it runs after the app has stopped
            stack.push_async_callback(PgSchemas.drop, schema)
            if backend == "pg-redis":
                stack.push_async_callback(drop_redis_keys, prefix)
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"site{made}",
            "public_url": PUBLIC_URL,
            "confirm": "code",
            "dev": True,
            **backend_settings(backend, database_url, prefix),
            **overrides,
        }
        settings = Settings(**values)
        if clock == "frozen":
            clock = FrozenClock()
        app = create_app(settings, clock=clock, policy=policy)
        await stack.enter_async_context(app.router.lifespan_context(app))
        if backend != "sqlite":
            assert await app.state.services.bus.healthy(), f"the {backend} event bus is down"
        return Site(app, clock, settings.public_url, stack, backend=backend)

    try:
        yield make
    finally:
        await _bounded_close(stack, request.node.nodeid)


async def _bounded_close(stack: contextlib.AsyncExitStack, test: str, seconds: float = 60) -> None:
    """Stop the sites (clients, app, schema) within ``seconds``, or fail showing where every
    task is stuck, rather than hang the suite."""
    closing = asyncio.ensure_future(stack.aclose())
    done, _ = await asyncio.wait({closing}, timeout=seconds)
    if done:
        closing.result()
        return
    stacks = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=25, file=stacks)
    closing.cancel()
    pytest.fail(f"{test}: stopping the site took over {seconds}s; tasks:\n{stacks.getvalue()}")


@pytest.fixture
async def site(make_site: MakeSite) -> Site:
    return await make_site()


@pytest.fixture(params=REQUESTER_KINDS)
def requester_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind
