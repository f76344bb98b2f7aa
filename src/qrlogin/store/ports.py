"""Storage ports: what each flow needs from the store, one small ``typing.Protocol`` each.

Flows are typed against these, not against ``SqlStore`` (which implements all of them for
SQLite and PostgreSQL), so a flow can be tested with a fake of the few methods it calls, and
the same contract tests (tests/store/test_contract.py) hold every backend to them.
Every state change is one atomic conditional write: of two racing callers exactly one wins,
and the loser gets ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from qrlogin.core.machine import Action
from qrlogin.store.records import (
    AuditEntry,
    AuthorizationCode,
    Consent,
    EmailLogin,
    FactorChallenge,
    LoginRequest,
    NewSessionRows,
    OAuthClient,
    Passkey,
    RecoveryCode,
    RefreshResult,
    RefreshToken,
    Session,
    SigningKey,
    TotpFactor,
    User,
)

AuditFor = Callable[[LoginRequest], AuditEntry | None]


class UserCodeTaken(Exception):
    """``insert_login_request``: another pending request holds this user code (a unique
    index keeps the user codes of pending requests apart); nothing was written."""


class LoginRequestStore(Protocol):
    """Login requests, for the handshake."""

    async def insert_login_request(self, rec: LoginRequest, audit: AuditEntry | None) -> None:
        """Raises ``UserCodeTaken`` when another pending request has ``rec``'s user code."""

    async def get_login_request(self, request_id: str) -> LoginRequest | None: ...

    async def login_request_by_handle(self, tag_hash: str) -> LoginRequest | None: ...

    async def login_request_by_user_code(
        self, code_hmac: str, now: float
    ) -> LoginRequest | None: ...

    async def login_request_by_hold(self, hold_hash: str) -> LoginRequest | None: ...

    async def hold_login_request(
        self, request_id: str, hold_hash: str, now: float
    ) -> LoginRequest | None: ...

    async def count_pending_by_ip(self, ip_key: str, now: float, up_to: int) -> int: ...

    async def claimed_by_session(self, session_id: str, now: float) -> list[LoginRequest]: ...

    async def transition(
        self,
        request_id: str,
        action: Action,
        now: float,
        values: Mapping[str, Any] | None = None,
        expect: Mapping[str, Any] | None = None,
        audit: AuditFor | None = None,
    ) -> LoginRequest | None:
        """Apply ``action`` if the request is in one of its source states, alive, and the
        ``expect`` columns match; the new row, or ``None`` when another caller won."""
        ...

    async def exchange(
        self,
        request_id: str,
        now: float,
        values: Mapping[str, Any],
        expect: Mapping[str, Any],
        audit: AuditFor,
        rows: NewSessionRows,
    ) -> LoginRequest | None:
        """approved → consumed together with a built-in session's rows, in one transaction."""
        ...

    async def fail_confirm_code(
        self, request_id: str, now: float, limit: int, audit: AuditFor
    ) -> LoginRequest | None: ...

    async def expire_due(
        self, now: float, audit: AuditFor, batch: int = 500
    ) -> list[LoginRequest]: ...


