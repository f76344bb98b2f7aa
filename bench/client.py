"""A small HTTP/1.1 client on asyncio streams, written for the bench.

General clients spend more CPU per request than the servers under test can spare on a 2-core
machine, and none of them holds 10,000 idle streams cheaply. This one does only what the bench
needs: keep-alive requests with ``Content-Length`` or chunked replies, and Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


class HttpError(Exception):
    pass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _encode(
    method: str, path: str, host: str, headers: dict[str, str] | None, body: bytes | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    head = raw.decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in head[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.hostport = f"{host}:{port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self.writer = self.reader = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["content-type"] = "application/json"
        elif form is not None:
            from urllib.parse import urlencode

            body = urlencode(form).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        elif method in ("POST", "PUT", "DELETE") and body is None:
            body = b""
        for attempt in (0, 1):
            if self.writer is None:
                await self.connect()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(_encode(method, path, self.hostport, headers, body))
                status, rh = await _read_head(self.reader)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()  # the server closed an idle keep-alive: retry once
                if attempt:
                    raise
        if rh.get("transfer-encoding", "").lower() == "chunked":
            data = b"".join([c async for c in _chunks(self.reader)])
        else:
            data = await self.reader.readexactly(int(rh.get("content-length", "0")))
        if rh.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, rh, data)


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None


class SseStream:
    """An open ``text/event-stream`` reply. Iterate to get events as they arrive."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        self.host, self.port, self.path, self.headers = host, port, path, headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> int:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        hdrs = {"accept": "text/event-stream", **self.headers}
        self.writer.write(_encode("GET", self.path, f"{self.host}:{self.port}", hdrs, None))
        status, self.reply_headers = await _read_head(self.reader)
        return status

    async def events(self) -> AsyncIterator[SseEvent]:
        assert self.reader is not None
        buf = b""
        chunked = self.reply_headers.get("transfer-encoding", "").lower() == "chunked"
        source = _chunks(self.reader) if chunked else self._raw()
        async for chunk in source:
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                event, data, eid = "message", [], None
                for line in block.decode().split("\n"):
                    if line.startswith(":"):
                        continue
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        eid = value
                if data:
                    yield SseEvent(event, "\n".join(data), eid)

    async def _raw(self) -> AsyncIterator[bytes]:
        assert self.reader is not None
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            yield data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
