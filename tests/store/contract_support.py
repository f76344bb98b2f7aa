"""Records for the store contract tests, built with every required field and unique ids, on
a fixed clock (the store takes ``now`` from its caller, so no clock object is needed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from qrlogin.store.records import (
    AuditEntry,
    EmailLogin,
    LoginRequest,
    RefreshToken,
    Session,
    User,
)

T = TypeVar("T")

NOW = 1_800_000_000.0
LIFETIME = 300.0
RACERS = 24  # callers in each race: enough to collide on both backends, few connections


def uid() -> str:
    return uuid.uuid4().hex


def hash64() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


async def race(n: int, call: Callable[[int], Awaitable[T]]) -> list[T]:
    """``n`` concurrent callers of the same store operation; their results in order."""
    return list(await asyncio.gather(*(call(i) for i in range(n))))


def login_request(**fields: Any) -> LoginRequest:
    values: dict[str, Any] = {
        "id": uid(),
        "secret_hash": hash64(),
        "status": "pending",
        "version": 1,
        "created_at": NOW,
        "expires_at": NOW + LIFETIME,
        "handle_seq": 0,
        "handle_hash": hash64(),
        "device_name": "Work laptop",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "ip": "203.0.113.5",
    }
    values.update(fields)
    values.setdefault("ip_key", values["ip"])  # an IPv4 address is its own rate key
    return LoginRequest(**values)


def user(**fields: Any) -> User:
    values: dict[str, Any] = {
        "id": uid(),
        "email": f"{uid()}@example.com",
        "display_name": "Alice",
        "created_at": NOW,
    }
    values.update(fields)
    return User(**values)


def session(user_id: str, **fields: Any) -> Session:
    values: dict[str, Any] = {
        "id": uid(),
        "token_hash": hash64(),
        "user_id": user_id,
        "device_name": "Phone",
        "user_agent": "Mozilla/5.0 (Linux; Android 14)",
        "ip": "198.51.100.7",
        "created_at": NOW,
        "last_seen_at": NOW,
        "expires_at": NOW + 86400.0,
        "linked_by": "email",
    }
    values.update(fields)
    return Session(**values)


def refresh_token(session_id: str, **fields: Any) -> RefreshToken:
    values: dict[str, Any] = {
        "token_hash": hash64(),
        "session_id": session_id,
        "created_at": NOW,
        "expires_at": NOW + 86400.0,
    }
    values.update(fields)
    return RefreshToken(**values)


def email_login(email: str, **fields: Any) -> EmailLogin:
    values: dict[str, Any] = {
        "id": uid(),
        "email": email,
        "code_hmac": hash64(),
        "link_hash": hash64(),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "ip": "203.0.113.5",
        "created_at": NOW,
        "expires_at": NOW + 900.0,
    }
    values.update(fields)
    return EmailLogin(**values)


ASKER_IP = "203.0.113.5"  # the IP every email_login above was asked from


async def latest_email_login(
    store: Any, email: str, now: float, limit: int, browser_hash: str | None = None
) -> EmailLogin | None:
    """The newest live code for ``email`` that the asker (a browser without a cookie at
    ``ASKER_IP``, or the browser ``browser_hash``) may try."""
    found: EmailLogin | None = await store.latest_email_login(
        email, browser_hash, ASKER_IP, now, limit
    )
    return found


def entry(event: str, user_id: str | None = None, **fields: Any) -> AuditEntry:
    return AuditEntry(
        event=event, created_at=fields.pop("created_at", NOW), user_id=user_id, **fields
    )
