"""Issue 11 item 5: ``qrlogin serve`` closes connections whose headers or body trickle in or
that sit idle, and answers requests beyond its connection cap with a JSON 503
(web/serving.py; DESIGN.md requirement 14). Against real ``qrlogin serve`` subprocesses on
127.0.0.1, with short timeouts; every wait is bounded."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scale.scale_support import ServeProcess, serve_env
from support import free_port

TIMEOUT = 1.0  # header, body and keep-alive timeouts of the server under test
SLACK = 3.0  # a busy machine: how much later than the timeout a close may come


def _serve(tmp: Path, **settings: str) -> Iterator[ServeProcess]:
    env = serve_env(DATA_DIR=str(tmp), RATE_LIMITS="off", **settings)
    server = ServeProcess(free_port(), env, tmp / "serve.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    yield from _serve(
        tmp_path_factory.mktemp("timeouts"),
        HEADER_TIMEOUT=str(TIMEOUT),
        BODY_TIMEOUT=str(TIMEOUT),
        KEEPALIVE_TIMEOUT=str(TIMEOUT),
    )


def _connect(server: ServeProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _seconds_until_closed(sock: socket.socket, *, limit: float = TIMEOUT + SLACK) -> float:
    """Read (and drop) until the server closes; how long that took. Fails past ``limit``."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    raise AssertionError(f"the server kept the connection open for over {limit}s")


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (``Content-Length`` bodies only)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def test_an_idle_new_connection_is_closed_after_the_header_timeout(server: ServeProcess) -> None:
    with _connect(server) as sock:
        took = _seconds_until_closed(sock)
    assert took >= TIMEOUT * 0.8


def test_headers_sent_slowly_are_cut_off_at_the_header_timeout(server: ServeProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        closed = False
        for i in range(int((TIMEOUT + SLACK) / 0.1)):  # one header line every 0.1 s
            try:
                sock.sendall(f"X-Slow-{i}: yes\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.1)
            try:
                got = sock.recv(65536)
            except TimeoutError:
                continue
            assert got == b"", f"the server answered a request it never finished: {got!r}"
            closed = True
            break
        took = time.monotonic() - started
    assert closed, "the server kept reading headers for ever"
    assert TIMEOUT * 0.8 <= took <= TIMEOUT + SLACK


def test_headers_over_64_kib_are_cut_off(server: ServeProcess) -> None:
    with _connect(server) as sock:
        try:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 1000) for i in range(80))
                + b"\r\n"
            )
        except (BrokenPipeError, ConnectionResetError):
            return  # closed while we were still sending: cut off
        sock.settimeout(5)
        try:
            reply = sock.recv(65536)
        except ConnectionResetError:
            reply = b""
        assert reply == b"", reply[:100]


def test_headers_under_the_limit_are_served(server: ServeProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 1000) for i in range(40))
            + b"\r\n"
        )
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_a_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    server: ServeProcess,
) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        took = _seconds_until_closed(sock)
    assert took >= TIMEOUT * 0.8


def test_a_stalled_body_is_cut_off_at_the_body_timeout(server: ServeProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/login-requests HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"device'
        )
        took = _seconds_until_closed(sock)
    assert took >= TIMEOUT * 0.8


def test_a_request_that_is_quick_enough_is_served_and_an_event_stream_outlives_the_timeouts(
    server: ServeProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        created = client.post("/api/v1/login-requests", json={})
        assert created.status_code == 201
        body = created.json()
        auth = {"authorization": f"Bearer {body['secret']}"}
        with client.stream("GET", f"/api/v1/login-requests/{body['id']}/events", headers=auth) as s:
            assert s.status_code == 200
            started = time.monotonic()
            lines = s.iter_lines()
            assert next(lines).startswith("retry:")
            time.sleep(TIMEOUT * 2.5)  # past every timeout: the stream is the app's to end
            cancel = httpx.delete(f"{server.url}/api/v1/login-requests/{body['id']}", headers=auth)
            assert cancel.status_code == 200
            seen = []
            for line in lines:  # ends when the server closes the stream (a final state)
                seen.append(line)
                assert time.monotonic() - started < 30
        assert any('"status":"cancelled"' in line for line in seen), seen


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    yield from _serve(tmp_path_factory.mktemp("capped"), MAX_CONNECTIONS="3", HEADER_TIMEOUT="30")


def test_beyond_max_connections_new_requests_get_a_json_503(capped: ServeProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    held = [_connect(capped) for _ in range(2)]
    try:
        time.sleep(0.3)  # let the server see them
        with _connect(capped) as third:  # the 3rd connection: within the cap
            third.sendall(request)
            assert _read_response(third).startswith(b"HTTP/1.1 200")
        held.append(_connect(capped))
        time.sleep(0.3)
        with _connect(capped) as fourth:  # 3 held + this one: one over
            fourth.sendall(request)
            reply = _read_response(fourth)
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503")
            headers = head.decode().lower()
            assert "content-type: application/json" in headers
            assert "retry-after: 5" in headers and "connection: close" in headers
            assert "content-security-policy:" in headers
            assert set(json.loads(body)) == {"error", "message"}
            assert json.loads(body)["error"] == "server_busy"
            assert _seconds_until_closed(fourth, limit=5) < 5
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{capped.url}/healthz", timeout=5).status_code == 200  # room again
