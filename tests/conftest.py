"""Fixtures for the whole suite (this conftest sits at the top of tests/, so every
test in every sub-folder sees them). Plain helpers live in tests/support.py.

Fixtures
--------
smtp_sink                  real SMTP server on 127.0.0.1 collecting mail (support.SmtpSink)
live_server(**overrides)   factory: real uvicorn running qrlogin's app in a thread
pg_url                     a fresh, empty PostgreSQL database (dropped afterwards)
pg_schemas                 session-wide: new PostgreSQL schemas at the migrations' head, each
                           reached by its own role (pg_support.PgSchemas; web sites, stores)
browser                    session-wide headless Debian Chromium (sync Playwright)
make_context(kind, **kw)   factory for extra browser contexts ("desktop" / "phone")
desktop, phone             one new browser context each

IMPORTANT: Playwright is used through its *sync* API. pytest-asyncio runs in
asyncio_mode = "auto", so every `async def` test runs inside an event loop, and the
sync Playwright API refuses to run inside one. Tests that drive a browser (that use
`browser`, `make_context`, `desktop` or `phone`) must be plain `def` tests and must
not use async fixtures. The hooks below keep Playwright's loop out of the way of
the async tests that run after a browser test.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pg_support import PgSchemas
from support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    LiveServer,
    SmtpSink,
    no_running_loop,
    start_live_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright


# --------------------------------------------------------------------------- mail


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; `.url` is smtp://127.0.0.1:PORT.

    A live_server started in a test that uses this fixture sends its mail here.
    """
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --------------------------------------------------------------------------- app server


