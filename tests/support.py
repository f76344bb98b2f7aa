"""Helpers shared by the test suite (the fixtures themselves live in tests/conftest.py).

Import from any test, in any sub-folder of tests/:

    from support import read_qr_from_page, assert_no_axe_violations, free_port

(tests/ is put on sys.path by pytest because tests/conftest.py lives there and
tests/ has no __init__.py.)
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn
    from playwright.sync_api import Page

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
AXE_JS = TESTS_DIR / "browser" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# --------------------------------------------------------------------------- ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (small race: prefer bound_socket())."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket already bound to a free port (not yet listening); no race at all."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only then (else Nagle + delayed ACK
    # add ~45 ms to every request after the first on a connection)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


# --------------------------------------------------------------------------- SMTP sink


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it gets.

    `messages` are parsed `email.message.EmailMessage` objects, oldest first.
    Use `latest_to(address)` / `wait_for(predicate)` to wait (bounded) for mail.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._messages: list[EmailMessage] = []
        self._recipients: list[list[str]] = []  # envelope RCPT TO, parallel to _messages
        self._controller: Any = None
        self.host = "127.0.0.1"
        self.port = 0

    # aiosmtpd handler hook; runs on the controller's thread.
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        rcpts = [str(r).lower() for r in envelope.rcpt_tos]
        with self._cond:
            self._messages.append(msg)
            self._recipients.append(rcpts)
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        last_error: Exception | None = None
        for _ in range(5):  # free_port() can race with another process; retry
            port = free_port(self.host)
            controller = Controller(self, hostname=self.host, port=port, ready_timeout=10)
            try:
                controller.start()
            except Exception as exc:
                last_error = exc
                _close_controller_loop(controller)
                continue
            self._controller = controller
            self.port = port
            return
        raise RuntimeError(f"could not start the SMTP sink: {last_error!r}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            _close_controller_loop(controller)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._cond:
            return list(self._messages)

    def __len__(self) -> int:
        with self._cond:
            return len(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._recipients.clear()

    def wait_for(
        self,
        predicate: Callable[[EmailMessage], bool],
        timeout: float = 10,
        *,
        after: int = 0,
    ) -> EmailMessage:
        """Newest message (index >= `after`) satisfying `predicate`; waits up to `timeout` s.

        Pass `after=len(sink)` taken before an action to only accept mail sent since.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in reversed(self._messages[after:]):
                    if predicate(msg):
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [
                        f"  to={rc} subject={m.get('Subject')!r}"
                        for m, rc in zip(self._messages, self._recipients, strict=True)
                    ]
                    raise AssertionError(
                        f"no matching mail arrived within {timeout}s; "
                        f"{len(self._messages)} received:\n" + "\n".join(summary)
                    )
                self._cond.wait(min(remaining, 0.5))

    def latest_to(self, address: str, timeout: float = 10, *, after: int = 0) -> EmailMessage:
        """Newest message addressed to `address` (envelope or To/Cc), waiting if needed."""
        wanted = address.strip().lower()

        def addressed(msg: EmailMessage) -> bool:
            return wanted in self._addresses_of(msg)

        return self.wait_for(addressed, timeout, after=after)

    def _addresses_of(self, msg: EmailMessage) -> set[str]:
        # Called with self._cond held (from wait_for).
        found = {a.lower() for _, a in getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))}
        for m, rcpts in zip(self._messages, self._recipients, strict=True):
            if m is msg:
                found.update(rcpts)
        return found


