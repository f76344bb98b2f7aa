"""The Redis and PostgreSQL event buses between two bus objects (two "instances"): delivery,
and what happens when the bus's connection drops and comes back.

Redis runs as a private ``redis-server`` that the test kills and starts again on the same
port. PostgreSQL cannot be stopped here (others use it), so its outage is made by closing the
test database to new connections and terminating the listener's backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from qrlogin.events.memory import MemorySubscription
from qrlogin.events.port import login_request_channel
from qrlogin.events.postgres import LISTENER_NAME, PostgresBus
from qrlogin.events.redis import RedisBus
from qrlogin.events.remote import RemoteBus
from scale.scale_support import RedisServer, asyncpg_url, database_name, eventually, pg_admin

WAIT = 10.0  # generous bound for anything that should take milliseconds


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.kill()


class Errors:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@contextlib.asynccontextmanager
async def running(*buses: RemoteBus) -> AsyncIterator[None]:
    try:
        for bus in buses:
            await bus.start()
        yield
    finally:
        for bus in buses:
            await bus.stop()


async def healthy(bus: RemoteBus) -> bool:
    return await bus.healthy()


async def unhealthy(bus: RemoteBus) -> bool:
    return not await bus.healthy()


async def woken(sub: MemorySubscription, timeout: float = WAIT) -> bool:
    return await sub.wait(timeout)


def drain(*subs: MemorySubscription) -> None:
    """Forget wake-ups so far (``wait(0)`` consumes a pending one)."""
    for sub in subs:
        sub._notified = False


async def assert_delivers(sender: RemoteBus, receiver: RemoteBus, channel: str) -> None:
    """A publish on ``sender`` wakes a subscriber of ``channel`` on ``receiver`` (and only
    of that channel)."""
    with receiver.subscribe(channel) as sub, receiver.subscribe(channel + "x") as other:
        await sender.publish(channel, 2)
        assert await woken(sub), f"{channel} was not delivered"
        assert not other._notified, "a subscriber of another channel was woken"


# --------------------------------------------------------------------------- both kinds


@pytest.fixture
def redis_buses(redis_server: RedisServer) -> Callable[..., Any]:
    prefix = f"qrlt{uuid.uuid4().hex[:8]}"

    def make(errors: Errors | None = None, prefix: str = prefix) -> RedisBus:
        return RedisBus(redis_server.url, prefix, errors)

    return make


@pytest.fixture
def pg_buses(pg_url: str) -> Callable[..., Any]:
    prefix = f"qrlt{uuid.uuid4().hex[:8]}"

    def make(errors: Errors | None = None, prefix: str = prefix) -> PostgresBus:
        return PostgresBus(asyncpg_url(pg_url), prefix, errors)

    return make


@pytest.fixture(params=["redis", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def make_bus(kind: str, request: pytest.FixtureRequest) -> Callable[..., RemoteBus]:
    name = "redis_buses" if kind == "redis" else "pg_buses"
    factory: Callable[..., RemoteBus] = request.getfixturevalue(name)
    return factory


async def test_a_publish_on_one_instance_wakes_a_subscriber_on_the_other(
    make_bus: Callable[..., RemoteBus],
) -> None:
    a, b = make_bus(), make_bus()
    async with running(a, b):
        assert await a.healthy() and await b.healthy()
        channel = login_request_channel("lr_one")
        await assert_delivers(a, b, channel)
        await assert_delivers(b, a, channel)
        # the publishing instance's own listeners are woken too
        with a.subscribe(channel) as own:
            await a.publish(channel, 3)
            assert await woken(own)


async def test_every_subscriber_of_a_channel_is_woken_once_per_event(
    make_bus: Callable[..., RemoteBus],
) -> None:
    a, b = make_bus(), make_bus()
    async with running(a, b):
        subs = [b.subscribe("user:u1") for _ in range(50)]
        try:
            await a.publish("user:u1", 1)
            assert all(await asyncio.gather(*(woken(s) for s in subs)))
            assert b.subscriber_count() == 50
        finally:
            for sub in subs:
                sub.close()
        assert b.subscriber_count() == 0


async def test_buses_with_other_prefixes_do_not_hear_each_other(
    make_bus: Callable[..., RemoteBus],
) -> None:
    a, b = make_bus(), make_bus(prefix=f"qrlt{uuid.uuid4().hex[:8]}")
    c = make_bus()  # a's deployment: proves the event was sent before b is asked
    async with running(a, b, c):
        with b.subscribe("lr:x") as foreign, c.subscribe("lr:x") as same:
            await a.publish("lr:x", 1)
            assert await woken(same)
            await c.publish("lr:y", 1)  # a later event that b does not hear either
            assert not foreign._notified


# --------------------------------------------------------------------------- outages


async def check_outage_and_recovery(
    a: RemoteBus,
    b: RemoteBus,
    errors: Errors,
    go_away: Callable[[], Any],
    come_back: Callable[[], Any],
) -> None:
    """The shared scenario: the bus's server goes away and comes back."""
    subs = [b.subscribe(login_request_channel(f"lr_{i}")) for i in range(5)]
    subs.append(b.subscribe("user:u1"))
    try:
        await go_away()
        await eventually(lambda: unhealthy(b), WAIT, "b reports the bus unhealthy")
        await eventually(lambda: unhealthy(a), WAIT, "a reports the bus unhealthy")
        assert errors.count >= 1, "a lost connection is counted as a bus error"

        # publishing while the bus is away never raises, and still wakes local listeners
        with a.subscribe("lr:local") as local:
            await asyncio.wait_for(a.publish("lr:local", 1), WAIT)
            assert await woken(local)
        await asyncio.wait_for(a.publish("lr:local", 2), WAIT)  # again: no raise, no hang

        drain(*subs)
        await come_back()
        await eventually(lambda: healthy(b), WAIT, "b reconnects by itself")
        await eventually(lambda: healthy(a), WAIT, "a reconnects by itself")

        # every listener on b is woken once the bus is back: events sent meanwhile are lost,
        # so each re-reads what it waits on
        results = await asyncio.gather(*(woken(s) for s in subs))
        assert all(results), results

        # and events flow again, both ways
        await assert_delivers(a, b, login_request_channel("lr_after"))
        await assert_delivers(b, a, login_request_channel("lr_after"))
    finally:
        for sub in subs:
            sub.close()


