"""The rate limiter (DESIGN.md requirement 6): refusals carry a retry time, and counters stay
exact however many callers race for the same rule."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from limits import parse

from qrlogin import limiter as limiter_module
from qrlogin.core.errors import RateLimited
from qrlogin.limiter import UNLIMITED, Limits, LocalWindows, RateLimiter


def limiter(**rules: str | int) -> RateLimiter:
    return RateLimiter(replace(Limits(), **rules))


async def test_reserve_refuses_past_the_limit_with_retry_after() -> None:
    rl = limiter(create_per_ip="3 per minute")
    for _ in range(3):
        await rl.reserve("create_per_ip", "10.0.0.1")

    with pytest.raises(RateLimited) as caught:
        await rl.reserve("create_per_ip", "10.0.0.1")

    exc = caught.value
    assert exc.status == 429
    assert exc.error == "rate_limited"
    assert isinstance(exc.retry_after, int)
    assert 1 <= exc.retry_after <= 60
    assert str(exc.retry_after) in exc.message
    assert exc.to_dict() == {"error": "rate_limited", "message": exc.message}
    assert rl.refusals == 1


async def test_identifiers_and_rules_count_separately() -> None:
    rl = limiter(create_per_ip="2 per minute", link_per_ip="2 per minute")
    for _ in range(2):
        await rl.reserve("create_per_ip", "10.0.0.1")
    with pytest.raises(RateLimited):
        await rl.reserve("create_per_ip", "10.0.0.1")

    # another IP, and another rule for the same IP, have their own counters
    await rl.reserve("create_per_ip", "10.0.0.2")
    await rl.reserve("link_per_ip", "10.0.0.1")
    await rl.reserve("link_per_ip", "10.0.0.1")
    with pytest.raises(RateLimited):
        await rl.reserve("link_per_ip", "10.0.0.1")
    assert rl.refusals == 2


async def test_reserve_all_stops_at_the_first_refusal() -> None:
    rl = limiter(link_per_account="1 per minute", link_per_ip="5 per minute")
    checks = (("link_per_account", ("usr_1",)), ("link_per_ip", ("10.0.0.1",)))
    await rl.reserve_all(*checks)
    with pytest.raises(RateLimited):
        await rl.reserve_all(*checks)

    # the refused call did not spend the per-IP allowance: 5 - 1 are left
    stats = await rl.limiter.get_window_stats(parse("5 per minute"), "link_per_ip", "10.0.0.1")
    assert stats.remaining == 4


async def test_counters_are_exact_under_100_concurrent_reserves() -> None:
    rl = limiter(email_verify_per_ip="10 per minute")

    async def attempt() -> bool:
        try:
            await rl.reserve("email_verify_per_ip", "192.0.2.7")
        except RateLimited as exc:
            assert exc.retry_after is not None and exc.retry_after >= 1
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(100)))

    assert results.count(True) == 10
    assert results.count(False) == 90
    assert rl.refusals == 90
    stats = await rl.limiter.get_window_stats(
        parse("10 per minute"), "email_verify_per_ip", "192.0.2.7"
    )
    assert stats.remaining == 0


async def test_100_concurrent_reserves_under_a_high_limit_count_exactly_100() -> None:
    rl = limiter(link_global="1000 per minute")

    await asyncio.gather(*(rl.reserve("link_global") for _ in range(100)))

    stats = await rl.limiter.get_window_stats(parse("1000 per minute"), "link_global")
    assert stats.remaining == 900
    assert rl.refusals == 0


async def test_unlimited_never_refuses() -> None:
    rl = RateLimiter(UNLIMITED)
    await asyncio.gather(
        *(rl.reserve("email_start_per_address", "a@example.com") for _ in range(200))
    )
    assert rl.refusals == 0


async def test_a_refused_call_still_spends_no_other_budget() -> None:
    """Issue 11 item 7: a call refused per IP used to spend the account's budget first."""
    rl = limiter(link_per_account="3 per minute", link_per_ip="1 per minute")
    checks = (("link_per_account", ("usr_1",)), ("link_per_ip", ("203.0.113.9",)))
    await rl.reserve_all(*checks)  # spends the IP's only one and one of the account's three
    for _ in range(5):
        with pytest.raises(RateLimited):
            await rl.reserve_all(*checks)

    # the account still has exactly two left, from another address
    def elsewhere(ip: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (("link_per_account", ("usr_1",)), ("link_per_ip", (ip,)))

    for n in range(2):
        await rl.reserve_all(*elsewhere(f"198.51.100.{n}"))
    with pytest.raises(RateLimited):
        await rl.reserve_all(*elsewhere("198.51.100.9"))


async def test_racing_reserve_all_never_lets_more_through_than_a_rule_allows() -> None:
    rl = limiter(link_per_account="5 per minute", link_per_ip="1000 per minute")
    checks = (("link_per_ip", ("203.0.113.9",)), ("link_per_account", ("usr_1",)))

    async def one() -> bool:
        try:
            await rl.reserve_all(*checks)
        except RateLimited:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert sum(results) == 5


# -- LocalWindows: one instance's counters, plain and in process ---------------------------------


class _Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_local_windows_move_with_time_and_tell_when_the_next_slot_frees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(limiter_module.time, "time", clock.time)
    windows = LocalWindows()
    rule = parse("3 per minute")

    assert [await windows.hit(rule, "ip", "1") for _ in range(4)] == [True, True, True, False]
    assert await windows.test(rule, "ip", "2")  # another key counts apart
    clock.now += 30
    stats = await windows.get_window_stats(rule, "ip", "1")
    assert (stats.reset_time, stats.remaining) == (clock.now - 30 + 60, 0)
    clock.now += 30  # the first three hits leave the window together
    assert await windows.test(rule, "ip", "1")
    assert await windows.hit(rule, "ip", "1")
    assert (await windows.get_window_stats(rule, "ip", "1")).remaining == 2


async def test_local_windows_sweep_keys_that_emptied(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(limiter_module.time, "time", clock.time)
    windows = LocalWindows(sweep_every=100)
    rule = parse("5 per second")
    for i in range(99):
        await windows.hit(rule, "ip", str(i))
    assert len(windows) == 99
    clock.now += 2
    await windows.hit(rule, "ip", "fresh")  # the 100th hit sweeps

    assert len(windows) == 1


async def test_the_limiter_counts_in_process_without_a_thread() -> None:
    import threading

    before = threading.active_count()
    limiter = RateLimiter(Limits())

    for _ in range(500):
        await limiter.reserve_all(("create_global", ()))

    assert isinstance(limiter.local, LocalWindows)
    assert threading.active_count() == before
