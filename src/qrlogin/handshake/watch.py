"""Waiting for a login request to change: the one loop behind SSE and long-polling.

A wake-up comes from the bus, from the request's own deadline (rotation, expiry), or from the
heartbeat; every wake-up re-reads the row, so a lost event costs at most one heartbeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from qrlogin.events.port import Subscription, login_request_channel
from qrlogin.handshake.service import LoginRequests
from qrlogin.store.records import LoginRequest


def fingerprint(svc: LoginRequests, rec: LoginRequest) -> tuple[int, str, int]:
    # expiry changes the state and rotation the QR's handle without a write, so the effective
    # status and the handle's slot are part of it
    return rec.version, rec.status_at(svc.clock.now()).value, svc.current_slot(rec)


class Watch:
    """An async iterator of the request each time it changes, and ``None`` at every silent
    heartbeat. It ends after yielding a terminal state, when the row is gone, or at ``until``
    (clock time); ``close()`` it if you stop iterating before that.

    Between wake-ups it keeps only what the next one needs: the id, the fingerprint last
    seen, when the request changes by itself, and its bus subscription. Not the record: an
    instance holds thousands of idle event streams (docs/benchmarks.md finding 3)."""

    __slots__ = ("_deadline", "_done", "_heartbeat", "_id", "_seen", "_sub", "_svc", "_until")

    def __init__(
        self,
        svc: LoginRequests,
        rec: LoginRequest,
        *,
        heartbeat: float,
        until: float | None = None,
    ) -> None:
        self._svc = svc
        self._id = rec.id
        self._seen = fingerprint(svc, rec)
        self._deadline = svc.next_deadline(rec)
        self._heartbeat = heartbeat
        self._until = until
        self._sub: Subscription | None = None
        self._done = rec.status_at(svc.clock.now()).terminal

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> LoginRequest | None:
        svc = self._svc
        while not self._done:
            now = svc.clock.now()
            if self._until is not None and now >= self._until:
                break
            # the record was read before the subscription existed: the first pass re-reads
            # at once, so a change made in between is seen now rather than at the heartbeat
            first = self._sub is None
            if self._sub is None:
                self._sub = svc.bus.subscribe(login_request_channel(self._id))
            else:
                limit = min(self._heartbeat, max(0.0, self._deadline - now) + 0.05)
                if self._until is not None:
                    limit = min(limit, self._until - now)
                await self._sub.wait(limit)
            changed = await self._reread()
            if changed is not None:
                return changed
            if not self._done and not first:
                if self._until is None or svc.clock.now() < self._until:
                    return None
        self.close()
        raise StopAsyncIteration

    async def _reread(self) -> LoginRequest | None:
        """The request if it changed since last seen (a new handle counts), else
        ``None``; closes the watch when the row is gone or the change is final. Its own
        coroutine so that no record outlives it while the watch waits again."""
        svc = self._svc
        latest = await svc.store.get_login_request(self._id)
        if latest is None:
            self.close()
            return None
        rec = latest
        self._deadline = svc.next_deadline(rec)
        current = fingerprint(svc, rec)
        if current == self._seen:
            return None
        self._seen = current
        if rec.status_at(svc.clock.now()).terminal:
            self.close()
        return rec

    def close(self) -> None:
        """Stop watching: no further items, and the bus subscription is let go."""
        self._done = True
        if self._sub is not None:
            self._sub.close()
            self._sub = None


def changes(
    svc: LoginRequests, rec: LoginRequest, *, heartbeat: float, until: float | None = None
) -> AsyncIterator[LoginRequest | None]:
    """A ``Watch`` that lets its subscription go however the caller stops (a ``break`` too).
    The watch starts now, not at the first ``anext``: what changes after the caller read
    ``rec`` (a handle rotating in between, say) is a change."""
    watch = Watch(svc, rec, heartbeat=heartbeat, until=until)

    async def run() -> AsyncIterator[LoginRequest | None]:
        try:
            async for changed in watch:
                yield changed
        finally:
            watch.close()

    return run()
