"""Account lockout (DESIGN.md requirements 6 and 12): 1,000 consecutive wrong email codes lock
email sign-in for a while, for every browser but the owner's known ones, and mail its owner one
notice; the owner's signed-in devices are untouched; a success resets the streak.

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
LOCKOUT = Policy().email_failure_lockout  # 1,000
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
        """(email_code_streak, email_locked_at) straight from the server's database file."""
        db = self.server.settings.data_dir / "qrlogin.db"
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT email_code_streak, email_locked_at FROM users WHERE email = ?",
                (self.email,),
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


async def test_1000_consecutive_wrong_email_codes_lock_new_browsers_and_send_one_notice(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    clock = FrozenClock()
    server = live_server(rate_limits=False, app_kwargs={"clock": clock})
    ada = Person(server, smtp_sink, "ada@example.com")  # the owner's browser
    stranger = Person(server, smtp_sink, "ada@example.com")  # knows only her address
    bystander = Person(server, smtp_sink, "bob@example.com")
    try:
        session = await ada.sign_in()  # the account exists, and this device is signed in
        await bystander.sign_in()
        assert ada.account() == (0, None)

        await stranger.fail(LOCKOUT - 1)
        assert ada.account() == (LOCKOUT - 1, None)
        assert ada.notices() == []

        await stranger.fail(1)  # the 1,000th
        streak, locked_at = ada.account()
        assert streak == LOCKOUT
        assert locked_at == clock.now()

        # now even the right code is refused there, with a Retry-After up to the lockout
        code = await stranger.fresh_code()
        retry = assert_locked(await stranger.verify(code))
        assert retry <= Policy().account_lockout + 1
        for _ in range(3):  # more tries change nothing and mail nobody again
            assert_locked(await stranger.verify(wrong(code)))
        assert ada.account() == (LOCKOUT, locked_at)

        # the owner's browser, known to the address, still signs in, and her signed-in
        # device may still type user codes (this one matches no request: a plain refusal)
        await ada.sign_in()
        token = session["access_token"]
        link = await ada.client.post(
            "/api/v1/link",
            json={"user_code": "123456"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert (link.status_code, link.json()["error"]) == (400, "invalid_code")

        # exactly one notice went out, to the owner, and nobody else was locked
        notices = ada.notices()
        assert len(notices) == 1
        assert notices[0]["To"] == "ada@example.com"
        assert f"{LOCKOUT} wrong codes" in mail_text(notices[0])
        assert not any(is_notice(m) for m in smtp_sink.messages if m["To"] != ada.email)
        assert (await bystander.sign_in())["user"] is not None
        assert bystander.account() == (0, None)

        # once the lockout is over a new browser signs in again and the streak starts over
        clock.advance(Policy().account_lockout + 1)
        back = await stranger.verify(await stranger.fresh_code())
        assert back.status_code == 200, back.text
        assert ada.account() == (0, None)
        assert len(ada.notices()) == 1
    finally:
        await ada.aclose()
        await stranger.aclose()
        await bystander.aclose()


async def test_a_success_before_the_lock_resets_the_streak(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    lockout = 50  # the rule is the same at any floor; a low one keeps the test short
    server = live_server(
        rate_limits=False, app_kwargs={"policy": Policy(email_failure_lockout=lockout)}
    )
    ada = Person(server, smtp_sink, "ada@example.com")
    try:
        await ada.sign_in()

        await ada.fail(lockout - 1)
        assert ada.account() == (lockout - 1, None)
        await ada.sign_in()  # one right code
        assert ada.account() == (0, None)

        await ada.fail(1)  # the lockout's number of wrong codes in all, but not in a row
        assert ada.account() == (1, None)
        response = await ada.verify(await ada.fresh_code())
        assert response.status_code == 200, response.text
        assert ada.notices() == []
    finally:
        await ada.aclose()


async def test_wrong_codes_for_an_unknown_address_lock_nothing(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    lockout = 50  # a low floor keeps the test short
    server = live_server(
        rate_limits=False, app_kwargs={"policy": Policy(email_failure_lockout=lockout)}
    )
    ghost = Person(server, smtp_sink, "ghost@example.com")
    try:
        for _ in range(lockout + 5):
            response = await ghost.verify("123456")
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_code"
        # the address can still sign up; it gets its first account, unlocked
        await ghost.sign_in()
        assert ghost.account() == (0, None)
        assert ghost.notices() == []
    finally:
        await ghost.aclose()
