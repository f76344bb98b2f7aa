"""The event-bus port."""

from __future__ import annotations

from typing import Protocol


class Subscription(Protocol):
    async def wait(self, timeout: float) -> bool:
        """Wait for an event on the channel; ``True`` if one came, ``False`` on timeout."""
        ...

    def close(self) -> None: ...


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, channel: str, version: int) -> None:
        """Tell every subscriber of ``channel`` that it changed (to ``version``)."""
        ...

    def subscribe(self, channel: str) -> Subscription: ...

    async def healthy(self) -> bool: ...


def login_request_channel(request_id: str) -> str:
    return f"lr:{request_id}"


def user_channel(user_id: str) -> str:
    return f"user:{user_id}"