async def test_redis_bus_survives_a_redis_restart(
    redis_server: RedisServer, redis_buses: Callable[..., RedisBus]
) -> None:
    errors = Errors()
    a, b = redis_buses(errors), redis_buses(errors)

    async def go_away() -> None:
        await asyncio.to_thread(redis_server.kill)

    async def come_back() -> None:
        await asyncio.to_thread(redis_server.start)

    async with running(a, b):
        await assert_delivers(a, b, "lr:before")
        await check_outage_and_recovery(a, b, errors, go_away, come_back)


async def test_redis_bus_survives_two_outages_in_a_row(
    redis_server: RedisServer, redis_buses: Callable[..., RedisBus]
) -> None:
    errors = Errors()
    a, b = redis_buses(errors), redis_buses(errors)

    async def go_away() -> None:
        await asyncio.to_thread(redis_server.kill)

    async def come_back() -> None:
        await asyncio.to_thread(redis_server.start)

    async with running(a, b):
        for _ in range(2):
            await check_outage_and_recovery(a, b, errors, go_away, come_back)


async def test_a_redis_bus_started_while_redis_is_down_connects_later(
    redis_server: RedisServer, redis_buses: Callable[..., RedisBus]
) -> None:
    await asyncio.to_thread(redis_server.kill)
    a, b = redis_buses(), redis_buses()
    a.reconnect_delays = b.reconnect_delays = (0.1,)
    b_start = asyncio.create_task(b.start())  # waits a few seconds for Redis, then gives up
    try:
        await asyncio.wait_for(asyncio.shield(b_start), WAIT)
        assert not await b.healthy()
        with b.subscribe("lr:early") as early:
            await asyncio.to_thread(redis_server.start)
            await a.start()
            await eventually(lambda: healthy(b), WAIT, "b connects once Redis is there")
            assert await woken(early), "listeners that waited through the outage re-read"
            await assert_delivers(a, b, "lr:later")
    finally:
        await a.stop()
        await b.stop()


async def test_postgres_bus_survives_its_listener_being_terminated(
    pg_url: str, pg_buses: Callable[..., PostgresBus]
) -> None:
    errors = Errors()
    a, b = pg_buses(errors), pg_buses(errors)
    db = database_name(pg_url)

    async def go_away() -> None:
        # no new connections to the database, and the listeners' backends are gone
        await pg_admin(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        await pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name = $2",
            db,
            LISTENER_NAME,
        )

    async def come_back() -> None:
        await pg_admin(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')

    async with running(a, b):
        await assert_delivers(a, b, "lr:before")
        try:
            await check_outage_and_recovery(a, b, errors, go_away, come_back)
        finally:
            await pg_admin(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')


async def test_postgres_bus_reconnects_after_a_plain_backend_kill(
    pg_url: str, pg_buses: Callable[..., PostgresBus]
) -> None:
    """The LISTEN connection is killed while the server stays up: the bus reconnects at
    once and wakes its listeners (an event may have been lost with the connection)."""
    errors = Errors()
    a, b = pg_buses(errors), pg_buses(errors)
    db = database_name(pg_url)
    async with running(a, b):
        with b.subscribe("lr:waiting") as waiting:
            killed = await pg_admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name = $2 AND query LIKE 'LISTEN%'",
                db,
                LISTENER_NAME,
            )
            assert len(killed) == 2, "both listeners were found by their LISTEN"
            assert await woken(waiting), "the reconnected bus woke its listener"
            await eventually(lambda: healthy(b), WAIT, "b reconnected")
            await eventually(lambda: healthy(a), WAIT, "a reconnected")
            assert errors.count >= 2
        await assert_delivers(a, b, "lr:after")
