"""Waiting requesters: approval → requester latency, and what waiting costs the server.

qrlogin: N requesters hold SSE streams; an approver scans and approves some of them at a fixed
rate; the latency is from the approve reply to the ``approved`` event on that requester's stream.

RFC 8628 peer: N devices poll the token endpoint every 5 s (the standard interval); approvals go
through the peer's bench hook at the same rate; the latency is from the hook's reply to the
poll that returns tokens.

Both sides run in this one process on one event loop, so both timestamps come from the same
monotonic clock.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profile
from bench.client import Connection, SseStream
from bench.procs import Server, cpu_percent

HOST = "127.0.0.1"
POLL_INTERVAL = 5.0  # RFC 8628 §3.2 default interval


@dataclass
class WaitingResult:
    target: str
    n: int  # waiting requesters actually reached
    approvals: int
    rate: float
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    rss_base_kb: int = 0
    rss_created_kb: int = 0
    rss_waiting_kb: int = 0
    cpu_percent: float = 0.0
    cpu_window: float = 0.0
    poll_rps: float = 0.0
    create_rate: float = 0.0
    open_rate: float = 0.0
    setup_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    simulated: bool = True  # False: numbers computed, not measured
    requested: int = 0  # N asked for; ``n`` is how many were reached

    def __post_init__(self) -> None:
        self.requested = self.requested or self.n

    @property
    def kb_per_waiting(self) -> float:
        return (self.rss_waiting_kb - self.rss_base_kb) / self.n if self.n else 0.0

    @property
    def kb_per_stream(self) -> float:
        return (self.rss_waiting_kb - self.rss_created_kb) / self.n if self.n else 0.0

    def percentile(self, p: float) -> float:
        xs = sorted(self.latencies_ms)
        if not xs:
            return float("nan")
        k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
        return xs[k]


class Pool:
    """A few keep-alive connections shared by many tasks."""

    def __init__(self, port: int, size: int) -> None:
        self.q: asyncio.Queue[Connection] = asyncio.Queue()
        self.conns = [Connection(HOST, port) for _ in range(size)]
        for c in self.conns:
            self.q.put_nowait(c)

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        conn = await self.q.get()
        try:
            return await conn.request(method, path, **kw)
        finally:
            self.q.put_nowait(conn)

    async def close(self) -> None:
        for c in self.conns:
            await c.close()


async def bounded(
    n: int, concurrency: int, make: Callable[[int], Awaitable[Any]], deadline: float | None = None
) -> list[Any]:
    """Run ``make(i)`` for i in range(n), at most ``concurrency`` at a time; stop starting new
    ones at ``deadline`` (perf_counter time). Returns the results of those that ran, in order."""
    out: list[Any] = [None] * n
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            if deadline is not None and time.perf_counter() > deadline:
                return
            out[i] = await make(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [x for x in out if x is not None]


async def wait_until(done: Callable[[], bool], timeout: float) -> None:
    """Poll ``done()`` every 50 ms for at most ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    while not done() and time.perf_counter() < deadline:  # noqa: ASYNC110 - many flags
        await asyncio.sleep(0.05)


async def at_rate(count: int, rate: float, action: Callable[[int], Awaitable[None]]) -> None:
    """Start ``action(i)`` at a fixed rate (open loop: a slow reply does not delay the next)."""
    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(action(i)))
    await asyncio.gather(*tasks)


# -- qrlogin ----------------------------------------------------------------------------------


async def sign_in_approver(server: Server, email: str = "approver@bench.test") -> str:
    """Email sign-in: start, read the code from the server's console mail, verify."""
    conn = Connection(HOST, server.port)
    try:
        r = await conn.request("POST", "/api/v1/auth/email/start", json_body={"email": email})
        assert r.status == 202, (r.status, r.body)
        m = await asyncio.to_thread(server.wait_for_line, r"sign-in code is (\d{6})")
        r = await conn.request(
            "POST", "/api/v1/auth/email/verify", json_body={"email": email, "code": m.group(1)}
        )
        assert r.status == 200, (r.status, r.body)
        token: str = r.json()["access_token"]
        return token
    finally:
        await conn.close()


