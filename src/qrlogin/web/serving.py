"""What ``qrlogin serve`` adds to uvicorn: header and body timeouts, and a cap on connections
that answers like the API (DESIGN.md requirement 14).

uvicorn (0.29 to at least 0.55) closes a connection that stays idle *after* a response
(``timeout_keep_alive``), but starts no clock on a new connection, none while request headers
trickle in (every byte resets it), and none while a body does: a client sending one header
line every few seconds holds a connection, and its memory, for ever. Its own
``limit_concurrency`` answers ``text/plain``. ``GuardedHttpToolsProtocol`` is uvicorn's
httptools protocol with three changes, all in the parser callbacks it already has:

- **header timeout**: from the connection's start, or from the first byte of the next request
  on a kept-alive connection, the request line and all headers must arrive within
  ``header_timeout`` seconds (nginx's ``client_header_timeout``), else the connection closes;
- **body timeout**: while a request body is read, no more than ``body_timeout`` seconds may
  pass between two pieces of it (nginx's ``client_body_timeout``), else the connection
  closes; a body the app has paused (flow control) is the app's wait, not the client's;
- **header size**: more than ``max_header_bytes`` (64 KiB) before the headers end closes the
  connection (httptools sets no limit of its own; nginx's is 4 × 8 KiB);
- **connection cap**: a request arriving while the process holds more than
  ``max_connections`` connections (or runs that many requests) is answered ``503`` with
  ``{"error": "server_busy", "message": …}``, ``Retry-After`` and ``Connection: close``.

Once the headers are in, the app decides how long a request may last: the requester's event
stream is meant to stay open for minutes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from qrlogin.web.security import add_security_headers

BUSY = {
    "error": "server_busy",
    "message": "This server has too many connections right now. Try again in a few seconds.",
}
BUSY_RETRY_AFTER = 5


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 4096
    max_header_bytes: int = 64 * 1024
    https: bool = False  # for the security headers of the busy reply


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body timeouts and a JSON connection cap
    (the module docstring says why). ``limits`` is set per server by ``guarded_protocol``."""

    limits = ConnectionLimits()
    # slots: uvicorn's protocol keeps its state in the instance dict, and five more keys there
    # grow that dict for every connection, a waiting event stream's included
    __slots__ = ("_cut", "_deadline", "_header_bytes", "_in_body", "_served_app")

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._served_app = self.app
        self._deadline: asyncio.TimerHandle | None = None
        self._in_body = False
        self._header_bytes = 0  # of the request line and headers being read
        self._cut = False  # the request was cut off: start no app, read nothing more

    # -- the clocks ------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._in_body and self.flow.read_paused:  # the app is not reading: not the client
            self._arm(self.limits.body_timeout)
            return
        self._cut_off()

    # -- uvicorn's hooks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout)  # the first request's headers, from now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _cut_off(self) -> None:
        self._cut = True
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._cut_off()

    def data_received(self, data: bytes) -> None:
        if not self._cut:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:  # a kept-alive connection's next request: from its 1st byte
            self._arm(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._cut:
            return
        busy = (
            len(self.connections) > self.limits.max_connections
            or len(self.tasks) >= self.limits.max_connections
        )
        self.app = self._busy if busy else self._served_app  # the app uvicorn now starts
        super().on_headers_complete()
        if self._has_body():
            self._in_body = True
            self._arm(self.limits.body_timeout)
        else:  # most requests: nothing more to read, so no clock (one timer less each)
            self._disarm()

    def _has_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return True
        return False

    def on_body(self, body: bytes) -> None:
        if self._cut:
            return
        super().on_body(body)
        self._arm(self.limits.body_timeout)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        if not self._cut:
            super().on_message_complete()

    async def _busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps(BUSY).encode()
        headers = MutableHeaders(
            raw=[
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(BUSY_RETRY_AFTER).encode()),
                (b"connection", b"close"),
            ]
        )
        add_security_headers(headers, https=self.limits.https)
        await send({"type": "http.response.start", "status": 503, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to hand uvicorn (``http=``), with these limits."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
