"""Server-Sent Events framing and the streaming response both streams use."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from prometheus_client import Gauge

HEARTBEAT = b": heartbeat\n\n"


def sse_event(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def counted(gauge: Gauge, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Count the stream as open on ``gauge`` for as long as it runs."""
    gauge.inc()
    try:
        async for chunk in stream:
            yield chunk
    finally:
        gauge.dec()


def sse_response(stream: AsyncIterator[bytes]) -> StreamingResponse:
    # x-accel-buffering: nginx must pass events through as they come
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
