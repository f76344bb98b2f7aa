"""The device grant's poll counter (oauth/device.py): in memory, and in Redis across
instances."""

from __future__ import annotations

import uuid

import pytest

from qrlogin.oauth.device import PollGate


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_one_poll_per_interval_with_a_little_tolerance() -> None:
    ticks = Ticks()
    gate = PollGate(5.0, monotonic=ticks)
    assert await gate.too_soon("a") is False
    ticks.now += 1
    assert await gate.too_soon("a") is True
    assert await gate.too_soon("b") is False  # per device code
    ticks.now += 3.1  # 4.1 s after the first: early by less than the tolerance
    assert await gate.too_soon("a") is False
    ticks.now += 0.5
    assert await gate.too_soon("a") is True  # measured from the poll that was answered


async def test_interval_zero_never_says_slow_down() -> None:
    gate = PollGate(0.0)
    assert [await gate.too_soon("a") for _ in range(3)] == [False, False, False]


@pytest.mark.servers
async def test_instances_sharing_redis_count_the_same_polls() -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    one = PollGate(30.0, "redis://127.0.0.1:6379/0", prefix)
    two = PollGate(30.0, "redis://127.0.0.1:6379/0", prefix)
    try:
        assert await one.too_soon("dev") is False
        assert await two.too_soon("dev") is True  # the other instance saw the first poll
        assert await two.too_soon("other") is False
    finally:
        await one.close()
        await two.close()


async def test_devices_that_stopped_polling_are_forgotten_but_not_on_every_poll() -> None:
    ticks = Ticks()
    gate = PollGate(5.0, monotonic=ticks)
    for i in range(20_000):
        assert await gate.too_soon(f"dev{i}") is False
    held = gate._last
    assert len(held) == 20_000  # all polled within the interval: nothing to forget
    ticks.now += 0.001
    await gate.too_soon("one-more")
    assert gate._last is held and len(held) == 20_001  # not rebuilt on every poll
    ticks.now += 11  # past two intervals: the next poll sweeps the silent ones out
    await gate.too_soon("dev0")
    assert set(gate._last) == {"dev0"}
