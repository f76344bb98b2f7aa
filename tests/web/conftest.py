"""In-process fixtures for the JSON API and the pages: the app runs on httpx's ASGI transport
with its lifespan entered by hand, so migrations run and nothing listens on a port.

Fixtures
--------
make_site(**settings)   async factory: a running app with its own data dir (see ``Site``)
site                    one running app: confirm="code", dev=True, a FrozenClock
requester_kind          parametrized "api" | "browser" (STYLE.md: one API, two kinds of client)

Mail goes to the dev outbox (no SMTP here), so codes and link tokens are read from
``site.outbox``. Helpers (Site, Requester, Approver, parsers) live in web_support.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from web_support import PUBLIC_URL, REQUESTER_KINDS, Site

from qrlogin.config import Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.policy import Policy
from qrlogin.web.app import create_app

MakeSite = Callable[..., Awaitable[Site]]


@pytest.fixture
async def make_site(tmp_path: Path) -> AsyncIterator[MakeSite]:
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
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"site{made}",
            "public_url": PUBLIC_URL,
            "confirm": "code",
            "dev": True,
            **overrides,
        }
        settings = Settings(**values)
        if clock == "frozen":
            clock = FrozenClock()
        app = create_app(settings, clock=clock, policy=policy)
        await stack.enter_async_context(app.router.lifespan_context(app))
        return Site(app, clock, settings.public_url, stack)

    async with stack:
        yield make


@pytest.fixture
async def site(make_site: MakeSite) -> Site:
    return await make_site()


@pytest.fixture(params=REQUESTER_KINDS)
def requester_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind
