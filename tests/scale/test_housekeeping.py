"""Housekeeping (issue 5): ``expire_due`` writes ``expired`` with one activity row per
request, ``collect_garbage`` deletes what ended long ago in bounded batches, and under a
constant load the database stays the same size instead of growing. On SQLite and on
PostgreSQL, with a FrozenClock that the test moves by hours and days.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from qrlogin.config import Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.policy import Policy
from qrlogin.events.port import login_request_channel
from qrlogin.store.tables import (
    audit_events,
    email_logins,
    login_requests,
    metadata,
    refresh_tokens,
    sessions,
    users,
)
from qrlogin.web import app as app_module
from qrlogin.web.app import create_app
from web.web_support import PUBLIC_URL, Site

HOUR = 3600.0
DAY = 24 * HOUR
POLICY = Policy(session_lifetime=2 * DAY, session_idle_timeout=DAY)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture
async def site(
    database: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Site]:
    """One app on the frozen clock, without its 15-second sweeper: the test sweeps itself."""

    async def no_sweeper(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(app_module, "_housekeeping", no_sweeper)
    settings = Settings(
        data_dir=tmp_path,
        public_url=PUBLIC_URL,
        database_url=database,
        confirm="tap",
        rate_limits=False,
        dev=True,
        secret_key="housekeeping-" + "k" * 30,
    )
    clock = FrozenClock()
    app = create_app(settings, clock=clock, policy=POLICY)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield Site(app, clock, PUBLIC_URL, stack)


async def counts(site: Site) -> dict[str, int]:
    async with site.services.store.engine.connect() as conn:
        return {
            table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in metadata.sorted_tables
        }


async def audit_rows(site: Site, event: str) -> list[dict[str, Any]]:
    return [r for r in await site.rows(audit_events) if r["event"] == event]


# --------------------------------------------------------------------------- expire_due


async def test_expire_due_writes_expired_and_one_activity_row_per_request(site: Site) -> None:
    approver = await site.sign_in()
    pending = [await site.new_requester("api") for _ in range(3)]
    scanned = await site.new_requester("api")
    assert (await approver.scan(scanned.handle)).status_code == 200
    approved = await site.new_requester("api")
    await site.approved(approved, approver)
    consumed = await site.new_requester("api")
    await site.signed_in(consumed, approver)
    denied = await site.new_requester("api")
    assert (await approver.scan(denied.handle)).status_code == 200
    assert (await approver.deny(denied.handle)).status_code == 200
    live = [*pending, scanned, approved]

    lr = site.services.login_requests
    assert await lr.expire_due() == 0  # nothing is due yet
    site.clock.advance(POLICY.request_lifetime + 1)
    with site.services.bus.subscribe(login_request_channel(scanned.id)) as listener:
        assert await lr.expire_due() == len(live)
        assert await listener.wait(0), "the listeners of an expired request are told"

    rows = {r["id"]: r for r in await site.rows(login_requests)}
    for req in live:
        assert rows[req.id]["status"] == "expired"
        assert rows[req.id]["finished_at"] == site.clock.now()
    assert rows[consumed.id]["status"] == "consumed"
    assert rows[denied.id]["status"] == "denied"
    expired_rows = await audit_rows(site, "request.expired")
    assert sorted(r["request_id"] for r in expired_rows) == sorted(r.id for r in live)

    # a second sweep finds nothing and writes nothing
    assert await lr.expire_due() == 0
    assert len(await audit_rows(site, "request.expired")) == len(live)
    for req in live:
        assert (await req.current())["status"] == "expired"


async def test_expire_due_works_in_bounded_batches(site: Site) -> None:
    ids = [(await site.new_requester("api")).id for _ in range(12)]
    site.clock.advance(POLICY.request_lifetime + 1)
    store, now = site.services.store, site.clock.now()

    def audit_for(rec: Any) -> Any:
        return site.services.login_requests._entry("request.expired", rec)

    assert len(await store.expire_due(now, audit_for, batch=5)) == 5
    assert len(await store.expire_due(now, audit_for, batch=5)) == 5
    assert len(await store.expire_due(now, audit_for, batch=5)) == 2
    assert await store.expire_due(now, audit_for, batch=5) == []
    assert sorted(r["request_id"] for r in await audit_rows(site, "request.expired")) == sorted(ids)


# --------------------------------------------------------------------------- collect_garbage


async def make_backlog(site: Site, n: int) -> None:
    """``n`` of each: login requests (some finished, some left to expire), email logins,
    sessions (with refresh tokens), and the activity rows all of that wrote."""
    for i in range(n):
        approver = await site.sign_in()  # an email login, a user, a session, a refresh token
        requester = await site.new_requester("api")
        if i % 2:
            await site.signed_in(requester, approver)  # a second session, from a request


async def test_collect_garbage_deletes_at_most_one_batch_per_table_per_call(site: Site) -> None:
    n = 12
    await make_backlog(site, n)
    before = await counts(site)
    assert before["login_requests"] == n and before["email_logins"] == n
    assert before["sessions"] == n + n // 2 and before["audit_events"] >= 4 * n

    store = site.services.store
    # nothing has ended long enough ago yet
    assert await store.collect_garbage(site.clock.now(), batch=5) == 0
    assert await counts(site) == before

    # past every retention: requests and email logins an hour after they expire, sessions
    # 30 days after they end, activity rows after 90 days
    site.clock.advance(91 * DAY)
    rounds: list[dict[str, int]] = []
    for _ in range(20):  # bounded: the backlog empties in ceil(rows / 5) calls per table
        last = await counts(site)
        removed = await store.collect_garbage(site.clock.now(), batch=5)
        now = await counts(site)
        deleted = {t: last[t] - now[t] for t in now}
        rounds.append(deleted)
        for table in ("login_requests", "email_logins", "sessions", "audit_events"):
            assert 0 <= deleted[table] <= 5, (table, deleted)
        assert removed == sum(
            deleted[t] for t in ("login_requests", "email_logins", "sessions", "audit_events")
        )
        if removed == 0:
            break
    else:
        pytest.fail(f"the backlog was not gone after 20 calls: {rounds}")

    after = await counts(site)
    assert after["login_requests"] == after["email_logins"] == 0
    assert after["sessions"] == after["refresh_tokens"] == after["audit_events"] == 0
    assert after["users"] == before["users"]  # accounts are kept
    assert rounds[0]["audit_events"] == 5 and rounds[0]["login_requests"] == 5


async def test_collect_garbage_keeps_what_is_still_within_retention(site: Site) -> None:
    await make_backlog(site, 4)
    site.clock.advance(2 * HOUR)  # requests and email logins ended over an hour ago
    store = site.services.store
    while await store.collect_garbage(site.clock.now(), batch=100):
        pass
    left = await counts(site)
    assert left["login_requests"] == left["email_logins"] == 0
    assert left["sessions"] == 6  # live sessions are never collected
    assert left["audit_events"] > 0  # activity is kept 90 days

    site.clock.advance(POLICY.session_lifetime)  # every session has ended, but not 30 days ago
    while await store.collect_garbage(site.clock.now(), batch=100):
        pass
    assert (await counts(site))["sessions"] == 6
    site.clock.advance(30 * DAY)
    while await store.collect_garbage(site.clock.now(), batch=100):
        pass
    assert (await counts(site))["sessions"] == 0


# --------------------------------------------------------------------------- constant load


async def one_day(site: Site, day: int) -> None:
    """One simulated day of constant load: sign-ins by email, QR logins that finish, one
    that is abandoned, an email sign-in left unused, refreshes, a sign-out; then the sweeps
    the app runs every 15 s."""
    approver = await site.sign_in(f"user{day % 7}@example.com")  # a small, steady user base
    for _ in range(2):
        requester = await site.new_requester("api")
        await site.signed_in(requester, approver)
    await site.new_requester("api")  # nobody ever scans it
    await site.client().post("/api/v1/auth/email/start", json={"email": "idle@example.com"})
    refresh, access = approver.session["refresh_token"], approver.token
    for _ in range(2):
        body = {"refresh_token": refresh}
        refreshed = await site.client().post("/api/v1/token/refresh", json=body)
        assert refreshed.status_code == 200, refreshed.text
        refresh, access = refreshed.json()["refresh_token"], refreshed.json()["access_token"]
    if day % 2:
        bearer = {"authorization": f"Bearer {access}"}
        out = await site.client().post("/api/v1/logout", headers=bearer)
        assert out.status_code == 204, out.text

    for _ in range(4):  # sweeps every 6 hours (plenty: each deletes up to 500 per table)
        site.clock.advance(6 * HOUR)
        await site.services.login_requests.expire_due()
        await site.services.store.collect_garbage(site.clock.now())


@pytest.mark.slow  # 100 simulated days of traffic and sweeps (9 s on SQLite, 65 s on PostgreSQL)
async def test_row_counts_stay_flat_under_constant_load(site: Site) -> None:
    """Past the longest retention (90 days of activity) every table stops growing: what is
    written each day is what the sweeps delete each day."""
    history: list[dict[str, int]] = []
    for day in range(100):
        await one_day(site, day)
        history.append(await counts(site))
    settled, end = history[92], history[-1]
    for table in (login_requests, email_logins, sessions, refresh_tokens, audit_events, users):
        name = table.name
        peak = max(h[name] for h in history[92:])
        assert end[name] <= settled[name] + 2, (name, settled[name], end[name])
        assert peak <= settled[name] + 2, (name, [h[name] for h in history[::5]])
    # and the bound is small: about one day's requests, a month of sessions, 90 days of rows
    assert end["login_requests"] <= 3 and end["email_logins"] <= 2, end
    assert end["users"] == 7
    growth = {t: end[t] - history[40][t] for t in end}  # sessions settle after 32 days
    assert growth["login_requests"] <= 0 and growth["sessions"] <= 0, growth
