"""PostgreSQL LISTEN/NOTIFY event bus, for deployments without Redis. The payload is the
channel name; the row itself is always re-read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from qrlogin.events.remote import RemoteBus


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's spelling) → ``postgresql://…``."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else database_url


LISTENER_NAME = "qrlogin events"  # application_name: the listener is easy to spot (and kill)
SENDER_NAME = "qrlogin events (send)"


class PostgresBus(RemoteBus):
    def __init__(
        self, database_url: str, prefix: str, on_error: Callable[[], None] | None = None
    ) -> None:
        super().__init__(on_error)
        self.dsn = asyncpg_dsn(database_url)
        self.channel = f"{prefix}_events"[:63]
        self._sender: Any = None
        self._send_lock = asyncio.Lock()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(
            self.dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
        )
        lost = asyncio.Event()

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            self.deliver(payload)

        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(self.channel, on_notify)
            self._mark_connected()
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), 5)
                except TimeoutError:
                    # notice a dead connection while idle
                    await asyncio.wait_for(conn.execute("SELECT 1"), 5)
            raise ConnectionError("the LISTEN connection was closed")
        finally:
            if not conn.is_closed():
                conn.terminate()

    async def _send(self, channel: str, version: int) -> None:
        async with self._send_lock:
            if self._sender is None or self._sender.is_closed():
                self._sender = await asyncpg.connect(
                    self.dsn, timeout=5, server_settings={"application_name": SENDER_NAME}
                )
            try:
                await self._sender.execute("SELECT pg_notify($1, $2)", self.channel, channel)
            except Exception:
                self._sender.terminate()
                self._sender = None
                raise

    async def _close(self) -> None:
        if self._sender is not None and not self._sender.is_closed():
            await self._sender.close()
