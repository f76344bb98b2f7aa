"""Server-Sent Events framing and the streaming response both streams use."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from prometheus_client import Gauge
from starlette.types import Receive, Scope, Send

HEARTBEAT = b": heartbeat\n\n"
_EVENT_ID = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() also takes "²"


def last_event_id(raw: str | None) -> int | None:
    """A ``Last-Event-ID`` header as the number our streams send as event ids, or ``None``
    for anything else (which the stream then ignores): ASCII digits, at most 15 of them
    (milliseconds since 1970 are 13), so no value can overflow or be slow to parse."""
    if raw is None or not _EVENT_ID.fullmatch(raw):
        return None
    return int(raw)


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


class EventStreamResponse(StreamingResponse):
    """A lean streaming response: one extra task per stream (it waits for the client to
    leave), no task group. When the client leaves, the stream is cancelled at once; the store
    shields its calls, so no transaction is cut in half."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        finished = False

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        def on_gone(_: object) -> None:
            if not finished:
                task.cancel()

        gone = asyncio.ensure_future(client_gone())
        gone.add_done_callback(on_gone)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone.done() or task.uncancel() > 0:
                raise  # cancelled for another reason (shutdown): let it through
        finally:
            finished = True
            gone.cancel()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def sse_response(stream: AsyncIterator[bytes]) -> StreamingResponse:
    # x-accel-buffering: nginx must pass events through as they come
    return EventStreamResponse(
        stream,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
