"""Server-Sent Events: the framing, and the one streaming response every stream is sent with
(the requester's ``…/events`` and a signed-in page's ``/api/v1/me/events``)."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from prometheus_client import Gauge
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from qrlogin.metrics import Metrics
from qrlogin.web.errors import record_failure

HEARTBEAT = b": heartbeat\n\n"
STREAM_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx must pass events through as they come
    (b"content-type", b"text/event-stream; charset=utf-8"),
)
T = TypeVar("T")
_EVENT_ID = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() also takes "²"


def last_event_id(raw: str | None) -> int | None:
    """A ``Last-Event-ID`` header as the number our streams send as event ids, or ``None``
    for anything else (which the stream then ignores): ASCII digits, at most 15 of them
    (milliseconds since 1970 are 13), so no value can overflow or be slow to parse."""
    if raw is None or not _EVENT_ID.fullmatch(raw):
        return None
    return int(raw)


def sse_event(event: str, data: BaseModel, event_id: int | None = None) -> bytes:
    """One event whose ``data:`` is the reply model's compact JSON: the same bytes a JSON
    reply of that model carries."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {data.model_dump_json()}\n\n".encode()


def as_is(chunk: bytes) -> bytes:
    """The ``render`` of a source that yields finished SSE bytes."""
    return chunk


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


async def _until_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _on_gone(task: asyncio.Task[None], gone: asyncio.Future[None]) -> None:
    if not gone.cancelled():
        gone.exception()  # retrieved: a receive that failed means the client is gone too
        task.cancel()


class EventStreamResponse(Response, Generic[T]):
    """A ``text/event-stream`` response: ``first`` at once, then ``render(item)`` for each
    item of ``source`` until it ends, then the source is closed (``aclose()`` or ``close()``).
    It counts itself open on ``gauge`` meanwhile.

    Lean, because an instance holds waiting streams by the thousand: one extra task per
    stream (it waits for the client to leave), no task group, no generator stacked on the
    source, and once started it keeps neither its headers nor its first chunk. When the
    client leaves, the stream is cancelled at once; the store shields its calls, so no
    transaction is cut in half. A failure after the response has started is logged and
    counted as the app's handlers would (``errors.record_failure``), and ends the stream
    cleanly: the browser reconnects and reads the state again."""

    # slots, not an instance dict: this object lives as long as its stream
    __slots__ = (
        "_first",
        "_gauge",
        "_metrics",
        "_render",
        "_route",
        "_source",
        "background",
        "raw_headers",
        "status_code",
    )

    def __init__(
        self,
        source: AsyncIterator[T],
        render: Callable[[T], bytes],
        *,
        first: bytes,
        gauge: Gauge,
        metrics: Metrics,
        route: str,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(STREAM_HEADERS)
        self._source: AsyncIterator[T] | None = source
        self._render = render
        self._first: bytes | None = first
        self._gauge = gauge
        self._metrics = metrics
        self._route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source, first = self._source, self._first
        assert source is not None and first is not None, "a stream is sent once"
        self._source = self._first = None
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.ensure_future(_until_gone(receive))
        gone.add_done_callback(functools.partial(_on_gone, task))
        self._gauge.inc()
        try:
            start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            self.raw_headers = []  # sent once: a waiting stream keeps no copy of them
            await send(start)
            del start
            await send(_body(first))
            del first  # nor what it sent
            try:
                async for item in source:
                    await send(_body(self._render(item)))
                    item = None  # type: ignore[assignment]  # not kept while waiting again
            except Exception as exc:
                record_failure(self._metrics, exc, "GET", self._route)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone.done() or task.uncancel() > 0:
                raise  # cancelled for another reason (shutdown): let it through
        finally:
            gone.cancel()
            self._gauge.dec()
            # let the source go: a Watch its subscription, a generator its ``finally``
            aclose = getattr(source, "aclose", None)
            close = getattr(source, "close", None)
            if aclose is not None:
                await aclose()
            elif close is not None:
                close()
