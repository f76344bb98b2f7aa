"""Lifetimes and limits. One frozen object so tests and deployments can tune them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    request_lifetime: float = 300.0  # a login request lives at most 5 min
    handle_rotation: float = 30.0  # the QR's handle rotates every 30 s
    handle_grace: float = 10.0  # the previous handle is honoured this long after rotation
    confirm_attempts: int = 5  # wrong confirm codes before the request is burned
    code_attempts: int = 5  # wrong tries per typed code (email code, user code)
    email_code_lifetime: float = 600.0
    heartbeat: float = 15.0  # SSE heartbeat; also the bound on recovering a lost event
    long_poll_max: float = 60.0
    session_lifetime: float = 30 * 24 * 3600.0  # absolute: a session ends this long after it began
    session_idle_timeout: float = 14 * 24 * 3600.0  # a session unused this long ends
    last_seen_every: float = 60.0  # last_seen is written at most this often per session
    access_token_lifetime: float = 3600.0  # API clients' access tokens; refresh for more
    refresh_retry_window: float = 10.0  # a used refresh token may repeat its answer this long
    # consecutive wrong user codes (typed by the account's own sessions) before it locks
    account_failure_lockout: int = 100
    # consecutive wrong email codes (anyone can ask for one and type it) before email sign-in
    # locks, for browsers other than the owner's known ones (DESIGN.md requirement 12)
    email_failure_lockout: int = 1000
    account_lockout: float = 3600.0  # how long a locked account stays locked
    # a browser that completed an email sign-in for an address stays known to it this long;
    # also the lifetime of the browser-binding cookie
    known_browser_lifetime: float = 400 * 86400.0
    # second factors (accounts/factors.py)
    challenge_lifetime: float = 300.0  # a WebAuthn challenge, single use
    mfa_token_lifetime: float = 300.0  # an email sign-in waiting for its second factor
    mfa_token_attempts: int = 5  # wrong codes against one mfa token before it dies
    factor_failure_limit: int = 5  # wrong TOTP / recovery codes in the window lock the factor
    factor_failure_window: float = 900.0
    factor_lockout: float = 900.0
    step_up_window: float = 300.0  # a second factor this recent lets an approval through
    recovery_code_count: int = 10


DEFAULT_POLICY = Policy()
