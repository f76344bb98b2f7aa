"""Helpers for the in-process web tests: the two kinds of requester, approvers, and a running
site with its clients, outbox and database. Fixtures that build them live in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import FastAPI
from sqlalchemy import Table, func, select, text

from qrlogin.mail import Mail
from qrlogin.services import Services

PUBLIC_URL = "http://testserver"
REQUESTER_KINDS = ("api", "browser")
BROWSER = {"qrlogin-client": "browser"}
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')

# The backends the whole in-process suite runs on (a test id shows which, e.g. ``[pg-redis]``)
BACKENDS = ("sqlite", "pg-redis", "pg-notify")
PG_ADMIN = os.environ.get("QRLOGIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QRLOGIN_TEST_REDIS", "redis://127.0.0.1:6379/0")


def backend_settings(backend: str, database_url: str | None, prefix: str) -> dict[str, Any]:
    """The settings that put a site on ``backend``."""
    if backend == "sqlite":
        return {}
    if backend == "pg-redis":
        return {"database_url": database_url, "redis_url": REDIS_URL, "redis_prefix": prefix}
    if backend == "pg-notify":
        return {"database_url": database_url, "events": "postgres", "redis_prefix": prefix}
    raise ValueError(f"unknown backend {backend!r}")


def pg_url_as(role: str, *, driver: str = "postgresql") -> str:
    """The test server's URL, logged in as ``role`` (the test server trusts local users)."""
    parts = urlsplit(PG_ADMIN)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((driver, f"{role}@{host}", parts.path, parts.query, ""))


class PgSchemas:
    """PostgreSQL for the in-process suite: one schema per site, not one database (creating
    and dropping a database costs seconds on a busy machine, a schema milliseconds).

    Each schema is owned by a login role of the same name whose ``search_path`` is that
    schema, so the app under test sees a database of its own through a plain URL. The
    migrations run once, into a template schema; every site gets a copy of its tables
    (``pg_dump --schema-only`` of the template replayed under the new name) and the same
    ``alembic_version``, so the app's own migration step at start finds the schema at head.
    """

    def __init__(self) -> None:
        self.template = f"qrlt_tmpl_{uuid.uuid4().hex[:12]}"
        self.ddl = ""
        self.revision = ""

    @staticmethod
    async def _admin(sql: str, *args: Any) -> Any:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            return await conn.fetch(sql, *args) if args else await conn.execute(sql)
        finally:
            await conn.close()

    @classmethod
    async def _create_owned(cls, name: str) -> None:
        await cls._admin(
            f'CREATE ROLE "{name}" LOGIN; CREATE SCHEMA "{name}" AUTHORIZATION "{name}"; '
            f'ALTER ROLE "{name}" SET search_path = "{name}"'
        )

    @classmethod
    async def drop(cls, name: str) -> None:
        await cls._admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'; "
            f'DROP SCHEMA IF EXISTS "{name}" CASCADE; DROP ROLE IF EXISTS "{name}"'
        )

    async def build(self) -> None:
        """Migrate the template schema and keep its DDL (once per test session)."""
        from qrlogin.store.engine import make_engine
        from qrlogin.store.migrate import upgrade

        await self._create_owned(self.template)
        engine = make_engine(pg_url_as(self.template, driver="postgresql+asyncpg"))
        try:
            await upgrade(engine)
            async with engine.connect() as conn:
                self.revision = str(
                    await conn.scalar(text("SELECT version_num FROM alembic_version"))
                )
        finally:
            await engine.dispose()
        dump = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--schema",
             self.template, PG_ADMIN],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        self.ddl = "\n".join(
            line
            for line in dump.splitlines()
            if not line.startswith(("CREATE SCHEMA", "ALTER SCHEMA", "\\"))  # psql meta lines
        )
        assert f"{self.template}.login_requests" in self.ddl, dump[:2000]

    async def new(self) -> str:
        """A new schema (and role) with every table at the migrations' head; its name.
        ``pg_url_as(name, driver="postgresql+asyncpg")`` reaches it."""
        import asyncpg

        name = f"qrlt_{uuid.uuid4().hex[:16]}"
        await self._create_owned(name)
        conn = await asyncpg.connect(pg_url_as(name), timeout=10)
        try:
            await conn.execute(self.ddl.replace(self.template, name))
            await conn.execute(
                f'INSERT INTO "{name}".alembic_version (version_num) VALUES ($1)', self.revision
            )
        finally:
            await conn.close()
        return name

    async def close(self) -> None:
        await self.drop(self.template)