def _close_controller_loop(controller: Any) -> None:
    loop = getattr(controller, "loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()


def mail_text(msg: EmailMessage) -> str:
    """The plain-text body of a message (falls back to the HTML body)."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


_URL_RE = re.compile(r"""https?://[^\s"'<>]+""")


def mail_links(msg: EmailMessage) -> list[str]:
    """All http(s) URLs in the message's text (and HTML) bodies, in order, without duplicates."""
    seen: dict[str, None] = {}
    for pref in ("plain", "html"):
        part = msg.get_body(preferencelist=(pref,))
        if part is None:
            continue
        content = part.get_content()
        text = content if isinstance(content, str) else content.decode("utf-8", "replace")
        for url in _URL_RE.findall(text):
            seen.setdefault(url.rstrip(".,);").replace("&amp;", "&"), None)
    return list(seen)


# --------------------------------------------------------------------------- live server


@dataclass
class LiveServer:
    """A real uvicorn serving the app on 127.0.0.1 in a background thread."""

    url: str
    settings: Any
    app: Any
    port: int
    # Records logged at ERROR or above by uvicorn while serving (e.g. "Exception in
    # ASGI application"). The live_server fixture fails the test if any are left
    # here at teardown, unless `allow_server_errors` is set to True by the test.
    server_errors: list[str] = field(default_factory=list)
    allow_server_errors: bool = False
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None
    _failure: list[BaseException] = field(default_factory=list)
    _log_handler: Any = None

    def stop(self, timeout: float = 15) -> None:
        """Stop serving (idempotent); re-raises an exception that killed the server thread."""
        import logging

        server, thread = self._server, self._thread
        try:
            if server is not None and thread is not None:
                server.should_exit = True
                thread.join(timeout)
                if thread.is_alive():
                    server.force_exit = True
                    thread.join(5)
                if thread.is_alive():
                    raise AssertionError(f"live server {self.url} did not stop within {timeout}s")
        finally:
            if self._log_handler is not None:
                logging.getLogger("uvicorn.error").removeHandler(self._log_handler)
                self._log_handler = None
        self._server = self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._failure:
            exc = self._failure.pop()
            if not (isinstance(exc, SystemExit) and exc.code in (0, None)):
                raise AssertionError(f"live server {self.url} crashed: {exc!r}") from exc


_CLIENT_GONE = {"CancelledError", "WebSocketDisconnect", "ClientDisconnect"}


def start_live_server(
    make_app: Callable[[str], tuple[Any, Any]], *, startup_timeout: float = 30
) -> LiveServer:
    """Bind a free port, build the app for that URL, and serve it until `.stop()`.

    `make_app(public_url) -> (settings, asgi_app)`; the port is chosen (and already
    bound) before `make_app` is called, so the app knows its own URL.
    """
    import logging

    import uvicorn

    sock = bound_socket()
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        settings, app = make_app(url)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            log_config=None,  # leave logging alone: records reach pytest's log capture
            lifespan="on",
            loop="asyncio",  # never install uvloop's global event loop policy
            timeout_graceful_shutdown=3,  # SSE / websocket clients must not block teardown
        )
        config.load()  # import errors etc. surface here, in the test's thread
        server = uvicorn.Server(config)
    except BaseException:
        sock.close()
        raise

    live = LiveServer(url=url, settings=settings, app=app, port=port, _server=server, _sock=sock)

    class _ErrorCollector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if live._thread is None or record.thread != live._thread.ident:
                return
            # Requests still open when the graceful-shutdown timeout runs out (an
            # event stream, a websocket) are cancelled, and a client that goes away
            # (a page closed at teardown) ends its websocket: not app errors.
            if str(record.msg).startswith("Cancel %s running task"):
                return
            if record.exc_info and type(record.exc_info[1]).__name__ in _CLIENT_GONE:
                return
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            live.server_errors.append(text)

    handler = _ErrorCollector(level=logging.ERROR)

    def run() -> None:
        try:
            # A fresh event loop owned by this thread (asyncio.run makes and closes it).
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:
            live._failure.append(exc)

    thread = threading.Thread(target=run, name=f"live-server-{port}", daemon=True)
    live._thread = thread
    live._log_handler = handler
    logging.getLogger("uvicorn.error").addHandler(handler)
    thread.start()

    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            errors = "\n".join(live.server_errors)
            live.server_errors.clear()
            failure = live._failure[-1] if live._failure else None
            try:
                live.stop()
            except AssertionError:
                pass
            raise AssertionError(
                f"live server on {url} failed to start (lifespan startup failed?): "
                f"{failure!r}\n{errors}"
            )
        if time.monotonic() > deadline:
            live.stop()
            raise AssertionError(f"live server on {url} did not start within {startup_timeout}s")
        time.sleep(0.02)
    return live


