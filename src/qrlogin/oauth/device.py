"""How often a device may poll the token endpoint (RFC 8628 §3.5): one poll per ``interval``
per device code, else ``slow_down``. Counted in Redis when configured (every instance sees
the same polls), in this process's memory otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("qrlogin.oauth")

# polls arrive a little early now and then (a client's timer, the network): this much of the
# interval is forgiven
TOLERANCE = 0.2


class PollGate:
    def __init__(
        self,
        interval: float,
        redis_url: str | None = None,
        prefix: str = "qrlogin",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.window = max(0.0, interval * (1 - TOLERANCE))
        self.prefix = prefix
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._next_prune = 0.0
        self._redis = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(redis_url)

    async def too_soon(self, key: str) -> bool:
        """Record a poll for ``key``; whether it came sooner than the interval allows."""
        if self.window <= 0:
            return False
        if self._redis is not None:
            try:
                ms = max(1, int(self.window * 1000))
                fresh = await self._redis.set(f"{self.prefix}:poll:{key}", b"1", nx=True, px=ms)
                return not fresh
            except Exception:  # Redis away: count here meanwhile
                log.warning("poll counter: Redis unavailable; counting in memory")
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.window:
            return True
        self._last[key] = now
        if now >= self._next_prune:  # forget devices that stopped polling, now and then
            cutoff = now - self.interval * 2
            self._last = {k: t for k, t in self._last.items() if t >= cutoff}
            # once per interval at most: the sweep is O(n), so it must not run every poll
            self._next_prune = now + max(self.interval, 1.0) * 2
        return False

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