class Requester:
    __slots__ = ("approved_at", "handle", "id", "ready", "secret", "stream", "task")

    def __init__(self, body: dict[str, Any]) -> None:
        self.id: str = body["id"]
        self.secret: str = body["secret"]
        self.handle: str = body["qr_url"].rsplit("/", 1)[1]
        self.approved_at: float | None = None
        self.ready = asyncio.Event()
        self.stream: SseStream | None = None
        self.task: asyncio.Task[None] | None = None

    async def listen(self, port: int) -> None:
        self.stream = SseStream(
            HOST,
            port,
            f"/api/v1/login-requests/{self.id}/events",
            {"authorization": f"Bearer {self.secret}"},
        )
        try:
            status = await self.stream.open()
            if status != 200:
                raise RuntimeError(f"events: HTTP {status}")
            async for ev in self.stream.events():
                if ev.event != "state":
                    continue
                state = json.loads(ev.data)
                if state["status"] == "approved" and self.approved_at is None:
                    self.approved_at = time.perf_counter()
                if state.get("qr_url"):
                    self.handle = state["qr_url"].rsplit("/", 1)[1]
                self.ready.set()
        finally:
            self.ready.set()
            self.stream.close()


async def warm_up(port: int, token: str, rounds: int = 30) -> None:
    """One pass over every endpoint the measurement uses, so lazy imports and caches are in
    the baseline rather than in the per-requester cost."""
    pool = Pool(port, 4)
    auth = {"authorization": f"Bearer {token}"}
    try:
        for _ in range(rounds):
            r = await pool.request("POST", "/api/v1/login-requests", json_body={})
            req = Requester(r.json())
            req.task = asyncio.create_task(req.listen(port))
            await req.ready.wait()
            await pool.request("GET", f"/api/v1/scan/{req.handle}", headers=auth)
            await pool.request("POST", f"/api/v1/scan/{req.handle}/approve", headers=auth)
            for _ in range(200):
                if req.approved_at is not None:
                    break
                await asyncio.sleep(0.01)
            r = await pool.request(
                "POST",
                f"/api/v1/login-requests/{req.id}/session",
                headers={"authorization": f"Bearer {req.secret}"},
                json_body={},
            )
            assert r.status == 200, (r.status, r.body)
            await asyncio.wait_for(req.task, 10)  # the stream ends after "consumed"
    finally:
        await pool.close()


