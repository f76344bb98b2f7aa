"""Redis pub/sub event bus: one pattern subscription per instance fans every event out to the
listeners on that instance."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from qrlogin.events.remote import RemoteBus


def _one_retry() -> Retry:
    """One immediate retry: enough for a pooled connection that died with a Redis restart,
    and no backoff that would hold a request for seconds while Redis is away."""
    return Retry(NoBackoff(), 1)


class RedisBus(RemoteBus):
    def __init__(self, url: str, prefix: str, on_error: Callable[[], None] | None = None) -> None:
        super().__init__(on_error)
        self.url = url
        self.prefix = f"{prefix}:ev:"
        self._publisher = Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, retry=_one_retry()
        )

    async def _listen(self) -> None:
        client = Redis.from_url(
            url=self.url,
            socket_connect_timeout=2,
            health_check_interval=5,
            retry=Retry(NoBackoff(), 0),  # the loop in RemoteBus reconnects, with backoff
        )
        pubsub = client.pubsub()
        try:
            pattern = f"{self.prefix}*"
            await pubsub.psubscribe(pattern)
            # connected only once Redis confirms the subscription: a publish before that
            # would not reach this instance
            for _ in range(50):
                confirm = await pubsub.get_message(timeout=0.1)
                if confirm is not None and confirm["type"] == "psubscribe":
                    break
            else:
                raise ConnectionError("Redis did not confirm the subscription")
            self._mark_connected()
            cut = len(self.prefix)
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    await client.ping()  # notice a dead connection while idle
                    continue
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else str(channel)
                if message["type"] == "pmessage":
                    self.deliver(name[cut:])
        finally:
            await pubsub.aclose()
            await client.aclose()

    async def _send(self, channel: str, version: int) -> None:
        await self._publisher.publish(f"{self.prefix}{channel}", str(version))

    async def _close(self) -> None:
        await self._publisher.aclose()
