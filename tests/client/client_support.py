"""Helpers for the SDK and terminal tests: an approver signed in over the real API (its email
code read from the dev outbox), a TCP proxy on 127.0.0.1 that can cut connections, and
``Side``: either client behind one blocking face."""

from __future__ import annotations

import asyncio
import html
import inspect
import re
import selectors
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from qrlogin.client import AsyncClient, Client, FileStore
from support import LiveServer


def handle_of(qr_url: str) -> str:
    return qr_url.rsplit("/q/", 1)[1]


@dataclass
class Approver:
    """A signed-in phone, talking to the API with its bearer token."""

    http: httpx.Client
    email: str

    def scan(self, handle: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/scan/{handle}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def approve(self, handle: str) -> str | None:
        """The confirm code the phone shows (None under "tap")."""
        response = self.http.post(f"/api/v1/scan/{handle}/approve")
        assert response.status_code == 200, response.text
        code: str | None = response.json()["confirm_code"]
        return code

    def deny(self, handle: str) -> None:
        response = self.http.post(f"/api/v1/scan/{handle}/deny")
        assert response.status_code == 200, response.text

    def close(self) -> None:
        self.http.close()


def outbox_code(server: LiveServer, email: str) -> str:
    """The newest sign-in code mailed to ``email``, read from the server's /dev/outbox page."""
    page = html.unescape(httpx.get(f"{server.url}/dev/outbox", timeout=10).text)
    for article in page.split('<article class="card mail">'):  # newest first
        if f"To {email}" in article:
            match = re.search(r"sign-in code is (\d{6})\b", article)
            assert match, article
            return match.group(1)
    raise AssertionError(f"no mail to {email} in the outbox")


IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def sign_in(server: LiveServer, email: str = "ann@example.com") -> Approver:
    """An approver on Safari on iOS, signed in by the email code."""
    http = httpx.Client(base_url=server.url, timeout=10, headers={"user-agent": IPHONE})
    started = http.post("/api/v1/auth/email/start", json={"email": email})
    assert started.status_code == 202, started.text
    verified = http.post(
        "/api/v1/auth/email/verify", json={"email": email, "code": outbox_code(server, email)}
    )
    assert verified.status_code == 200, verified.text
    http.headers["authorization"] = f"Bearer {verified.json()['access_token']}"
    return Approver(http, email)


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to a server. ``cut()`` drops every open connection;
    with ``refuse_streams`` every request for an event stream is dropped as it arrives (a
    proxy that breaks streaming)."""

    def __init__(self, target_port: int, *, refuse_streams: bool = False) -> None:
        self.target_port = target_port
        self.refuse_streams = refuse_streams
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stream_requests = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(downstream,), daemon=True).start()

    def _serve(self, downstream: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError:
            downstream.close()
            return
        with self._lock:
            self._pairs.append((downstream, upstream))
        selector = selectors.DefaultSelector()
        selector.register(downstream, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, downstream)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is downstream and b"/events " in data:
                        self.stream_requests += 1
                        if self.refuse_streams:
                            return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for sock in (downstream, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def cut(self) -> None:
        """Reset every connection open now (new ones still go through)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self.listener.close()
        self._thread.join(5)


class Side:
    """One client kind; every SDK call goes through ``call`` and ``updates``."""

    def __init__(self, kind: str, store: FileStore) -> None:
        self.kind = kind
        self.store = store
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        self.clients: list[Any] = []

    def client(self, url: str) -> Any:
        made = (
            Client(url, store=self.store)
            if self.kind == "sync"
            else AsyncClient(url, store=self.store)
        )
        self.clients.append(made)
        return made

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            assert self.loop is not None
            return self.loop.run_until_complete(asyncio.wait_for(result, 60))
        return result

    def updates(self, flow: Any) -> Iterator[Any]:
        if self.loop is None:
            yield from flow.updates()
            return
        updates: AsyncIterator[Any] = flow.updates()
        try:
            while True:
                try:
                    yield self.loop.run_until_complete(asyncio.wait_for(anext(updates), 60))
                except StopAsyncIteration:
                    return
        finally:
            self.loop.run_until_complete(updates.aclose())

    def close(self) -> None:
        for made in self.clients:
            self.call(made.close if self.kind == "sync" else made.aclose)
        if self.loop is not None:
            self.loop.close()
