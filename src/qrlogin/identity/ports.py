"""The two identity ports the handshake needs from whoever owns users and sessions.

- ``ApproverIdentity``: who is signed in on an approving device's request, and whether that
  session is still live (asked again at the exchange: DESIGN.md requirement 11).
- ``SessionStarter``: start a session for the requester once its exchange has won.

qrlogin's built-in accounts and sessions are one adapter of both (``sessions/identity.py``);
a host app that keeps its own users and sessions passes its own (docs/embedding.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from qrlogin.identity.device import Device
from qrlogin.store.records import NewSessionRows


class HttpRequest(Protocol):
    """The parts of an incoming request the ports may read; Starlette's ``Request`` has them."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in on a request, as its own session says (requirement 3)."""

    user_id: str
    display_name: str
    session_id: str
    device_name: str = ""


@dataclass(frozen=True)
class Approver:
    """The signed-in person on the approving device, taken only from its own session
    (DESIGN.md requirement 3), never from a request body; with its request's facts."""

    user_id: str
    display_name: str
    session_id: str
    ip: str
    user_agent: str = ""
    device_name: str = ""


class ApproverIdentity(Protocol):
    """Who approves. Implemented by the built-in sessions and by a host app."""

    async def signed_in(self, request: HttpRequest) -> SignedIn | None:
        """The person signed in on ``request`` (its cookie or bearer token), or ``None``."""
        ...

    async def session_is_live(self, user_id: str, session_id: str) -> bool:
        """Whether that approver session is still signed in. The exchange refuses an approval
        whose session has ended since (requirement 11)."""
        ...


@dataclass(frozen=True)
class SessionGrant:
    """What a sign-in asks for: a **new** session (requirement 5) for ``user_id`` on the
    new ``device``; after a QR or user-code exchange, linked from the approver's session."""

    user_id: str
    device: Device
    linked_by: str  # "qr", "user_code" (a login request) or "email" (the built-in accounts)
    api: bool  # a bearer-token client (tokens in the reply) rather than a browser (a cookie)
    login_request_id: str | None = None
    approver_session_id: str | None = None
    # a device grant (RFC 8628): the session is that OAuth client's, for that scope only
    client_id: str | None = None
    scope: str | None = None
    # how the person proved who they are (OpenID ``amr`` values: email, passkey, otp, qr,
    # recovery); empty: what ``linked_by`` implies
    amr: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cookie:
    """A cookie for the new device's browser. It is always HttpOnly."""

    name: str
    value: str
    max_age: int
    path: str = "/"
    secure: bool = True
    samesite: str = "lax"


@dataclass(frozen=True)
class StartedSession:
    """The new device's session as the requester's reply carries it: a cookie for a browser,
    tokens for an API client. ``expires_at`` is when the access token (or cookie) ends."""

    user_id: str
    display_name: str
    session_id: str
    expires_at: float
    access_token: str | None = None
    refresh_token: str | None = None
    cookie: Cookie | None = None


class SessionStarter(Protocol):
    """Starts the requester's session. Called once per login request, after the exchange
    has won its conditional write, so it never runs twice for one request."""

    async def start_session(self, grant: SessionGrant) -> StartedSession: ...


@runtime_checkable
class StoredSessionStarter(SessionStarter, Protocol):
    """A ``SessionStarter`` whose sessions live in qrlogin's own store (the built-in one).
    The exchange writes the session's rows in the very transaction that consumes the login
    request, so a crash between the two cannot leave a consumed request without its
    session. A host app's sessions live in its own database: it implements only
    ``start_session``, which runs after the consuming write."""

    async def prepare_session(self, grant: SessionGrant) -> tuple[NewSessionRows, StartedSession]:
        """The rows to write and the reply they make; nothing is written yet."""
        ...

    async def session_started(
        self, grant: SessionGrant, started: StartedSession, rows: NewSessionRows
    ) -> None:
        """After ``rows`` (from ``prepare_session``) are committed: tell the user (live
        notice, mail)."""
        ...


class StepUp(Protocol):
    """Asked before an approval goes through: may the approver approve now, or must it
    prove a second factor first? The built-in accounts ask for a recent passkey or TOTP
    (``accounts/factors.py``, ``QRLOGIN_APPROVE_STEP_UP``); a host app may pass its own."""

    async def before_approval(self, approver: Approver) -> None:
        """Return to let the approval through; raise (``StepUpRequired``) to refuse it."""
        ...


class CodeFailures(Protocol):
    """Consecutive wrong user codes per account (DESIGN.md requirement 6), typed by the
    account's own signed-in approvers: the built-in accounts lock an account after many
    (``accounts/lockout.py``). Optional for a host app, whose approvers' guesses are also
    bounded per account by the rate limits."""

    async def check(self, user_id: str) -> None:
        """Raise ``AccountLocked`` while the account may not type user codes. Only the
        account's own wrong user codes may cause that, never failures made elsewhere (such
        as a stranger's wrong email codes): requirement 12."""
        ...

    async def failed(self, user_id: str, kind: str, ip: str, user_agent: str) -> None: ...

    async def succeeded(self, user_id: str) -> None: ...
