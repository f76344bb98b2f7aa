"""In-process event bus: the default for a single instance."""

from __future__ import annotations

import asyncio


def _time_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class MemorySubscription:
    """One waiting listener: a flag, and while it waits one future and one timer. No task,
    no queue, no ``asyncio.Event`` (its deque alone is 760 bytes, and thousands of streams
    each hold a subscription)."""

    __slots__ = ("_bus", "_channel", "_notified", "_waiter")

    def __init__(self, bus: MemoryBus, channel: str) -> None:
        self._bus = bus
        self._channel = channel
        self._notified = False
        self._waiter: asyncio.Future[None] | None = None

    async def wait(self, timeout: float) -> bool:
        if not self._notified:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout, _time_up, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self._notified:
                return False
        self._notified = False
        return True

    def notify(self) -> None:
        self._notified = True
        if self._waiter is not None:
            _time_up(self._waiter)

    def close(self) -> None:
        self._bus.unsubscribe(self._channel, self)

    def __enter__(self) -> MemorySubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryBus:
    def __init__(self) -> None:
        # a list per channel, not a set: a channel has one or two listeners, and an empty set
        # is 216 bytes against a list's 56
        self._channels: dict[str, list[MemorySubscription]] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._channels.clear()

    async def healthy(self) -> bool:
        return True

    def deliver(self, channel: str) -> None:
        for sub in tuple(self._channels.get(channel, ())):
            sub.notify()

    def deliver_all(self) -> None:
        """Wake every listener (after a bus outage: they re-read what they wait on)."""
        for subs in tuple(self._channels.values()):
            for sub in tuple(subs):
                sub.notify()

    async def publish(self, channel: str, version: int) -> None:
        self.deliver(channel)

    def subscribe(self, channel: str) -> MemorySubscription:
        sub = MemorySubscription(self, channel)
        self._channels.setdefault(channel, []).append(sub)
        return sub

    def unsubscribe(self, channel: str, sub: MemorySubscription) -> None:
        subs = self._channels.get(channel)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._channels[channel]

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._channels.values())