async def qrlogin_waiting(
    server: Server,
    n: int,
    approvals: int,
    rate: float,
    cpu_window: float,
    settle: float = 3.0,
    profile_to: Path | None = None,
    phase_limit: float = 120.0,
    drain: float = 20.0,
    warm_rounds: int = 30,
) -> WaitingResult:
    res = WaitingResult("qrlogin (SSE)", n, approvals, rate, cpu_window=cpu_window)
    t_setup = time.perf_counter()
    token = await sign_in_approver(server)
    await warm_up(server.port, token, warm_rounds)
    await asyncio.sleep(1)
    res.rss_base_kb = server.rss_kb()

    pool = Pool(server.port, 32)

    async def create(_: int) -> Requester | None:
        r = await pool.request("POST", "/api/v1/login-requests", json_body={})
        if r.status != 201:
            key = f"create HTTP {r.status}"
            res.errors[key] = res.errors.get(key, 0) + 1
            return None
        return Requester(r.json())

    t = time.perf_counter()
    requesters: list[Requester] = await bounded(n, 32, create, t + phase_limit)
    res.create_rate = len(requesters) / (time.perf_counter() - t)
    if len(requesters) < n:
        res.notes.append(
            f"only {len(requesters):,} of {n:,} login requests were created within "
            f"{phase_limit:g} s ({res.create_rate:.0f}/s); the rest of this run uses those"
        )
    res.rss_created_kb = server.rss_kb()

    async def open_stream(i: int) -> bool:
        req = requesters[i]
        req.task = asyncio.create_task(req.listen(server.port))
        await req.ready.wait()
        return True

    t = time.perf_counter()
    opened = len(await bounded(len(requesters), 128, open_stream, t + phase_limit))
    res.open_rate = opened / (time.perf_counter() - t)
    if opened < len(requesters):
        res.notes.append(f"only {opened:,} streams opened within {phase_limit:g} s")
        requesters = [r for r in requesters if r.task is not None]
    res.n = len(requesters)
    broken = sum(1 for r in requesters if r.task is not None and r.task.done())
    if broken:
        res.notes.append(f"{broken} of {n} streams closed early")
    res.setup_seconds = time.perf_counter() - t_setup
    await asyncio.sleep(settle)
    res.rss_waiting_kb = server.rss_kb()
    res.cpu_percent = await asyncio.to_thread(cpu_percent, [server.pid], cpu_window)

    auth = {"authorization": f"Bearer {token}"}
    picked = random.sample(requesters, min(len(requesters), approvals * (2 if profile_to else 1)))
    chosen, extra = picked[:approvals], picked[approvals:]
    approved_at: dict[str, float] = {}

    async def approve(i: int) -> None:
        try:
            await approve_one(chosen[i])
        except (OSError, asyncio.IncompleteReadError) as exc:
            key = f"approver connection error ({type(exc).__name__})"
            res.errors[key] = res.errors.get(key, 0) + 1

    async def approve_one(req: Requester) -> None:
        r = await pool.request("GET", f"/api/v1/scan/{req.handle}", headers=auth)
        if r.status == 404:
            # The handle this requester's stream last showed is dead: the server did not push
            # a rotation in time. Count it, then do what a page would do on reload: read the
            # request (which rotates it) and scan the fresh QR.
            res.errors["stale handle on the stream"] = (
                res.errors.get("stale handle on the stream", 0) + 1
            )
            state = await pool.request(
                "GET",
                f"/api/v1/login-requests/{req.id}",
                headers={"authorization": f"Bearer {req.secret}"},
            )
            if state.status == 200 and state.json().get("qr_url"):
                req.handle = state.json()["qr_url"].rsplit("/", 1)[1]
                r = await pool.request("GET", f"/api/v1/scan/{req.handle}", headers=auth)
        if r.status != 200:
            res.errors[f"scan HTTP {r.status}"] = res.errors.get(f"scan HTTP {r.status}", 0) + 1
            return
        handle = r.json()["handle"]
        r = await pool.request("POST", f"/api/v1/scan/{handle}/approve", headers=auth)
        approved_at[req.id] = time.perf_counter()
        if r.status != 200:
            key = f"approve HTTP {r.status}"
            res.errors[key] = res.errors.get(key, 0) + 1

    await at_rate(len(chosen), rate, approve)
    await wait_until(
        lambda: all(r.approved_at is not None for r in chosen if r.id in approved_at), drain
    )
    for req in chosen:
        t0 = approved_at.get(req.id)
        if t0 is None or req.approved_at is None:
            res.missing += 1
        else:
            res.latencies_ms.append((req.approved_at - t0) * 1000)

    if profile_to is not None and extra:
        # A second batch, not counted: py-spy with native frames pauses the process while it
        # samples, so the measured batch above runs without it.
        measured, chosen = chosen, extra
        errors = dict(res.errors)
        spy = profile.record_start(server.pid, len(chosen) / rate + 1, profile_to, wall=True)
        await asyncio.sleep(0.5)  # py-spy attaches
        await at_rate(len(chosen), rate, approve)
        if spy is not None:
            await asyncio.to_thread(spy.wait, 60)
        chosen, res.errors = measured, errors
    for req in requesters:
        if req.stream is not None:
            req.stream.close()
        if req.task is not None:
            req.task.cancel()
    await asyncio.gather(*(r.task for r in requesters if r.task), return_exceptions=True)
    await pool.close()
    return res