async def drop_redis_keys(prefix: str) -> None:
    """Delete every key a site wrote under its prefix (rate-limit windows)."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def handle_of(qr_url: str) -> str:
    return qr_url.rsplit("/q/", 1)[1]


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def code_in(mail: Mail) -> str:
    match = re.search(r"sign-in code is (\d{6})", mail.text)
    assert match, mail.text
    return match.group(1)


def link_token_in(mail: Mail) -> str:
    match = re.search(r"/auth/email/([A-Za-z0-9_-]+)", mail.text)
    assert match, mail.text
    return match.group(1)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """``Set-Cookie`` headers by cookie name (the whole header line as the value)."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


@dataclass
class Requester:
    """A device that wants to be signed in, of either kind: ``api`` holds the secret and sends
    it as a bearer token; ``browser`` never sees it and relies on its HttpOnly cookie."""

    kind: str
    client: httpx.AsyncClient
    created: dict[str, Any]
    secret: str  # from the body (api) or, as a test can peek, the cookie jar (browser)

    @property
    def id(self) -> str:
        return str(self.created["id"])

    @property
    def handle(self) -> str:
        return handle_of(self.created["qr_url"])

    @property
    def path(self) -> str:
        return f"/api/v1/login-requests/{self.id}"

    def headers(self, write: bool = False) -> dict[str, str]:
        if self.kind == "api":
            return {"authorization": f"Bearer {self.secret}"}
        return dict(BROWSER) if write else {}

    async def state(self, **params: Any) -> httpx.Response:
        return await self.client.get(self.path, params=params, headers=self.headers())

    async def current(self) -> dict[str, Any]:
        response = await self.state()
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def events(self) -> httpx.Response:
        return await self.client.get(f"{self.path}/events", headers=self.headers())

    async def exchange(self, confirm_code: str | None = None, **kw: Any) -> httpx.Response:
        if "json" not in kw and "content" not in kw:
            kw["json"] = {} if confirm_code is None else {"confirm_code": confirm_code}
        headers = {**self.headers(write=True), **kw.pop("headers", {})}
        return await self.client.post(f"{self.path}/session", headers=headers, **kw)

    async def cancel(self) -> httpx.Response:
        return await self.client.delete(self.path, headers=self.headers(write=True))


@dataclass
class Approver:
    """A signed-in device: ``api`` sends its access token, ``browser`` its session cookie."""

    kind: str
    client: httpx.AsyncClient
    email: str
    session: dict[str, Any]
    token: str | None

    @property
    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = self.session["user"]
        return user

    def headers(self) -> dict[str, str]:
        if self.kind == "api":
            return {"authorization": f"Bearer {self.token}"}
        return dict(BROWSER)

    async def scan(self, handle: str) -> httpx.Response:
        return await self.client.get(f"/api/v1/scan/{handle}", headers=self.headers())

    async def approve(self, handle: str, **kw: Any) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/scan/{handle}/approve", headers=self.headers(), **kw
        )

    async def deny(self, handle: str) -> httpx.Response:
        return await self.client.post(f"/api/v1/scan/{handle}/deny", headers=self.headers())

    async def me(self) -> httpx.Response:
        return await self.client.get("/api/v1/me", headers=self.headers())


