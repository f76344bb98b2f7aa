"""Account lockout (DESIGN.md requirement 6): 100 consecutive wrong codes lock an account for a
while and mail its owner one notice; a success resets the streak.

Runs against a real uvicorn with real SMTP. IP rate limits are off (``rate_limits=False``) so
that only the per-code and per-account rules are in play.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from email.message import EmailMessage

import httpx

from qrlogin.core.clock import FrozenClock
from qrlogin.core.policy import Policy
from support import LiveServer, SmtpSink, mail_text

# Tests ask for `smtp_sink` before `live_server`, so the server stops (and finishes sending
# any background mail) before the SMTP sink goes away.
START = "/api/v1/auth/email/start"
VERIFY = "/api/v1/auth/email/verify"
LOCKOUT = Policy().account_failure_lockout  # 100
PER_CODE = Policy().code_attempts  # 5


def code_of(msg: EmailMessage) -> str:
    match = re.search(r"sign-in code is (\d{6})\b", mail_text(msg))
    assert match, mail_text(msg)
    return match.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def is_notice(msg: EmailMessage) -> bool:
    return "locked" in str(msg["Subject"])


class Person:
    """One person at one device, talking to the live server."""

    def __init__(self, server: LiveServer, sink: SmtpSink, email: str) -> None:
        self.server = server
        self.sink = sink
        self.email = email
        self.client = httpx.AsyncClient(base_url=server.url, timeout=10)

    async def fresh_code(self) -> str:
        before = len(self.sink)
        response = await self.client.post(START, json={"email": self.email})
        assert response.status_code == 202, response.text
        msg = await asyncio.to_thread(self.sink.latest_to, self.email, 10, after=before)
        return code_of(msg)

    async def verify(self, code: str) -> httpx.Response:
        return await self.client.post(VERIFY, json={"email": self.email, "code": code})

    async def sign_in(self) -> dict[str, object]:
        response = await self.verify(await self.fresh_code())
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    async def fail(self, times: int) -> None:
        """``times`` consecutive wrong codes, asking for a fresh code whenever one burns."""
        code = ""
        for i in range(times):
            if i % PER_CODE == 0:
                code = await self.fresh_code()
            response = await self.verify(wrong(code))
            assert response.status_code == 400, (i, response.text)
            assert response.json()["error"] == "invalid_code"

    def account(self) -> tuple[int, float | None]:
        """(failed_code_streak, locked_at) straight from the server's database file."""
        db = self.server.settings.data_dir / "qrlogin.db"
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT failed_code_streak, locked_at FROM users WHERE email = ?", (self.email,)
            ).fetchone()
        assert row is not None, f"no account for {self.email}"
        return int(row[0]), row[1]

    def notices(self) -> list[EmailMessage]:
        return [m for m in self.sink.messages if m["To"] == self.email and is_notice(m)]

    async def aclose(self) -> None:
        await self.client.aclose()


def assert_locked(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == "account_locked"
    assert body["message"]
    retry = response.headers["retry-after"]
    assert retry.isdigit() and int(retry) > 0, retry
    return int(retry)


async def test_100_consecutive_wrong_codes_lock_the_account_and_send_one_notice(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    clock = FrozenClock()
    server = live_server(rate_limits=False, app_kwargs={"clock": clock})
    ada = Person(server, smtp_sink, "ada@example.com")
    bystander = Person(server, smtp_sink, "bob@example.com")
    try:
        session = await ada.sign_in()  # the account exists, and this device is signed in
        await bystander.sign_in()
        assert ada.account() == (0, None)

        await ada.fail(LOCKOUT - 1)
        assert ada.account() == (LOCKOUT - 1, None)
        assert ada.notices() == []

        await ada.fail(1)  # the 100th
        streak, locked_at = ada.account()
        assert streak == LOCKOUT
        assert locked_at == clock.now()

        # now even the right code is refused, with a Retry-After up to the lockout length
        code = await ada.fresh_code()
        retry = assert_locked(await ada.verify(code))
        assert retry <= Policy().account_lockout + 1
        for _ in range(3):  # more tries change nothing and mail nobody again
            assert_locked(await ada.verify(wrong(code)))
        assert ada.account() == (LOCKOUT, locked_at)

        # the signed-in device cannot type user codes while its account is locked
        token = session["access_token"]
        link = await ada.client.post(
            "/api/v1/link",
            json={"user_code": "123456"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert_locked(link)

        # exactly one notice went out, to the owner, and nobody else was locked
        notices = ada.notices()
        assert len(notices) == 1
        assert notices[0]["To"] == "ada@example.com"
        assert f"{LOCKOUT} wrong codes" in mail_text(notices[0])
        assert not any(is_notice(m) for m in smtp_sink.messages if m["To"] != ada.email)
        assert (await bystander.sign_in())["user"] is not None
        assert bystander.account() == (0, None)

        # once the lockout is over the right code works again and the streak starts over
        clock.advance(Policy().account_lockout + 1)
        back = await ada.verify(await ada.fresh_code())
        assert back.status_code == 200, back.text
        assert ada.account() == (0, None)
        assert len(ada.notices()) == 1
    finally:
        await ada.aclose()
        await bystander.aclose()


async def test_a_success_before_100_resets_the_streak(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server(rate_limits=False)
    ada = Person(server, smtp_sink, "ada@example.com")
    try:
        await ada.sign_in()

        await ada.fail(LOCKOUT - 1)
        assert ada.account() == (LOCKOUT - 1, None)
        await ada.sign_in()  # one right code
        assert ada.account() == (0, None)

        await ada.fail(1)  # 100 wrong codes in all, but not in a row: no lock
        assert ada.account() == (1, None)
        response = await ada.verify(await ada.fresh_code())
        assert response.status_code == 200, response.text
        assert ada.notices() == []
    finally:
        await ada.aclose()


async def test_wrong_codes_for_an_unknown_address_lock_nothing(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server(rate_limits=False)
    ghost = Person(server, smtp_sink, "ghost@example.com")
    try:
        for _ in range(LOCKOUT + 5):
            response = await ghost.verify("123456")
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_code"
        # the address can still sign up; it gets its first account, unlocked
        await ghost.sign_in()
        assert ghost.account() == (0, None)
        assert ghost.notices() == []
    finally:
        await ghost.aclose()