# -- RFC 8628 polling peer --------------------------------------------------------------------


class Device:
    __slots__ = ("conn", "device_code", "got_token_at", "polls", "user_code")

    def __init__(self, port: int, body: dict[str, Any]) -> None:
        self.device_code: str = body["device_code"]
        self.user_code: str = body["user_code"]
        self.conn = Connection(HOST, port)
        self.got_token_at: float | None = None
        self.polls: list[float] = []

    async def poll(self, until: float, client_id: str) -> None:
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": self.device_code,
            "client_id": client_id,
        }
        await asyncio.sleep(random.uniform(0, POLL_INTERVAL))
        try:
            while time.perf_counter() < until:
                r = await self.conn.request("POST", "/token", form=form)
                now = time.perf_counter()
                self.polls.append(now)
                if r.status == 200 and b"access_token" in r.body:
                    self.got_token_at = now
                    return
                error = r.json().get("error")
                if error != "authorization_pending":
                    raise RuntimeError(f"token: HTTP {r.status} {error}")
                await asyncio.sleep(POLL_INTERVAL)
        finally:
            await self.conn.close()


async def polling_waiting(
    server: Server,
    n: int,
    approvals: int,
    rate: float,
    window: float,
    *,
    create_path: str = "/device/auth",
    client_id: str = "bench-device",
) -> WaitingResult:
    res = WaitingResult("oidc-provider (RFC 8628 polling, 5 s)", n, approvals, rate)
    res.cpu_window = window
    t_setup = time.perf_counter()
    res.rss_base_kb = server.rss_kb()
    pool = Pool(server.port, 32)
    form = {"client_id": client_id, "scope": "openid"}

    async def create(_: int) -> Device:
        r = await pool.request("POST", create_path, form=form)
        if r.status != 200:
            raise RuntimeError(f"device authorization: HTTP {r.status} {r.body[:200]!r}")
        return Device(server.port, r.json())

    devices: list[Device] = await bounded(n, 32, create)
    res.rss_created_kb = server.rss_kb()
    approvals = min(approvals, n)
    until = time.perf_counter() + POLL_INTERVAL + window + approvals / rate + 3 * POLL_INTERVAL
    tasks = [asyncio.create_task(d.poll(until, client_id)) for d in devices]
    res.setup_seconds = time.perf_counter() - t_setup
    await asyncio.sleep(POLL_INTERVAL + 1)  # every device has polled at least once
    res.rss_waiting_kb = server.rss_kb()
    w0 = time.perf_counter()
    res.cpu_percent = await asyncio.to_thread(cpu_percent, server.pids(), window)
    w1 = time.perf_counter()
    res.poll_rps = sum(1 for d in devices for t in d.polls if w0 <= t < w1) / (w1 - w0)

    chosen = random.sample(devices, approvals)
    approved_at: dict[str, float] = {}

    async def approve(i: int) -> None:
        d = chosen[i]
        r = await pool.request("POST", "/bench/approve", form={"user_code": d.user_code})
        approved_at[d.device_code] = time.perf_counter()
        if r.status != 200:
            key = f"approve HTTP {r.status}"
            res.errors[key] = res.errors.get(key, 0) + 1

    await at_rate(approvals, rate, approve)
    await wait_until(lambda: all(d.got_token_at is not None for d in chosen), POLL_INTERVAL + 2)
    for d in chosen:
        t0 = approved_at.get(d.device_code)
        if t0 is None or d.got_token_at is None:
            res.missing += 1
        else:
            res.latencies_ms.append((d.got_token_at - t0) * 1000)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()
    return res
