"""changes(): the wait loop behind SSE and long-polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from qrlogin.core.machine import Status
from qrlogin.core.tokens import derive_handle
from qrlogin.handshake.watch import Watch, changes
from qrlogin.store.records import LoginRequest

from .world import DESKTOP, SignedIn, World

WAIT = 5.0  # far longer than any wake-up below needs; hitting it means the wake-up never came


async def subscribed(world: World, stream: AsyncIterator[LoginRequest | None]) -> asyncio.Task:  # type: ignore[type-arg]
    """Start waiting on the stream's next item, and return once it is listening on the bus."""
    before = world.services.bus.subscriber_count()  # type: ignore[attr-defined]
    task = asyncio.ensure_future(anext(stream))
    for _ in range(100):
        await asyncio.sleep(0)
        if world.services.bus.subscriber_count() > before:  # type: ignore[attr-defined]
            return task
    raise AssertionError("changes() never subscribed")


async def test_changes_yields_the_new_state_on_a_publish(world: World, alice: SignedIn) -> None:
    created = await world.lr.create(DESKTOP)
    stream = changes(world.lr, created.request, heartbeat=60)  # only an event can wake it soon
    try:
        waiting = await subscribed(world, stream)
        await world.lr.scan(world.lr.handle(created.request), alice.approver)
        rec = await asyncio.wait_for(waiting, WAIT)
        assert rec is not None
        assert rec.status == Status.SCANNED.value
        assert rec.approver_session_id == alice.session.id
    finally:
        await stream.aclose()
    assert world.services.bus.subscriber_count() == 0  # type: ignore[attr-defined]


async def test_changes_yields_none_on_a_silent_heartbeat(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    stream = changes(world.lr, created.request, heartbeat=0.05)
    try:
        assert await asyncio.wait_for(anext(stream), WAIT) is None
        assert await asyncio.wait_for(anext(stream), WAIT) is None
    finally:
        await stream.aclose()


async def test_changes_recovers_a_lost_event_at_the_next_heartbeat(
    world: World, alice: SignedIn
) -> None:
    created = await world.lr.create(DESKTOP)
    # the scan happens before anyone listens, so its event reaches no one
    await world.lr.scan(world.lr.handle(created.request), alice.approver)
    stream = changes(world.lr, created.request, heartbeat=0.05)
    try:
        rec = await asyncio.wait_for(anext(stream), WAIT)
        assert rec is not None and rec.status == Status.SCANNED.value
    finally:
        await stream.aclose()


async def test_changes_ends_after_a_terminal_state(world: World, alice: SignedIn) -> None:
    created = await world.lr.create(DESKTOP)
    stream = changes(world.lr, created.request, heartbeat=60)
    waiting = await subscribed(world, stream)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    await world.lr.cancel(rec, DESKTOP)
    final = await asyncio.wait_for(waiting, WAIT)
    assert final is not None and final.status == Status.CANCELLED.value
    assert await collect(stream) == []
    assert world.services.bus.subscriber_count() == 0  # type: ignore[attr-defined]


async def collect(stream: AsyncIterator[LoginRequest | None]) -> list[LoginRequest | None]:
    """Everything left in the stream; fails (rather than hangs) if it does not end."""

    async def drain() -> list[LoginRequest | None]:
        return [item async for item in stream]

    return await asyncio.wait_for(drain(), WAIT)


async def test_changes_reports_expiry_without_any_write_and_ends(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    stream = changes(world.lr, created.request, heartbeat=0.05)
    assert await asyncio.wait_for(anext(stream), WAIT) is None  # listening, nothing happened
    world.clock.advance(300)
    items = await collect(stream)
    assert len(items) == 1
    assert items[0] is not None
    assert items[0].status_at(world.clock.now()) is Status.EXPIRED
    assert (await world.row(created.request.id)).status == Status.PENDING.value  # no sweep ran


async def test_changes_yields_the_request_when_its_handle_rotates(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    stream = changes(world.lr, created.request, heartbeat=0.05)
    try:
        world.clock.advance(30)
        rec = await asyncio.wait_for(anext(stream), WAIT)
        assert rec is not None
        assert rec.version == created.request.version  # nothing was written to rotate it
        assert rec.status == Status.PENDING.value
        key = world.services.key
        assert world.lr.qr_url(rec).endswith("/q/" + derive_handle(key, rec.id, 1))
        assert not world.lr.qr_url(rec).endswith("/q/" + derive_handle(key, rec.id, 0))
    finally:
        await stream.aclose()


async def test_changes_ends_at_until_without_yielding(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    stream = changes(world.lr, created.request, heartbeat=0.05, until=world.clock.now())
    assert await collect(stream) == []


async def test_a_watch_holds_no_record_while_it_waits(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    watch = Watch(world.lr, created.request, heartbeat=0.05)
    try:
        assert await asyncio.wait_for(anext(watch), WAIT) is None
        held = [getattr(watch, name) for name in Watch.__slots__]
        assert not any(isinstance(value, LoginRequest) for value in held), held
        assert created.request.id in held
    finally:
        watch.close()
    assert world.services.bus.subscriber_count() == 0  # type: ignore[attr-defined]
    assert await collect(watch) == []  # closed: nothing more


async def test_a_watch_of_a_finished_request_ends_without_subscribing(world: World) -> None:
    created = await world.lr.create(DESKTOP)
    rec = await world.lr.for_requester(created.request.id, created.secret)
    cancelled = await world.lr.cancel(rec, DESKTOP)
    watch = Watch(world.lr, cancelled, heartbeat=60)
    assert await collect(watch) == []
    assert world.services.bus.subscriber_count() == 0  # type: ignore[attr-defined]
