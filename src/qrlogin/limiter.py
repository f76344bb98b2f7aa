"""Rate limits (DESIGN.md requirement 6), on the ``limits`` library.

Each rule is reserved *before* the work it guards: ``hit`` is atomic, so under any number of
concurrent callers no more than the allowed number get through. Rules reserved together are
all tested before any is hit (``reserve_all``): a refused call spends no budget. The
storage is in-process memory; a Redis URI moves it to Redis for many instances.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from limits.util import WindowStats

from qrlogin.core.errors import RateLimited
from qrlogin.core.network import rate_key


@dataclass(frozen=True)
class Limits:
    """Rules in the ``limits`` notation (``N per M unit``). Keys are the rule names."""

    create_per_ip: str = "60 per minute"
    create_global: str = "5000 per second"
    pending_per_ip: int = 30  # live login requests one IP may hold at once
    link_per_account: str = "10 per 15 minutes"  # user codes typed by one approver account
    link_per_ip: str = "30 per minute"
    link_global: str = "500 per second"
    email_start_per_ip: str = "20 per minute"
    # codes one browser (or one IP, without a browser cookie) may ask for one address
    email_start_per_address_browser: str = "5 per 15 minutes"
    # all browsers that never signed in to the address, together: bounds the mail a stranger
    # can send it; the owner's known browsers are not held to it (DESIGN.md requirement 12)
    email_start_per_address: str = "10 per hour"
    email_start_global: str = "200 per second"
    email_verify_per_ip: str = "30 per minute"
    email_verify_global: str = "500 per second"
    # anonymous passkey sign-in options: each one writes a challenge
    passkey_options_per_ip: str = "60 per minute"
    passkey_options_global: str = "1000 per second"


_NO_LIMIT = "1000000000 per second"
UNLIMITED = Limits(
    create_per_ip=_NO_LIMIT,
    create_global=_NO_LIMIT,
    pending_per_ip=10**9,
    link_per_account=_NO_LIMIT,
    link_per_ip=_NO_LIMIT,
    link_global=_NO_LIMIT,
    email_start_per_ip=_NO_LIMIT,
    email_start_per_address_browser=_NO_LIMIT,
    email_start_per_address=_NO_LIMIT,
    email_start_global=_NO_LIMIT,
    email_verify_per_ip=_NO_LIMIT,
    email_verify_global=_NO_LIMIT,
    passkey_options_per_ip=_NO_LIMIT,
    passkey_options_global=_NO_LIMIT,
)  # QRLOGIN_RATE_LIMITS=off: for benchmarks on loopback, never for production


class Windows(Protocol):
    """What the limiter asks of its counters (``limits``' moving-window strategy has it)."""

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats: ...


class LocalWindows:
    """Moving windows in this process: per key, the times of the hits still in the window,
    oldest first. A check drops the expired ones from the front and compares the count, so
    each call is O(expired) with nothing but a ``deque``: ``limits``' in-memory storage, which
    this replaces, expired entries in a thread (``asyncio.to_thread``) under an
    ``asyncio.Lock`` and inserted into sorted lists, 150–300 µs a call under load (issue 15).
    Nothing here awaits, so concurrent callers on the event loop see exact counts. Keys that
    emptied are swept every ``sweep_every`` hits, so per-address keys do not pile up."""

    def __init__(self, sweep_every: int = 10_000) -> None:
        self._hits: dict[str, tuple[float, deque[float]]] = {}
        self.sweep_every = sweep_every
        self._until_sweep = sweep_every

    def _live(self, item: RateLimitItem, identifiers: tuple[str, ...], now: float) -> deque[float]:
        key = item.key_for(*identifiers)
        entry = self._hits.get(key)
        if entry is None:
            entry = self._hits[key] = (float(item.get_expiry()), deque())
        expiry, times = entry
        while times and times[0] <= now - expiry:
            times.popleft()
        return times

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        now = time.time()
        self._until_sweep -= 1
        if self._until_sweep <= 0:  # before this key is looked at: it may be swept
            self._sweep(now)
        times = self._live(item, identifiers, now)
        if len(times) + cost > item.amount:
            return False
        times.extend([now] * cost)
        return True

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return len(self._live(item, identifiers, time.time())) + cost <= item.amount

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        now = time.time()
        times = self._live(item, identifiers, now)
        reset = (times[0] if times else now) + item.get_expiry()
        return WindowStats(reset, max(0, item.amount - len(times)))

    def _sweep(self, now: float) -> None:
        self._until_sweep = self.sweep_every
        for key in [k for k, (exp, t) in self._hits.items() if not t or t[-1] <= now - exp]:
            del self._hits[key]

    def __len__(self) -> int:
        return len(self._hits)


class RateLimiter:
    """Shared counters in Redis when configured. While Redis is away every rule keeps
    counting per instance (in memory), and Redis is not asked again for ``retry_after_failure``
    seconds, so no request waits on a dead connection over and over."""

    retry_after_failure = 2.0

    def __init__(
        self,
        rules: Limits,
        redis_url: str | None = None,
        prefix: str = "qrlogin",
        on_error: Callable[[], None] | None = None,
        on_refusal: Callable[[str], None] | None = None,
        ipv6_prefix: int = 64,
    ) -> None:
        self.rules = rules
        # QRLOGIN_RATE_LIMITS=off: nothing is counted at all (not even into the void)
        self.off = rules == UNLIMITED
        self.ipv6_prefix = ipv6_prefix
        self.local: Windows = LocalWindows()
        self.limiter: Windows = self.local
        if redis_url:
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            # short timeouts and one immediate retry (for a pooled connection that died with a
            # Redis restart): redis-py's default backoff would hold each request for seconds
            storage = storage_from_string(
                uri,
                implementation="redispy",
                key_prefix=f"{prefix}:limits",
                socket_timeout=1,
                socket_connect_timeout=1,
                retry=Retry(NoBackoff(), 1),  # type: ignore[arg-type]
            )
            assert isinstance(storage, Storage)
            self.limiter = MovingWindowRateLimiter(storage)
        self._items: dict[str, RateLimitItem] = {}
        self._on_error = on_error or (lambda: None)
        self._shared_down_until = 0.0  # monotonic time before which Redis is not asked
        self.refusals = 0
        self._on_refusal = on_refusal

    def ip_key(self, ip: str) -> str:
        """The identifier a per-IP rule counts ``ip`` under: the address, or its IPv6
        network (``core.network.rate_key``)."""
        return rate_key(ip, self.ipv6_prefix)

    def _item(self, rule: str) -> RateLimitItem:
        item = self._items.get(rule)
        if item is None:
            item = self._items[rule] = parse(str(getattr(self.rules, rule)))
        return item

    async def _ask(
        self, spend: bool, item: RateLimitItem, rule: str, identifiers: tuple[str, ...]
    ) -> tuple[bool, Windows]:
        """Whether ``rule`` lets one more through (``spend``: and count it), and the counters
        that answered: the shared ones, or this instance's while Redis is away."""
        limiter = self.limiter
        if limiter is not self.local and time.monotonic() < self._shared_down_until:
            limiter = self.local
        ask = limiter.hit if spend else limiter.test
        try:
            return await ask(item, rule, *identifiers), limiter
        except Exception:
            # shared counters are away (Redis down): keep limiting, per instance, meanwhile
            self._on_error()
            self._shared_down_until = time.monotonic() + self.retry_after_failure
            ask = self.local.hit if spend else self.local.test
            return await ask(item, rule, *identifiers), self.local

    async def _refuse(
        self,
        limiter: Windows,
        item: RateLimitItem,
        rule: str,
        identifiers: tuple[str, ...],
    ) -> NoReturn:
        self.refusals += 1
        if self._on_refusal is not None:
            self._on_refusal(rule)
        stats = await limiter.get_window_stats(item, rule, *identifiers)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Too many attempts. Wait {retry} seconds and try again.", retry_after=retry
        )

    async def reserve(self, rule: str, *identifiers: str) -> None:
        """Count one attempt against ``rule`` for ``identifiers``, or raise ``RateLimited``
        with the seconds until the window lets the next one through."""
        await self.reserve_all((rule, identifiers))

    async def reserve_all(self, *checks: tuple[str, tuple[str, ...]]) -> None:
        """Count one attempt against every rule, or against none: a call refused by one rule
        (say per IP) spends no other budget (say the account's), so a stranger's refused calls
        cannot use up an owner's allowance (DESIGN.md requirement 12).

        Every rule is tested first and only then are all hit. Between the two steps a
        concurrent caller may take the last slot of a rule: that hit then fails and the call is
        refused, with the rules hit before it spent. So a race can cost one slot per racing
        call, never let a call through beyond a limit (``hit`` stays the atomic gate)."""
        if self.off:
            return
        asked = [(self._item(rule), rule, identifiers) for rule, identifiers in checks]
        # one rule alone needs no test: a refused hit counts nothing
        for item, rule, identifiers in asked if len(asked) > 1 else ():
            allowed, limiter = await self._ask(False, item, rule, identifiers)
            if not allowed:
                await self._refuse(limiter, item, rule, identifiers)
        for item, rule, identifiers in asked:
            allowed, limiter = await self._ask(True, item, rule, identifiers)
            if not allowed:
                await self._refuse(limiter, item, rule, identifiers)
