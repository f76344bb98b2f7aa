"""Waiting for a login request to change: the one loop behind SSE and long-polling.

A wake-up comes from the bus, from the request's own deadline (rotation, expiry), or from the
heartbeat; every wake-up re-reads the row, so a lost event costs at most one heartbeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from qrlogin.events.port import login_request_channel
from qrlogin.handshake.service import LoginRequests
from qrlogin.store.records import LoginRequest


def fingerprint(svc: LoginRequests, rec: LoginRequest) -> tuple[int, str]:
    # expiry changes the state without a write, so the effective status is part of it
    return rec.version, rec.status_at(svc.clock.now()).value


async def changes(
    svc: LoginRequests, rec: LoginRequest, *, heartbeat: float, until: float | None = None
) -> AsyncIterator[LoginRequest | None]:
    """Yield the request each time it changes, and ``None`` at every silent heartbeat.
    Ends after yielding a terminal state, or at ``until`` (clock time)."""
    if rec.status_at(svc.clock.now()).terminal:
        return
    seen = fingerprint(svc, rec)
    sub = svc.bus.subscribe(login_request_channel(rec.id))
    # ``rec`` was read before this subscription existed: the first pass re-reads at once, so a
    # change made in between is seen now rather than at the next heartbeat
    first = True
    try:
        while True:
            now = svc.clock.now()
            if until is not None and now >= until:
                return
            if not first:
                limit = min(heartbeat, max(0.0, svc.next_deadline(rec) - now) + 0.05)
                if until is not None:
                    limit = min(limit, until - now)
                await sub.wait(limit)
            latest = await svc.store.get_login_request(rec.id)
            if latest is None:
                return
            rec = await svc.rotate_if_due(latest)
            current = fingerprint(svc, rec)
            if current != seen:
                seen = current
                yield rec
                if rec.status_at(svc.clock.now()).terminal:
                    return
            elif not first and (until is None or svc.clock.now() < until):
                yield None
            first = False
    finally:
        sub.close()