@pytest.fixture
def live_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., LiveServer]]:
    """Factory: `live_server(*, app_kwargs=None, **settings_overrides) -> LiveServer`.

    The LiveServer has `.url`, `.settings`, `.app` and `.port`; `app_kwargs` go to
    `create_app(settings, **app_kwargs)` (e.g. a fake clock).

    Each call starts one real uvicorn on its own free port, with its own data dir
    under tmp_path, public_url = its own URL, dev=True, and smtp_url pointing at
    the `smtp_sink` fixture when the test uses that fixture (else None). Keyword
    arguments override any Settings field. All servers stop at teardown; a server
    that logged an unhandled exception fails the test (set
    `server.allow_server_errors = True` in tests that provoke one on purpose).
    """
    from qrlogin.config import Settings
    from qrlogin.web.app import create_app

    # the SMTP sink must outlive the servers (they send mail until they stop): take it first
    sink = request.getfixturevalue("smtp_sink") if "smtp_sink" in request.fixturenames else None
    servers: list[LiveServer] = []

    def start(*, app_kwargs: dict[str, Any] | None = None, **overrides: Any) -> LiveServer:
        data_dir = tmp_path / f"server{len(servers)}"
        data_dir.mkdir()

        def make_app(url: str) -> tuple[Any, Any]:
            kwargs: dict[str, Any] = {"data_dir": data_dir, "public_url": url, "dev": True}
            if sink is not None:
                kwargs["smtp_url"] = sink.url
            kwargs.update(overrides)
            settings = Settings(**kwargs)
            return settings, create_app(settings, **(app_kwargs or {}))

        server = start_live_server(make_app)
        servers.append(server)
        return server

    yield start

    problems: list[str] = []
    for server in reversed(servers):
        try:
            server.stop()
        except AssertionError as exc:
            problems.append(str(exc))
        if server.server_errors and not server.allow_server_errors:
            problems.append(
                f"server {server.url} logged errors:\n" + "\n".join(server.server_errors)
            )
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database (postgresql://...), dropped at teardown.

    For SQLAlchemy's asyncio engine use
    `pg_url.replace("postgresql://", "postgresql+asyncpg://", 1)`.
    Server: $QRLOGIN_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test).
    """
    import asyncpg

    admin = os.environ.get("QRLOGIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"qrlogin_test_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def execute(sql: str) -> None:
        with no_running_loop():
            asyncio.run(run(sql))

    try:
        execute(f'CREATE DATABASE "{name}"')
    except OSError as exc:
        pytest.fail(f"PostgreSQL at {admin} is not reachable ({exc}); is it running?")
    try:
        yield re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", admin, count=1)
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PgSchemas]:
    """The template schema, migrated once for the whole session (on first use)."""
    schemas = PgSchemas()
    with no_running_loop():
        try:
            asyncio.run(schemas.build())
        except OSError as exc:
            pytest.fail(f"PostgreSQL is not reachable ({exc}); is it running?")
    try:
        yield schemas
    finally:
        with no_running_loop():
            asyncio.run(schemas.close())


# --------------------------------------------------------------------------- browser

DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{version} Safari/537.36"
)
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{version} Mobile Safari/537.36"
)
CONTEXT_KINDS: dict[str, dict[str, Any]] = {
    "desktop": {
        "viewport": {"width": 1280, "height": 800},
        "device_scale_factor": 1,
        "is_mobile": False,
        "has_touch": False,
        "user_agent": DESKTOP_UA,
    },
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
        "user_agent": PHONE_UA,
    },
}
DEFAULT_TIMEOUT_MS = 10_000

# The loop that sync Playwright keeps marked as running on the main thread.
_playwright_loop: list[asyncio.AbstractEventLoop] = []


def _uses_browser(item: pytest.Item) -> bool:
    return "_playwright" in getattr(item, "fixturenames", ())


# What puts a test on a server: a fixture that reaches one, or a parameter naming one
# (the web ``backend``, the store contract's ``store``, the buses' ``kind``, ...).
SERVER_FIXTURES = frozenset({"pg_url", "pg_schemas", "redis_server", "redis_buses", "pg_buses"})
SERVER_PARAMS = frozenset({"pg-redis", "pg-notify", "postgresql", "postgres", "redis"})


def _uses_servers(item: pytest.Item) -> bool:
    if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return any(isinstance(v, str) and v in SERVER_PARAMS for v in params)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Markers set from what a test uses, so ``scripts/test --fast`` also leaves out new tests
    # that nobody marked: ``browser`` drives Chromium, ``servers`` needs PostgreSQL or Redis.
    for item in items:
        if _uses_browser(item):
            item.add_marker(pytest.mark.browser)
        if _uses_servers(item):
            item.add_marker(pytest.mark.servers)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    # Sync Playwright leaves its loop set as the thread's running loop between
    # calls, which would make every later async test fail with "Cannot run the
    # event loop while another loop is running". Browser tests get it back;
    # everything else runs with no running loop.
    loop = _playwright_loop[0] if _playwright_loop else None
    if loop is not None and not loop.is_closed():
        asyncio._set_running_loop(loop if _uses_browser(item) else None)
    try:
        return (yield)
    finally:
        if _playwright_loop and asyncio._get_running_loop() is _playwright_loop[0]:
            asyncio._set_running_loop(None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_reports_key, {})[report.when] = report
    return report


_reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture(scope="session")
def _playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    loop = asyncio._get_running_loop()
    if loop is not None:
        _playwright_loop.append(loop)
    try:
        yield pw
    finally:
        if loop is not None:
            asyncio._set_running_loop(loop)
        pw.stop()
        asyncio._set_running_loop(None)
        _playwright_loop.clear()


@pytest.fixture(scope="session")
def browser(_playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium (/usr/bin/chromium), shared by the whole session.

    Sync Playwright: only use it from plain `def` tests (see this module's docstring).
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium)")
    browser = _playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def make_context(
    browser: Browser, request: pytest.FixtureRequest
) -> Generator[Callable[..., BrowserContext], None, None]:
    """Factory: `make_context("desktop" | "phone", **new_context_kwargs) -> BrowserContext`.

    Contexts close at teardown, after a screenshot of every page still open is saved under
    test-artifacts/<test name>/ (the test report's pictures: the pages as each test left
    them, and what a failing test saw).
    """
    contexts: list[tuple[str, BrowserContext]] = []

    def new(kind: str = "desktop", **overrides: Any) -> BrowserContext:
        options = dict(CONTEXT_KINDS[kind])
        options["user_agent"] = options["user_agent"].format(version=browser.version)
        options.update(overrides)
        context = browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append((kind, context))
        return context

    yield new

    reports = request.node.stash.get(_reports_key, {})
    outcome = "failed" if any(r.failed for r in reports.values()) else "passed"
    folder = REPO_ROOT / "test-artifacts" / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (kind, context) in enumerate(contexts):
        for j, page in enumerate(context.pages):
            try:
                page.screenshot(path=str(folder / f"{outcome}-{i}-{kind}-{j}.png"), full_page=True)
            except Exception as exc:
                print(f"could not save a screenshot of {page.url}: {exc}")
        context.close()


@pytest.fixture
def desktop(make_context: Callable[..., BrowserContext]) -> BrowserContext:
    """A fresh desktop browser context (1280x800, Linux Chrome user agent)."""
    return make_context("desktop")


@pytest.fixture
def phone(make_context: Callable[..., BrowserContext]) -> BrowserContext:
    """A fresh phone browser context (390x844 @3x, touch, Android Chrome user agent)."""
    return make_context("phone")
