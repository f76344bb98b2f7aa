"""Issuing, authenticating, refreshing and revoking sessions (one per signed-in device)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidGrant
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import new_id, new_secret, sha256_hex
from qrlogin.core.useragent import describe
from qrlogin.events.port import EventBus, user_channel
from qrlogin.identity.device import Device
from qrlogin.mail import Mail, Mailer
from qrlogin.store.ports import SessionStore
from qrlogin.store.records import AuditEntry, RefreshOutcome, RefreshToken, Session, User

log = logging.getLogger("qrlogin.sessions")

LINKED_BY_TEXT = {
    "email": "by email",
    "qr": "by QR",
    "user_code": "by code",
    "oauth": "through an app's sign-in",
    "passkey": "with a passkey",
}


AMR_TEXT = {
    "email": "email",
    "passkey": "passkey",
    "otp": "authenticator code",
    "recovery": "recovery code",
    "qr": "another device",
}


def _implied_amr(linked_by: str) -> tuple[str, ...]:
    return ("email",) if linked_by == "email" else ("qr",)


def _second_factor(amr: tuple[str, ...]) -> bool:
    return any(m in ("passkey", "otp", "recovery") for m in amr)


def describe_amr(methods: tuple[str, ...] | list[str]) -> str:
    """How a session was made, for people: "email + authenticator code"."""
    return " + ".join(AMR_TEXT.get(m, m) for m in methods)


@dataclass(frozen=True)
class IssuedSession:
    """A new session and the only copy of its token (and refresh token, for API clients)."""

    token: str
    session: Session
    user: User
    refresh_token: str | None = None


@dataclass(frozen=True)
class Authenticated:
    session: Session
    user: User


def session_entry(event: str, session: Session, now: float, device: Device | None) -> AuditEntry:
    return AuditEntry(
        event=event,
        created_at=now,
        ip=device.ip if device else session.ip,
        user_agent=device.user_agent if device else session.user_agent,
        user_id=session.user_id,
        session_id=session.id,
        request_id=session.login_request_id,
        detail=session.revoked_reason if event == "session.revoked" else session.linked_by,
    )


class SessionService:
    def __init__(
        self,
        store: SessionStore,
        clock: Clock,
        policy: Policy,
        bus: EventBus,
        mailer: Mailer,
        key: bytes,
        site_name: str,
        public_url: str,
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.bus = bus
        self.mailer = mailer
        self.key = key
        self.site_name = site_name
        self.public_url = public_url
        self._background: set[asyncio.Task[None]] = set()
        # called with the id of every session revoked, once its revocation is written: the
        # handshake ends the login requests that session approved (DESIGN.md requirement 11)
        self.on_revoked: Callable[[str], Awaitable[object]] | None = None

    # -- issuing ---------------------------------------------------------------------------

    def new_session(
        self,
        user: User,
        device: Device,
        linked_by: str,
        *,
        linked_from_session_id: str | None = None,
        login_request_id: str | None = None,
        api: bool = False,
        client_id: str | None = None,
        scope: str | None = None,
        amr: tuple[str, ...] = (),
    ) -> tuple[str, Session]:
        """A session record and its token; the caller stores the record. API clients' access
        tokens are short-lived and renewed by refresh; browsers' last as long as the session.
        With ``client_id`` the session is an OAuth client's grant: its tokens serve that
        client only (``authenticate_client``), never qrlogin's own API."""
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
            access_expires_at=now + self.policy.access_token_lifetime if api else None,
            linked_by=linked_by,
            linked_from_session_id=linked_from_session_id,
            login_request_id=login_request_id,
            client_id=client_id,
            scope=scope,
            amr=" ".join(amr or _implied_amr(linked_by)),
            # a sign-in that used a second factor counts as a fresh one for a step-up
            verified_at=now if _second_factor(amr) else None,
        )
        return token, session

    def with_refresh_token(
        self, issued: IssuedSession
    ) -> tuple[IssuedSession, RefreshToken | None]:
        """An API client's new session gets its first refresh token (the record to write and
        the session as issued, with the token); a browser's gets none."""
        if issued.session.access_expires_at is None:  # a browser's session
            return issued, None
        token = new_secret()
        refresh = RefreshToken(
            token_hash=sha256_hex(token),
            session_id=issued.session.id,
            created_at=self.clock.now(),
            expires_at=issued.session.expires_at,
        )
        return IssuedSession(issued.token, issued.session, issued.user, token), refresh

    def _derive(self, purpose: str, refresh_token: str) -> str:
        # The next tokens are derived from the used one and the server key, so a retry in the
        # window gets the very same tokens while the database keeps only their hashes.
        mac = hmac.new(self.key, f"{purpose}\x00{refresh_token}".encode(), hashlib.sha256)
        return mac.hexdigest()

    async def refresh(
        self, refresh_token: str, device: Device, *, client_id: str | None = None
    ) -> IssuedSession:
        """Rotate a refresh token (RFC 6749 §6, with reuse detection). ``client_id``: the
        OAuth client refreshing its own grant; ``None`` for qrlogin's own API clients, who
        cannot refresh a client's grant (nor a client theirs)."""
        now = self.clock.now()
        new_refresh = self._derive("refresh", refresh_token)
        new_access = self._derive("access", refresh_token)
        result = await self.store.rotate_refresh_token(
            sha256_hex(refresh_token),
            RefreshToken(
                token_hash=sha256_hex(new_refresh),
                session_id="",  # filled below once the session is known
                created_at=now,
                expires_at=now + self.policy.session_lifetime,
            ),
            sha256_hex(new_access),
            now + self.policy.access_token_lifetime,
            now,
            self.policy.refresh_retry_window,
            lambda s: session_entry("session.revoked", s, now, device),
            client_id=client_id,
        )
        if result.outcome is RefreshOutcome.REUSED and result.session is not None:
            log.warning(
                "refresh token reused; session revoked", extra={"session_id": result.session.id}
            )
            await self.bus.publish(user_channel(result.session.user_id), 0)
            if self.on_revoked is not None:
                await self.on_revoked(result.session.id)
        if result.outcome not in (RefreshOutcome.ROTATED, RefreshOutcome.RETRY):
            raise InvalidGrant()
        assert result.session is not None
        user = await self.store.get_user(result.session.user_id)
        if user is None:
            raise InvalidGrant()
        return IssuedSession(new_access, result.session, user, new_refresh)

    # -- using -----------------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Authenticated | None:
        """The live session and user behind ``token``, or ``None``. Moves ``last_seen`` at
        most once a minute, so most requests write nothing. An OAuth client's token is not
        one of qrlogin's own sessions here: it gets ``None`` (``authenticate_client``)."""
        return await self._authenticate(token, client=False)

    async def authenticate_client(self, token: str | None) -> Authenticated | None:
        """The live OAuth client grant behind an access token (``Session.client_id`` set),
        or ``None``: for the OpenID Provider's userinfo and introspection only."""
        return await self._authenticate(token, client=True)

    async def _authenticate(self, token: str | None, *, client: bool) -> Authenticated | None:
        if not token:
            return None
        found = await self.store.session_with_user(sha256_hex(token))  # one read
        if found is None:
            return None
        session, user = found
        now = self.clock.now()
        if not session.active_at(now, self.policy.session_idle_timeout):
            return None
        if (session.client_id is not None) != client:
            return None
        if now - session.last_seen_at >= self.policy.last_seen_every:
            await self.store.touch_session(session.id, now, self.policy.last_seen_every)
        return Authenticated(session, user)

    async def is_active(self, session_id: str, user_id: str | None = None) -> bool:
        """Whether the session is live (and, when given, belongs to ``user_id``)."""
        session = await self.store.get_session(session_id)
        if session is None or (user_id is not None and session.user_id != user_id):
            return False
        return session.active_at(self.clock.now(), self.policy.session_idle_timeout)

    # -- ending ----------------------------------------------------------------------------

    async def revoke(self, session: Session, reason: str, device: Device | None) -> bool:
        """Revoke and tell the session's open pages at once (they sign out live)."""
        now = self.clock.now()
        revoked = await self.store.revoke_session(
            session.id, now, reason, lambda s: session_entry("session.revoked", s, now, device)
        )
        if revoked is None:
            return False
        await self.bus.publish(user_channel(session.user_id), 0)
        if self.on_revoked is not None:
            await self.on_revoked(session.id)
        return True

    async def revoke_all(
        self, user_id: str, reason: str, device: Device | None, *, keep: str | None = None
    ) -> int:
        count = 0
        for session in await self.store.active_sessions(user_id, self.clock.now()):
            if session.id != keep and await self.revoke(session, reason, device):
                count += 1
        return count

    # -- telling the user ------------------------------------------------------------------

    def describe(self, session: Session) -> str:
        browser, system = describe(session.user_agent)
        return f"{browser} on {system}"

    async def announce(
        self, user_id: str, session: Session, linked_from: Session | None, *, mail: bool
    ) -> None:
        """A new device signed in (``session``, just committed): wake the user's open pages
        (they show a notice) and, when ``mail``, mail the user, without delaying the sign-in
        itself."""
        await self.bus.publish(user_channel(user_id), 0)
        if not mail:
            return
        task = asyncio.create_task(self._mail_notice(user_id, session, linked_from))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def notice_text(self, session: Session, linked_from: Session | None, when: str) -> str:
        how = LINKED_BY_TEXT.get(session.linked_by, session.linked_by)
        source = f" from {linked_from.device_name}" if linked_from is not None else ""
        return f"New sign-in: {self.describe(session)}, linked {how}{source} at {when}"

    async def _mail_notice(
        self, user_id: str, session: Session, linked_from: Session | None
    ) -> None:
        try:
            user = await self.store.get_user(user_id)
            if user is None:
                return
            when = datetime.fromtimestamp(session.created_at, UTC).strftime("%H:%M UTC")
            text = self.notice_text(session, linked_from, when)
            await self.mailer.send(
                Mail(
                    user.email,
                    f"New sign-in to your {self.site_name} account",
                    f"{text} (IP {session.ip}).\n\n"
                    "If this was you, there is nothing to do. If not, sign that device out now:\n"
                    f"{self.public_url}/account/devices\n",
                )
            )
        except Exception:  # mail trouble must not break sign-in; the live notice still shows
            log.exception("could not send the new sign-in notice")

    async def drain(self) -> None:
        """Wait for notices still being sent (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
