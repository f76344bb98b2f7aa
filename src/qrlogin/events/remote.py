"""What the Redis and PostgreSQL buses share: local fan-out, a listener that reconnects by
itself, honest health, and a wake-up of every local listener after a reconnect (events sent
while the bus was away are lost, so everyone re-reads the database)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from qrlogin.events.memory import MemoryBus, MemorySubscription

log = logging.getLogger("qrlogin.events")


class RemoteBus(ABC):
    """Subclasses provide ``_listen`` (connect, then call ``self.deliver(channel)`` for each
    message; return or raise when the connection drops) and ``_send``."""

    reconnect_delays = (0.1, 0.25, 0.5, 1.0, 2.0)

    def __init__(self, on_error: Callable[[], None] | None = None) -> None:
        self.local = MemoryBus()
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._on_error = on_error or (lambda: None)
        self._lost = False  # the listener failed since it last connected
        self._send_failed = False  # the last send failed (and nothing came back since)

    @abstractmethod
    async def _listen(self) -> None: ...

    @abstractmethod
    async def _send(self, channel: str, version: int) -> None: ...

    async def _close(self) -> None:
        return None

    def deliver(self, channel: str) -> None:
        self.local.deliver(channel)

    def _mark_connected(self) -> None:
        """Called by ``_listen`` once its subscription is in place (not before: an event sent
        in between would be missed, and the wake-up below would come too early)."""
        self.connected = True
        self._send_failed = False
        self._ready.set()
        if self._lost:
            # back after an outage: whatever was published meanwhile never reached us, so
            # every local listener re-reads what it waits on, now rather than at its heartbeat
            self._lost = False
            log.warning("event bus connection is back; waking every listener")
            self.local.deliver_all()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any connection trouble: back off and reconnect
                if self.connected or failures == 0:
                    log.warning("event bus connection lost: %s", exc.__class__.__name__)
                self._on_error()
            else:  # ``_listen`` returned: the connection ended without an error of its own
                if self.connected or failures == 0:
                    log.warning("event bus connection lost")
                self._on_error()
            was_connected, self.connected = self.connected, False
            self._lost = True
            if was_connected:
                failures = 0
            delay = self.reconnect_delays[min(failures, len(self.reconnect_delays) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        # wait briefly for the first connection; an absent bus must not stop the instance
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()
        await self.local.stop()

    async def healthy(self) -> bool:
        return self.connected

    async def publish(self, channel: str, version: int) -> None:
        """Best effort: a lost event costs listeners at most one heartbeat, so a bus outage
        never fails the request that changed the state.

        While the listener is down and the last send failed too, the remote end is plainly
        away: sends are skipped (no request waits on a dead connection) until the listener
        is back, when every instance's listeners re-read anyway."""
        self.local.deliver(channel)  # this instance's listeners need no round trip
        if self._send_failed and not self.connected:
            return
        try:
            await asyncio.wait_for(self._send(channel, version), 2)
        except Exception as exc:
            self._send_failed = True
            log.warning("could not publish an event: %s", exc.__class__.__name__)
            self._on_error()

    def subscribe(self, channel: str) -> MemorySubscription:
        return self.local.subscribe(channel)

    def subscriber_count(self) -> int:
        return self.local.subscriber_count()
