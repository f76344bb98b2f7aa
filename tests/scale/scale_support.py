"""Helpers for the scale-out tests (tests/scale) and the bus tests (tests/events): private
Redis servers that can be killed and restarted, ``qrlogin serve`` subprocesses, SSE readers
on plain sockets-over-httpx, and small PostgreSQL helpers.

Import as ``from scale.scale_support import ...`` (tests/ is on sys.path and tests/scale is
a namespace package), so every test module shares one copy of this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support import REPO_ROOT, free_port

REDIS_SERVER = "redis-server"
PG_ADMIN = os.environ.get("QRLOGIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.05
) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(every)


async def eventually(
    probe: Callable[[], Any], timeout: float, what: str, every: float = 0.05
) -> Any:
    """Await ``probe()`` until it returns something truthy; return it. Bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {value!r})")
        await asyncio.sleep(every)


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1 (no persistence) that a test may kill -9 and
    start again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 15) -> RedisServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        proc = self.proc
        wait_until(lambda: self.ping() or proc.poll() is not None, timeout, f"redis on {self.port}")
        if proc.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited ({proc.returncode})")
        return self

    def kill(self) -> None:
        """SIGKILL: the clients' connections drop at once, no goodbye."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        wait_until(lambda: not self.ping(), 10, f"redis on {self.port} to go away")

    def restart(self) -> None:
        self.kill()
        self.start()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.kill()


# --------------------------------------------------------------------------- PostgreSQL


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def pg_admin(sql: str, *args: Any) -> list[Any]:
    """Run one statement as the test server's superuser (on its admin database)."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


# --------------------------------------------------------------------------- SSE


@dataclass
class SseReader:
    """Reads one event stream (in a task) and keeps every event; ``states`` are the data of
    the ``state`` events (login requests), ``events`` all of them as ``(name, data)``."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    heartbeats: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    got: asyncio.Event = field(default_factory=asyncio.Event)
    status_code: int | None = None

    @property
    def states(self) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == "state"]

    @property
    def status(self) -> str | None:
        states = self.states
        return str(states[-1]["status"]) if states else None

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def read(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            # no read timeout: a stream may stay quiet up to a heartbeat, longer on a busy machine
            timeout = httpx.Timeout(60, read=None)
            async with client.stream(
                "GET", url, headers=headers or {}, timeout=timeout
            ) as response:
                self.status_code = response.status_code
                if response.status_code != 200:
                    body = await response.aread()
                    raise AssertionError(f"{url}: {response.status_code} {body!r}")
                event = "message"
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.heartbeats += 1
                        self.got.set()
                    elif line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        self.events.append((event, json.loads(line.split(":", 1)[1])))
                        event = "message"
                        self.got.set()
        except (httpx.HTTPError, AssertionError) as exc:
            self.error = exc
        finally:
            self.done.set()
            self.got.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.done.is_set():
                if predicate():
                    return
                raise AssertionError(
                    f"{what}: not within {timeout}s (events {self.names()}, states "
                    f"{[s['status'] for s in self.states]}, error {self.error!r})"
                )
            self.got.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.got.wait(), min(remaining, 0.5))

    async def wait_for(self, status: str, timeout: float) -> None:
        await self.wait_until(lambda: self.status == status, timeout, f"the state {status!r}")


async def metric_value(client: httpx.AsyncClient, name: str, labels: str = "") -> float:
    """One sample from /metrics (``labels`` like ``status="approved"``); 0 when absent."""
    text = (await client.get("/metrics")).text
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else r"") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# --------------------------------------------------------------------------- qrlogin serve


@dataclass
class ServeProcess:
    """``qrlogin serve`` as a real subprocess (so it can be killed with SIGKILL)."""

    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServeProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qrlogin.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        log.close()
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, f"qrlogin serve on {self.port}", every=0.2)
        if proc.poll() is not None:
            raise AssertionError(f"qrlogin serve exited:\n{self.log_path.read_text()[-3000:]}")
        return self

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def serve_env(**settings: str) -> dict[str, str]:
    """The environment for ``qrlogin serve``: this one without QRLOGIN_*, plus ``settings``
    (names without the prefix, e.g. ``DATABASE_URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRLOGIN_")}
    env.update({f"QRLOGIN_{k.upper()}": v for k, v in settings.items()})
    return env


@contextlib.asynccontextmanager
async def http_client(base_url: str, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    # uvicorn closes idle keep-alive connections after 5 s: drop them sooner on this side, or
    # a request sent on one just as the server closes it fails with "Server disconnected"
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100, keepalive_expiry=2)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=httpx.Timeout(60, connect=10), limits=limits, **kw
    ) as client:
        yield client