@dataclass
class Site:
    """One running app and the clients that talk to it."""

    app: FastAPI
    clock: Any
    base_url: str
    stack: contextlib.AsyncExitStack
    backend: str = "sqlite"
    responses: list[httpx.Response] = field(default_factory=list)  # every reply, in order
    _emails: int = field(default=0)

    @property
    def services(self) -> Services:
        svc: Services = self.app.state.services
        return svc

    def client(
        self,
        *,
        ip: str = "127.0.0.1",
        user_agent: str | None = None,
        follow_redirects: bool = False,
    ) -> httpx.AsyncClient:
        """A new client with its own cookie jar: another browser, another device."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50000))
        headers = {"user-agent": user_agent} if user_agent else None

        async def record(response: httpx.Response) -> None:
            self.responses.append(response)

        client = httpx.AsyncClient(
            transport=transport,
            base_url=self.base_url,
            headers=headers,
            follow_redirects=follow_redirects,
            event_hooks={"response": [record]},
        )
        self.stack.push_async_callback(client.aclose)
        return client

    def set_cookie_lines(self) -> list[str]:
        """Every ``Set-Cookie`` header the site has sent so far."""
        return [line for r in self.responses for line in r.headers.get_list("set-cookie")]

    # -- mail ------------------------------------------------------------------------------

    @property
    def outbox(self) -> list[Mail]:
        """Newest first."""
        assert self.services.outbox is not None
        return list(self.services.outbox.outbox)

    def last_mail(self, to: str) -> Mail:
        return next(m for m in self.outbox if m.to == to.lower())

    def new_email(self, name: str = "user") -> str:
        self._emails += 1
        return f"{name}{self._emails}@example.com"

    # -- database --------------------------------------------------------------------------

    async def count(self, table: Table) -> int:
        async with self.services.store.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)

    async def rows(self, table: Table) -> list[dict[str, Any]]:
        async with self.services.store.engine.connect() as conn:
            result = await conn.execute(select(table).order_by(*table.primary_key.columns))
            return [dict(r) for r in result.mappings()]

    async def database_bytes(self) -> bytes:
        """All the database holds, as an attacker with a copy of it would see it: the SQLite
        files byte for byte, or every row of every table of the PostgreSQL schema."""
        if self.backend == "sqlite":
            data_dir = Path(self.services.settings.data_dir)
            files = [data_dir / n for n in ("qrlogin.db", "qrlogin.db-wal", "qrlogin.db-shm")]
            assert files[0].exists()
            return b"".join(f.read_bytes() for f in files if f.exists())
        chunks: list[bytes] = []
        async with self.services.store.engine.connect() as conn:
            names = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema() ORDER BY table_name"
                    )
                )
            ).scalars()
            names = list(names)
            assert "login_requests" in names, names
            for name in names:
                for row in (await conn.execute(text(f'SELECT * FROM "{name}"'))).all():
                    for value in row:
                        if isinstance(value, bytes | bytearray | memoryview):
                            chunks.append(bytes(value))
                        elif value is not None:
                            chunks.append(str(value).encode())
        return b"\x00".join(chunks)

    # -- actors ----------------------------------------------------------------------------

    async def new_requester(
        self, kind: str, device_name: str | None = None, **client_kw: Any
    ) -> Requester:
        client = self.client(**client_kw)
        body = {} if device_name is None else {"device_name": device_name}
        headers = BROWSER if kind == "browser" else {}
        response = await client.post("/api/v1/login-requests", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created = response.json()
        secret = created["secret"] or next(
            v for k, v in client.cookies.items() if k.endswith("qrl_requester")
        )
        return Requester(kind, client, created, secret)

    async def sign_in(
        self, email: str | None = None, *, kind: str = "api", **client_kw: Any
    ) -> Approver:
        """Sign a device in by email code: ``api`` gets an access token, ``browser`` a
        session cookie in its jar."""
        email = email or self.new_email()
        client = self.client(**client_kw)
        started = await client.post("/api/v1/auth/email/start", json={"email": email})
        assert started.status_code == 202, started.text
        code = code_in(self.last_mail(email))
        headers = BROWSER if kind == "browser" else {}
        verified = await client.post(
            "/api/v1/auth/email/verify", json={"email": email, "code": code}, headers=headers
        )
        assert verified.status_code == 200, verified.text
        session = verified.json()
        return Approver(kind, client, email, session, session["access_token"])

    async def approved(self, requester: Requester, approver: Approver) -> str | None:
        """Scan and approve; the confirm code the approver is shown (None under "tap")."""
        scanned = await approver.scan(requester.handle)
        assert scanned.status_code == 200, scanned.text
        response = await approver.approve(requester.handle)
        assert response.status_code == 200, response.text
        code: str | None = response.json()["confirm_code"]
        return code

    async def signed_in(self, requester: Requester, approver: Approver) -> httpx.Response:
        """The whole handshake: scan, approve, exchange with the confirm code."""
        code = await self.approved(requester, approver)
        response = await requester.exchange(code)
        assert response.status_code == 200, response.text
        return response


async def within(awaitable: Awaitable[Any], seconds: float = 10) -> Any:
    """Await with a deadline, so a hang fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)
