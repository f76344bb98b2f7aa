"""Outgoing mail: SMTP when ``QRLOGIN_SMTP_URL`` is set, else the console and the dev outbox."""

from __future__ import annotations

import logging
import sys
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

log = logging.getLogger("qrlogin.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


class OutboxMailer:
    """Prints each mail to the console and keeps the latest ones for ``/dev/outbox``."""

    def __init__(self, keep: int = 50) -> None:
        self.outbox: deque[Mail] = deque(maxlen=keep)

    async def send(self, mail: Mail) -> None:
        self.outbox.appendleft(mail)
        print(
            f"\n--- mail to {mail.to}: {mail.subject} ---\n{mail.text}\n--- end of mail ---\n",
            file=sys.stderr,
            flush=True,
        )


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    use_tls: bool  # implicit TLS (smtps://)
    start_tls: bool | None  # None: use it when the server offers it
    username: str | None
    password: str | None


def parse_smtp_url(
    url: str, username: str | None = None, password: str | None = None
) -> SmtpTarget:
    """``smtp://[user:pass@]host:port[?starttls=always|never]`` or ``smtps://…`` (implicit TLS)."""
    parts = urlsplit(url)
    shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"QRLOGIN_SMTP_URL must look like smtp://host:port, not {shown!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(
            f"QRLOGIN_SMTP_URL has a bad port (a number from 1 to 65535): {shown!r}"
        ) from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["auto"])[0]
    if starttls not in ("auto", "always", "never"):
        raise ValueError(
            f"QRLOGIN_SMTP_URL: starttls must be always, never or auto, not {starttls!r}"
        )
    implicit = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        use_tls=implicit,
        start_tls=None if starttls == "auto" else starttls == "always",
        username=unquote(parts.username) if parts.username else username,
        password=unquote(parts.password) if parts.password else password,
    )


class SmtpMailer:
    def __init__(self, target: SmtpTarget, sender: str) -> None:
        self.target = target
        self.sender = sender

    async def send(self, mail: Mail) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg.set_content(mail.text)
        t = self.target
        await aiosmtplib.send(
            msg,
            hostname=t.host,
            port=t.port,
            use_tls=t.use_tls,
            start_tls=t.start_tls,
            username=t.username,
            password=t.password,
            timeout=20,
        )
