"""Plain records the store hands out; one per table."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

from qrlogin.core.machine import Status, effective_status


class _Record:
    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> Self:
        names = _field_names(cls)
        if type(row) is dict and len(row) == len(names) and names.issuperset(row):
            # a row of exactly the record's columns: set them as they are, without the frozen
            # dataclass ``__init__``, which sets each of up to 28 fields through
            # ``object.__setattr__`` (the store's raw rows, store/sqlite.py)
            record = cls.__new__(cls)
            record.__dict__.update(row)
            return record
        return cls(**{k: v for k, v in row.items() if k in names})

    def to_row(self) -> dict[str, Any]:
        """The record's columns as a dict: a shallow copy, where ``dataclasses.asdict`` walks
        and deep-copies every value (it showed up in the profiles of every insert)."""
        return dict(self.__dict__)


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return names


@dataclass(frozen=True)
class User(_Record):
    id: str
    email: str
    display_name: str
    created_at: float
    failed_code_streak: int = 0  # consecutive wrong user codes (typed by its own sessions)
    locked_at: float | None = None
    email_code_streak: int = 0  # consecutive wrong email codes (typed by anyone)
    email_locked_at: float | None = None
    mfa_required: int = 0  # the account may not drop its last second factor
    factor_failures: int = 0  # wrong TOTP / recovery codes in the window since factor_window_at
    factor_window_at: float | None = None
    factor_locked_until: float | None = None


@dataclass(frozen=True)
class LoginRequest(_Record):
    id: str
    secret_hash: str
    status: str
    version: int
    created_at: float
    expires_at: float
    handle_seq: int
    handle_hash: str
    device_name: str
    user_agent: str
    ip: str
    ip_key: str = ""  # what the pending-per-IP cap counts (core.network.rate_key of ip)
    reason: str | None = None
    user_code_hmac: str | None = None
    user_code_seq: int = 0
    confirm_code_hmac: str | None = None
    confirm_attempts: int = 0
    approver_user_id: str | None = None
    approver_session_id: str | None = None
    approver_device: str | None = None
    linked_by: str | None = None
    scanned_at: float | None = None
    approved_at: float | None = None
    finished_at: float | None = None
    hold_hash: str | None = None
    held_at: float | None = None
    client_id: str | None = None  # a device grant's OAuth client
    scope: str | None = None

    def status_at(self, now: float) -> Status:
        return effective_status(Status(self.status), self.expires_at, now)


@dataclass(frozen=True)
class Session(_Record):
    id: str
    token_hash: str
    user_id: str
    device_name: str
    user_agent: str
    ip: str
    created_at: float
    last_seen_at: float
    expires_at: float
    linked_by: str
    revoked_at: float | None = None
    revoked_reason: str | None = None
    access_expires_at: float | None = None
    linked_from_session_id: str | None = None
    login_request_id: str | None = None
    client_id: str | None = None  # an OAuth client's tokens (usable only by that client)
    scope: str | None = None
    amr: str | None = None  # how it was made, space-separated (email passkey otp qr recovery)
    verified_at: float | None = None  # when it last proved a second factor (step-up)

    @property
    def methods(self) -> tuple[str, ...]:
        """``amr`` as a tuple; sessions older than it say how they were linked."""
        if self.amr:
            return tuple(self.amr.split())
        return ("email",) if self.linked_by == "email" else ("qr",)

    def active_at(self, now: float, idle_timeout: float | None = None) -> bool:
        """Not revoked, within its absolute lifetime, its access token's lifetime, and (when
        given) the idle timeout since it was last seen."""
        if self.revoked_at is not None or now >= self.expires_at:
            return False
        if self.access_expires_at is not None and now >= self.access_expires_at:
            return False
        return idle_timeout is None or now - self.last_seen_at < idle_timeout


@dataclass(frozen=True)
class EmailLogin(_Record):
    id: str
    email: str
    code_hmac: str
    link_hash: str
    user_agent: str
    ip: str
    created_at: float
    expires_at: float
    attempts: int = 0
    browser_hash: str | None = None
    consumed_at: float | None = None
    confirmed_elsewhere_at: float | None = None
    next: str | None = None


@dataclass(frozen=True)
class KnownBrowser(_Record):
    """A browser (SHA-256 of its ``qrl_browser`` cookie) that completed an email sign-in for
    an address, and when it last did."""

    email: str
    browser_hash: str
    signed_in_at: float


@dataclass(frozen=True)
class RefreshToken(_Record):
    token_hash: str
    session_id: str
    created_at: float
    expires_at: float
    used_at: float | None = None


@dataclass(frozen=True)
class AuditEntry(_Record):
    """One row of the activity log. Never holds a secret, token or code."""

    event: str
    created_at: float
    ip: str = ""
    user_agent: str = ""
    user_id: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    detail: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class OAuthClient(_Record):
    """A registered relying party. ``redirect_uris`` and ``post_logout_redirect_uris`` are
    JSON lists in the table and tuples here."""

    id: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    public: bool
    first_party: bool
    created_at: float
    secret_hash: str | None = None


@dataclass(frozen=True)
class SigningKey(_Record):
    kid: str
    alg: str
    private_jwk: str  # JSON
    public_jwk: str  # JSON
    created_at: float
    retired_at: float | None = None
    expires_at: float | None = None


@dataclass(frozen=True)
class AuthorizationCode(_Record):
    code_hash: str
    client_id: str
    user_id: str
    browser_session_id: str
    redirect_uri: str
    scope: str
    auth_time: float
    amr: str
    created_at: float
    expires_at: float
    nonce: str | None = None
    code_challenge: str | None = None
    used_at: float | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Consent(_Record):
    user_id: str
    client_id: str
    scope: str
    granted_at: float


@dataclass(frozen=True)
class NewSessionRows:
    """A built-in session's rows, written in the same transaction as the change that
    starts it (``LoginRequestStore.exchange``)."""

    session: Session
    refresh: RefreshToken | None = None
    audit: AuditEntry | None = None


class RefreshOutcome(enum.Enum):
    ROTATED = "rotated"  # first use: the chain moved on
    RETRY = "retry"  # a repeat within the retry window: same new tokens again
    REUSED = "reused"  # a used token after the window: the whole chain is revoked
    INVALID = "invalid"  # unknown, expired, or its session is gone


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    session: Session | None


@dataclass(frozen=True)
class Passkey(_Record):
    """A WebAuthn credential of an account."""

    id: str
    user_id: str
    credential_id: str  # base64url
    public_key: str  # base64url of the COSE key
    sign_count: int
    name: str
    created_at: float
    transports: str = ""
    aaguid: str = ""
    backup_eligible: int = 0  # may be synced (a "synced passkey") ...
    backup_state: int = 0  # ... and is backed up now
    last_used_at: float | None = None


@dataclass(frozen=True)
class TotpFactor(_Record):
    user_id: str
    secret_sealed: str
    created_at: float
    enabled_at: float | None = None  # None while being enrolled
    last_step: int = 0  # the newest time step accepted: a code works once


@dataclass(frozen=True)
class RecoveryCode(_Record):
    code_hmac: str
    user_id: str
    created_at: float
    used_at: float | None = None


@dataclass(frozen=True)
class FactorChallenge(_Record):
    """A single-use challenge bound to the browser that asked: a WebAuthn challenge
    (``kind``: passkey_register, passkey_signin, passkey_verify) or an mfa token
    (``kind``: mfa) for an email sign-in waiting for its second factor."""

    token_hash: str
    kind: str
    created_at: float
    expires_at: float
    user_id: str | None = None
    session_id: str | None = None
    browser_hash: str | None = None
    challenge: str | None = None
    data: str | None = None  # JSON
    attempts: int = 0
    used_at: float | None = None