class UserStore(Protocol):
    """Built-in users, for sessions and accounts."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def user_by_email(self, email: str) -> User | None: ...

    async def ensure_user(self, new_user: User) -> User: ...

    async def record_code_failure(
        self,
        user_id: str,
        now: float,
        threshold: int,
        audit: AuditEntry | None,
        *,
        kind: str = "user_code",
    ) -> User | None: ...

    async def reset_code_failures(self, user_id: str, *, kind: str = "user_code") -> None: ...


class AuditStore(Protocol):
    """The activity log."""

    async def audit(self, *entries: AuditEntry) -> None: ...

    async def activity(self, user_id: str, limit: int = 50) -> list[AuditEntry]: ...


class AccountStore(UserStore, AuditStore, Protocol):
    """Users and first-device email sign-ins, for ``accounts/``."""

    async def insert_email_login(self, login: EmailLogin) -> None: ...

    async def latest_email_login(
        self, email: str, browser_hash: str | None, ip: str, now: float, limit: int
    ) -> EmailLogin | None: ...

    async def remember_browser(self, email: str, browser_hash: str, now: float) -> None: ...

    async def browser_is_known(self, email: str, browser_hash: str, since: float) -> bool: ...

    async def email_login_by_link(
        self, link_hash: str, now: float, limit: int
    ) -> EmailLogin | None: ...

    async def email_login_confirmed_for_browser(
        self, browser_hash: str, now: float
    ) -> EmailLogin | None: ...

    async def fail_email_code(self, login_id: str, audit: AuditEntry | None) -> None: ...

    async def confirm_email_login_elsewhere(
        self, login_id: str, now: float, limit: int
    ) -> bool: ...

    async def complete_email_login(
        self,
        login_id: str,
        now: float,
        limit: int,
        rows: NewSessionRows | None,
        *,
        picked_up: bool = False,
        challenge: FactorChallenge | None = None,
    ) -> bool: ...


class SessionStore(UserStore, Protocol):
    """Built-in sessions and refresh tokens, for ``sessions/``."""

    async def insert_session(
        self, session: Session, audit: AuditEntry | None, refresh: RefreshToken | None = None
    ) -> None: ...

    async def session_by_token_hash(self, token_hash: str) -> Session | None: ...

    async def session_with_user(self, token_hash: str) -> tuple[Session, User] | None: ...

    async def get_session(self, session_id: str) -> Session | None: ...

    async def touch_session(self, session_id: str, now: float, every: float) -> None: ...

    async def revoke_session(
        self,
        session_id: str,
        now: float,
        reason: str,
        audit: Callable[[Session], AuditEntry | None],
    ) -> Session | None: ...

    async def active_sessions(self, user_id: str, now: float) -> list[Session]: ...

    async def sessions_created_since(self, user_id: str, since: float) -> list[Session]: ...

    async def rotate_refresh_token(
        self,
        old_hash: str,
        new_refresh: RefreshToken,
        new_access_hash: str,
        access_expires_at: float,
        now: float,
        retry_window: float,
        audit_reuse: Callable[[Session], AuditEntry | None],
        client_id: str | None = None,
    ) -> RefreshResult: ...


class OAuthStore(SessionStore, Protocol):
    """Clients, signing keys, authorization codes and consents, for ``oauth/``; with the
    sessions their tokens belong to, and the login requests a device grant runs on."""

    async def insert_client(self, client: OAuthClient) -> None: ...

    async def get_client(self, client_id: str) -> OAuthClient | None: ...

    async def list_clients(self) -> list[OAuthClient]: ...

    async def delete_client(self, client_id: str) -> bool: ...

    async def add_signing_key(self, key: SigningKey, retire_keep: float | None) -> None: ...

    async def signing_keys(self, now: float) -> list[SigningKey]: ...

    async def insert_code(self, code: AuthorizationCode) -> None: ...

    async def get_code(self, code_hash: str) -> AuthorizationCode | None: ...

    async def redeem_code(self, code_hash: str, now: float, rows: NewSessionRows) -> bool: ...

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None: ...

    async def save_consent(self, consent: Consent) -> None: ...

    async def login_request_by_secret(self, secret_hash: str) -> LoginRequest | None: ...

    async def session_by_refresh_token(self, token_hash: str) -> Session | None: ...


class FactorStore(UserStore, AuditStore, Protocol):
    """Second factors, for ``accounts/``: passkeys, TOTP, recovery codes, challenges and mfa
    tokens, the failure window, and sessions' step-up time. Each use is one conditional
    write (a counter, a time step, a code or a challenge is accepted once)."""

    async def factor_summary(self, user_id: str) -> tuple[int, bool, int]: ...

    async def set_mfa_required(self, user_id: str, required: bool, audit: AuditEntry) -> bool: ...

    async def insert_passkey(self, passkey: Passkey, audit: AuditEntry) -> None: ...

    async def passkeys_of(self, user_id: str) -> list[Passkey]: ...

    async def passkey_by_credential(self, credential_id: str) -> Passkey | None: ...

    async def use_passkey(
        self, passkey_id: str, seen_count: int, new_count: int, backup_state: bool, now: float
    ) -> bool: ...

    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> Passkey | None: ...

    async def delete_passkey(self, user_id: str, passkey_id: str, audit: AuditEntry) -> bool: ...

    async def get_totp(self, user_id: str) -> TotpFactor | None: ...

    async def begin_totp(self, factor: TotpFactor) -> bool: ...

    async def enable_totp(
        self, user_id: str, step: int, now: float, codes: list[RecoveryCode], audit: AuditEntry
    ) -> bool: ...

    async def use_totp_step(self, user_id: str, step: int) -> bool: ...

    async def delete_totp(self, user_id: str, audit: AuditEntry) -> bool: ...

    async def replace_recovery_codes(
        self, user_id: str, codes: list[RecoveryCode], audit: AuditEntry
    ) -> None: ...

    async def use_recovery_code(self, user_id: str, code_hmac: str, now: float) -> bool: ...

    async def record_factor_failure(
        self,
        user_id: str,
        now: float,
        window: float,
        threshold: int,
        lock_for: float,
        audit: AuditEntry | None,
    ) -> User | None: ...

    async def insert_challenge(self, challenge: FactorChallenge) -> None: ...

    async def get_challenge(
        self, token_hash: str, kind: str, now: float, limit: int
    ) -> FactorChallenge | None: ...

    async def take_challenge(
        self, token_hash: str, kind: str, now: float, limit: int
    ) -> FactorChallenge | None: ...

    async def fail_challenge(self, token_hash: str) -> None: ...

    async def mark_verified(
        self, session_id: str, now: float, audit: AuditEntry | None
    ) -> None: ...

    async def spend_verification(self, session_id: str, since: float) -> bool: ...

    async def get_session(self, session_id: str) -> Session | None: ...
