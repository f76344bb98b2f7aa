"""Issuing, authenticating and revoking sessions."""

from __future__ import annotations

from dataclasses import dataclass

from qrlogin.core.clock import Clock
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import new_id, new_secret, sha256_hex
from qrlogin.store.records import Session, User
from qrlogin.store.sql import SqlStore


@dataclass(frozen=True)
class Device:
    """What we know of a device from its request."""

    name: str
    user_agent: str
    ip: str


@dataclass(frozen=True)
class IssuedSession:
    """A new session and the only copy of its token."""

    token: str
    session: Session
    user: User


@dataclass(frozen=True)
class Authenticated:
    session: Session
    user: User


class SessionService:
    def __init__(self, store: SqlStore, clock: Clock, policy: Policy) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy

    def new_session(
        self,
        user: User,
        device: Device,
        linked_by: str,
        *,
        linked_from_session_id: str | None = None,
        login_request_id: str | None = None,
    ) -> tuple[str, Session]:
        """A session record and its token; the caller stores the record."""
        token = new_secret()
        now = self.clock.now()
        session = Session(
            id=new_id("ses"),
            token_hash=sha256_hex(token),
            user_id=user.id,
            device_name=device.name[:100],
            user_agent=device.user_agent[:500],
            ip=device.ip[:64],
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.policy.session_lifetime,
            linked_by=linked_by,
            linked_from_session_id=linked_from_session_id,
            login_request_id=login_request_id,
        )
        return token, session

    async def authenticate(self, token: str | None) -> Authenticated | None:
        """The live session and user behind ``token``, or ``None``."""
        if not token:
            return None
        session = await self.store.session_by_token_hash(sha256_hex(token))
        if session is None or not session.active_at(self.clock.now()):
            return None
        user = await self.store.get_user(session.user_id)
        if user is None:
            return None
        return Authenticated(session, user)

    async def revoke(self, session_id: str) -> Session | None:
        return await self.store.revoke_session(session_id, self.clock.now())
