"""Fixtures for handshake tests: a real qrlogin on SQLite in tmp_path with a FrozenClock, on
each adapter of the identity ports in turn (``identity``: "builtin" or "host", world.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from .world import IDENTITIES, IdentityKind, SignedIn, World, open_world, sign_in


@pytest.fixture(params=IDENTITIES)
def identity(request: pytest.FixtureRequest) -> IdentityKind:
    """Whose users and sessions the handshake runs on: qrlogin's own, or the example host
    app's. A test about the built-in ones alone says ``@builtin_only``."""
    kind: IdentityKind = request.param
    return kind


@pytest.fixture
async def make_world(
    tmp_path: Path, identity: IdentityKind
) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    """Factory: ``await make_world(confirm="code" | "tap" | "auto")``; each has its own data dir."""
    worlds: list[World] = []

    async def make(*, confirm: str = "code") -> World:
        data_dir = tmp_path / f"world{len(worlds)}"
        world = await open_world(data_dir, confirm=confirm, identity=identity)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        await world.close()


@pytest.fixture
async def world(make_world: Callable[..., Awaitable[World]]) -> World:
    """qrlogin with confirm codes on (the default)."""
    return await make_world()


@pytest.fixture
async def alice(world: World) -> SignedIn:
    return await sign_in(world, "Alice")


@pytest.fixture
async def bob(world: World) -> SignedIn:
    return await sign_in(world, "Bob", ip="192.0.2.44")
