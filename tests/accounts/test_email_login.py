"""First-device sign-in by email code, against a real uvicorn sending real SMTP mail."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import httpx

from support import LiveServer, SmtpSink, mail_links, mail_text

# Tests ask for `smtp_sink` before `live_server`, so the server stops (and finishes sending
# any background mail) before the SMTP sink goes away.
START = "/api/v1/auth/email/start"
VERIFY = "/api/v1/auth/email/verify"
CODE_RE = re.compile(r"\b(\d{6})\b")


def mails_to(sink: SmtpSink, address: str) -> list[EmailMessage]:
    return [m for m in sink.messages if m["To"] == address]


async def latest_mail(sink: SmtpSink, address: str, after: int = 0) -> EmailMessage:
    return await asyncio.to_thread(sink.latest_to, address, 10, after=after)


def code_of(msg: EmailMessage) -> str:
    match = re.search(r"sign-in code is (\d{6})\b", mail_text(msg))
    assert match, mail_text(msg)
    return match.group(1)


def a_wrong_code(right: str) -> str:
    return f"{(int(right) + 1) % 1_000_000:06d}"


async def start(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(START, json={"email": email})


async def verify(client: httpx.AsyncClient, email: str, code: str) -> httpx.Response:
    return await client.post(VERIFY, json={"email": email, "code": code})


async def signed_up(server: LiveServer, sink: SmtpSink, email: str) -> None:
    """Create the account by signing in once."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        before = len(sink)
        assert (await start(client, email)).status_code == 202
        code = code_of(await latest_mail(sink, email, before))
        assert (await verify(client, email, code)).status_code == 200


async def test_start_answers_alike_for_new_and_existing_addresses_and_sends_one_mail(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server()
    await signed_up(server, smtp_sink, "old@example.com")
    smtp_sink.clear()

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        replies: dict[str, httpx.Response] = {}
        for email in ("old@example.com", "new@example.com"):
            replies[email] = await start(client, email)

    old, new = replies["old@example.com"], replies["new@example.com"]
    assert old.status_code == new.status_code == 202
    assert old.content == new.content
    assert old.json()["status"] == "sent"
    assert old.headers["content-type"] == new.headers["content-type"]

    for email in ("old@example.com", "new@example.com"):
        msg = await latest_mail(smtp_sink, email)
        assert len(mails_to(smtp_sink, email)) == 1
        code = code_of(msg)
        assert code in msg["Subject"]
        text = mail_text(msg)
        assert CODE_RE.findall(text) == [code]  # one 6-digit code
        links = [u for u in mail_links(msg) if "/auth/email/" in u]
        assert len(links) == 1
        assert re.fullmatch(re.escape(server.url) + r"/auth/email/[A-Za-z0-9_-]{32,}", links[0])
    assert len(smtp_sink) == 2


async def test_the_code_signs_in_once(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server()
    email = "ada@example.com"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await start(client, email)).status_code == 202
        code = code_of(await latest_mail(smtp_sink, email))

        first = await verify(client, email, f" {code[:3]} {code[3:]} ")  # spaces are ignored
        assert first.status_code == 200, first.text
        session = first.json()
        assert session["token_type"] == "bearer"
        assert session["expires_in"] > 0
        assert session["user"]["display_name"] == "ada"
        token = session["access_token"]
        assert isinstance(token, str) and len(token) >= 40

        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["user"]["email"] == email
        assert me.json()["user"]["id"] == session["user"]["id"]

        second = await verify(client, email, code)
        assert second.status_code == 400
        assert second.json()["error"] == "invalid_code"

        # the address is case-insensitive and names the same account next time
        before = len(smtp_sink)
        assert (await start(client, "  ADA@Example.COM ")).status_code == 202
        again = await verify(client, email, code_of(await latest_mail(smtp_sink, email, before)))
        assert again.status_code == 200, again.text
        assert again.json()["user"]["id"] == session["user"]["id"]
        assert again.json()["access_token"] != token  # a new session per device


async def test_five_wrong_tries_burn_the_code_and_every_failure_looks_the_same(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server()
    email = "grace@example.com"
    failures: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await start(client, email)).status_code == 202
        code = code_of(await latest_mail(smtp_sink, email))
        wrong = a_wrong_code(code)

        for _ in range(5):
            failures.append(await verify(client, email, wrong))
        burned = await verify(client, email, code)  # the right code, after 5 wrong tries
        failures.append(burned)

        # other failures: an address with no code pending, garbage, and a used code
        failures.append(await verify(client, email, "000000"))
        failures.append(await verify(client, "nobody@example.com", code))
        failures.append(await verify(client, email, "12"))
        before = len(smtp_sink)
        assert (await start(client, email)).status_code == 202
        fresh = code_of(await latest_mail(smtp_sink, email, before))
        assert (await verify(client, email, fresh)).status_code == 200  # a new code works
        failures.append(await verify(client, email, fresh))  # ... once

    assert burned.status_code == 400
    assert {r.status_code for r in failures} == {400}
    bodies = {r.content for r in failures}
    assert len(bodies) == 1, bodies
    assert failures[0].json()["error"] == "invalid_code"
    assert set(failures[0].json()) == {"error", "message"}


async def test_a_new_code_replaces_the_old_one(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server()
    email = "lin@example.com"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await start(client, email)).status_code == 202
        old = code_of(await latest_mail(smtp_sink, email))
        before = len(smtp_sink)
        assert (await start(client, email)).status_code == 202
        new = code_of(await latest_mail(smtp_sink, email, before))
        if new == old:  # one in a million: the test would prove nothing
            return
        stale = await verify(client, email, old)
        assert stale.status_code == 400
        assert (await verify(client, email, new)).status_code == 200


async def test_malformed_addresses_are_refused_and_send_nothing(
    smtp_sink: SmtpSink, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        bad: list[Any] = ["not-an-email", "a@b", "two@@example.com", ""]
        for email in bad:
            response = await start(client, email)
            assert response.status_code == 400, (email, response.text)
            assert response.json()["error"] == "invalid_request"
        missing = await client.post(START, json={})
        assert missing.status_code == 400
    assert len(smtp_sink) == 0