# --------------------------------------------------------------------------- asyncio/Playwright


@contextmanager
def no_running_loop() -> Iterator[None]:
    """Temporarily hide a 'running' event loop left set on this thread by sync Playwright.

    Sync Playwright keeps its own loop marked as running on the main thread between
    calls; pytest-asyncio (and asyncio.run) refuse to start a loop while that is so.
    """
    saved = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(saved)


# --------------------------------------------------------------------------- QR codes


def decode_qr(png: bytes) -> list[str]:
    """Texts of all QR codes found in a PNG image (tries padded/upscaled variants)."""
    import zxingcpp
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(png)).convert("L")
    variants = [
        image,
        ImageOps.expand(image, border=40, fill=255),  # element cropped without quiet zone
        ImageOps.expand(image.resize((image.width * 2, image.height * 2)), border=40, fill=255),
    ]
    for variant in variants:
        found = zxingcpp.read_barcodes(variant, formats=zxingcpp.BarcodeFormat.QRCode)
        texts = [b.text for b in found if b.valid]
        if texts:
            return texts
    return []


def read_qr_from_page(page: Page, selector: str | None = None, *, timeout: float = 10) -> str:
    """Screenshot `selector` (or the whole page) and return the QR code's decoded text.

    Retries until `timeout` seconds pass (the QR may still be loading); raises
    AssertionError when no QR code could be read.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    png = b""
    while True:
        attempts += 1
        if selector is None:
            png = page.screenshot(full_page=True)
        else:
            png = page.locator(selector).first.screenshot(timeout=timeout * 1000)
        texts = decode_qr(png)
        if texts:
            return texts[0]
        if time.monotonic() >= deadline:
            out = REPO_ROOT / "test-artifacts" / f"unreadable-qr-{uuid.uuid4().hex[:8]}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(png)
            where = f"element {selector!r}" if selector else "the page"
            raise AssertionError(
                f"no QR code could be read from {where} on {page.url} "
                f"after {attempts} screenshots; last one saved to {out}"
            )
        page.wait_for_timeout(250)


# --------------------------------------------------------------------------- accessibility

AXE_IMPACTS = ("serious", "critical")


def axe_check(
    page: Page,
    *,
    impacts: tuple[str, ...] = AXE_IMPACTS,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run axe-core on the page; return violations whose impact is in `impacts`."""
    if not AXE_JS.is_file():
        raise AssertionError(
            f"{AXE_JS} is missing; run scripts/test (it installs axe-core with npm)"
        )
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        try:
            page.add_script_tag(path=str(AXE_JS))
        except Exception:
            # A strict Content-Security-Policy blocks the injected <script>;
            # evaluating over the DevTools protocol is not subject to CSP.
            page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;void 0")
    violations: list[dict[str, Any]] = page.evaluate(
        "async (options) => (await window.axe.run(document, options || {})).violations",
        options,
    )
    return [v for v in violations if v.get("impact") in impacts]


def format_axe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- [{v.get('impact')}] {v.get('id')}: {v.get('help')} ({v.get('helpUrl')})")
        for node in v.get("nodes", [])[:5]:
            lines.append(f"    {', '.join(map(str, node.get('target', [])))}")
            summary = (node.get("failureSummary") or "").strip().replace("\n", "\n      ")
            if summary:
                lines.append(f"      {summary}")
    return "\n".join(lines)


def assert_no_axe_violations(
    page: Page,
    *,
    impacts: tuple[str, ...] = AXE_IMPACTS,
    options: dict[str, Any] | None = None,
) -> None:
    """Fail listing every serious/critical axe-core violation on the page."""
    violations = axe_check(page, impacts=impacts, options=options)
    if violations:
        raise AssertionError(
            f"{len(violations)} accessibility violation(s) on {page.url}:\n"
            + format_axe_violations(violations)
        )
