"""The in-process bus's subscription: one flag, one future and one timer per wait."""

from __future__ import annotations

import asyncio

from qrlogin.events.memory import MemoryBus


async def test_a_publish_during_a_wait_wakes_it_at_once() -> None:
    bus = MemoryBus()
    with bus.subscribe("lr:a") as sub:
        waiting = asyncio.ensure_future(sub.wait(30))
        await asyncio.sleep(0)
        await bus.publish("lr:a", 2)
        assert await asyncio.wait_for(waiting, 1) is True


async def test_a_publish_before_the_wait_is_kept_for_it_once() -> None:
    bus = MemoryBus()
    with bus.subscribe("lr:a") as sub:
        await bus.publish("lr:a", 2)
        await bus.publish("lr:a", 3)
        assert await asyncio.wait_for(sub.wait(30), 1) is True
        assert await sub.wait(0.01) is False  # both publishes were one wake-up


async def test_a_wait_without_a_publish_times_out_false() -> None:
    bus = MemoryBus()
    with bus.subscribe("lr:a") as sub, bus.subscribe("lr:b") as other:
        await bus.publish("lr:b", 2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await sub.wait(0.05) is False
        assert 0.04 <= loop.time() - started < 1
        assert await other.wait(0) is True


async def test_a_cancelled_wait_leaves_the_subscription_usable() -> None:
    bus = MemoryBus()
    with bus.subscribe("lr:a") as sub:
        waiting = asyncio.ensure_future(sub.wait(30))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert waiting.cancelled()
        await bus.publish("lr:a", 2)
        assert await asyncio.wait_for(sub.wait(30), 1) is True
    assert bus.subscriber_count() == 0
