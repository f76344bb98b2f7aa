"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/`` create the same shape.

Times are float seconds since the epoch, so SQLite and PostgreSQL compare them alike.
Secrets and tokens appear only as SHA-256 (``*_hash``), typed codes only as HMAC (``*_hmac``).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()

ID = 40
HASH = 64

users = Table(
    "users",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("failed_code_streak", Integer, nullable=False, server_default="0"),
    Column("locked_at", Float, nullable=True),  # by wrong user codes (its own sessions)
    # wrong email codes, which anyone can type, count and lock apart (requirement 12)
    Column("email_code_streak", Integer, nullable=False, server_default="0"),
    Column("email_locked_at", Float, nullable=True),
    # second factors (accounts/factors.py): the account may not drop its last factor while
    # ``mfa_required``; wrong TOTP and recovery codes count in a 15-minute window and lock
    # the second factor (not the account) for a while
    Column("mfa_required", Integer, nullable=False, server_default="0"),
    Column("factor_failures", Integer, nullable=False, server_default="0"),
    Column("factor_window_at", Float, nullable=True),
    Column("factor_locked_until", Float, nullable=True),
)

login_requests = Table(
    "login_requests",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("secret_hash", String(HASH), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("reason", String(40), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    # the rotation slot the handle froze at when the request was claimed (0 before)
    Column("handle_seq", Integer, nullable=False),
    # SHA-256 of the handle's fixed tag (core/tokens.py handle_tag); the rest is derived
    Column("handle_hash", String(HASH), nullable=False, unique=True),
    Column("device_name", String(100), nullable=False),
    Column("user_agent", String(500), nullable=False),
    Column("ip", String(64), nullable=False),
    # the client's address, or its IPv6 network, as per-IP limits count it
    Column("ip_key", String(64), nullable=False, server_default=""),
    Column("user_code_hmac", String(HASH), nullable=True),
    Column("user_code_seq", Integer, nullable=False, server_default="0"),
    Column("confirm_code_hmac", String(HASH), nullable=True),
    Column("confirm_attempts", Integer, nullable=False, server_default="0"),
    Column("approver_user_id", String(ID), nullable=True),
    Column("approver_session_id", String(ID), nullable=True),
    Column("approver_device", String(100), nullable=True),
    Column("linked_by", String(16), nullable=True),
    Column("scanned_at", Float, nullable=True),
    Column("approved_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    # a phone not signed in yet holds the request while it signs in (a cookie holds the
    # token; ``ApproverFlows.hold``): the token's SHA-256, and since when
    Column("hold_hash", String(HASH), nullable=True, unique=True),
    Column("held_at", Float, nullable=True),
    # a device grant (RFC 8628): the OAuth client that asked, and the scope it asked for
    Column("client_id", String(ID), nullable=True),
    Column("scope", String(200), nullable=True),
    # user codes are unique among pending requests: the insert of a taken one fails and
    # the creator moves on to the next code (no read first); /link finds a code through it
    Index(
        "ux_login_requests_pending_user_code",
        "user_code_hmac",
        unique=True,
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_login_requests_secret_hash", "secret_hash"),  # the device code finds it
    Index("ix_login_requests_expires_at", "expires_at"),
    Index("ix_login_requests_approver_session_id", "approver_session_id"),
    Index("ix_login_requests_ip_key", "ip_key"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("token_hash", String(HASH), nullable=False, unique=True),
    Column("user_id", String(ID), nullable=False, index=True),
    Column("device_name", String(100), nullable=False),
    Column("user_agent", String(500), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_reason", String(32), nullable=True),
    Column("access_expires_at", Float, nullable=True),
    Column("linked_by", String(16), nullable=False),
    Column("linked_from_session_id", String(ID), nullable=True),
    # unique: a login request can start at most one session, whatever races above it
    Column("login_request_id", String(ID), nullable=True, unique=True),
    # the OAuth client whose tokens these are (their scope with them): such a session's
    # tokens serve that client only, never qrlogin's own API or pages (oauth/)
    Column("client_id", String(ID), nullable=True),
    Column("scope", String(200), nullable=True),
    # how the session was made (space-separated ``amr`` values: email, passkey, otp, qr,
    # recovery) and when it last proved a second factor (the step-up before an approval)
    Column("amr", String(60), nullable=True),
    Column("verified_at", Float, nullable=True),
)

email_logins = Table(
    "email_logins",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("email", String(320), nullable=False, index=True),
    Column("code_hmac", String(HASH), nullable=False),
    Column("link_hash", String(HASH), nullable=False, unique=True),
    Column("browser_hash", String(HASH), nullable=True),
    Column("user_agent", String(500), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("consumed_at", Float, nullable=True),
    Column("confirmed_elsewhere_at", Float, nullable=True),
    Column("next", Text, nullable=True),
)

# browsers (SHA-256 of their ``qrl_browser`` cookie) that completed an email sign-in for an
# address: their owner's, so a stranger's requests and wrong codes never shut them out
known_browsers = Table(
    "known_browsers",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("browser_hash", String(HASH), primary_key=True),
    Column("signed_in_at", Float, nullable=False),
    Index("ix_known_browsers_signed_in_at", "signed_in_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(HASH), primary_key=True),
    Column("session_id", String(ID), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("event", String(40), nullable=False),
    Column("user_id", String(ID), nullable=True),
    Column("session_id", String(ID), nullable=True),
    Column("request_id", String(ID), nullable=True),
    Column("ip", String(64), nullable=False),
    Column("user_agent", String(500), nullable=False),
    Column("detail", String(200), nullable=True),
    Index("ix_audit_events_user_id_created_at", "user_id", "created_at"),
    Index("ix_audit_events_created_at", "created_at"),
)

# -- the OpenID Provider (oauth/) ------------------------------------------------------------

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(HASH), nullable=True),  # None: a public client
    Column("redirect_uris", Text, nullable=False),  # JSON list
    Column("post_logout_redirect_uris", Text, nullable=False),  # JSON list
    Column("public", Boolean, nullable=False),
    Column("first_party", Boolean, nullable=False),  # no consent page
    Column("created_at", Float, nullable=False),
)

# ID token signing keys: the newest unretired key of an algorithm signs; retired ones are
# published until ``expires_at`` (when the last token they signed has expired)
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_jwk", Text, nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(HASH), primary_key=True),
    Column("client_id", String(ID), nullable=False),
    Column("user_id", String(ID), nullable=False),
    Column("browser_session_id", String(ID), nullable=False),  # the id_token's ``sid``
    Column("redirect_uri", Text, nullable=False),
    Column("scope", String(200), nullable=False),
    Column("nonce", String(300), nullable=True),
    Column("code_challenge", String(128), nullable=True),  # PKCE S256
    Column("auth_time", Float, nullable=False),
    Column("amr", String(40), nullable=False),  # space-separated
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Column("session_id", String(ID), nullable=True),  # the session its tokens belong to
    Index("ix_oauth_codes_expires_at", "expires_at"),
)

oauth_consents = Table(
    "oauth_consents",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("client_id", String(ID), primary_key=True),
    Column("scope", String(200), nullable=False),  # what the user approved, space-separated
    Column("granted_at", Float, nullable=False),
)

# -- second factors (accounts/) ----------------------------------------------------------------

# WebAuthn credentials. Flags are integers (0/1) so the prebuilt-statement reads take them.
passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("user_id", String(ID), nullable=False, index=True),
    Column("credential_id", String(1400), nullable=False, unique=True),  # base64url
    Column("public_key", Text, nullable=False),  # COSE key, base64url
    Column("sign_count", Integer, nullable=False),
    Column("transports", String(200), nullable=False, server_default=""),  # space-separated
    Column("aaguid", String(40), nullable=False, server_default=""),
    Column("backup_eligible", Integer, nullable=False, server_default="0"),
    Column("backup_state", Integer, nullable=False, server_default="0"),
    Column("name", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)

# one TOTP secret per account, sealed under the server key; ``enabled_at`` is None while it
# is being enrolled; ``last_step`` is the newest time step accepted (a code works once)
totp_factors = Table(
    "totp_factors",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("secret_sealed", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("enabled_at", Float, nullable=True),
    Column("last_step", Integer, nullable=False, server_default="0"),
)

# recovery codes as HMAC(server key, code, user id); each works once
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("code_hmac", String(HASH), primary_key=True),
    Column("user_id", String(ID), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

# single-use, short-lived challenges bound to the browser that asked: WebAuthn challenges
# (registration, sign-in, step-up) and mfa tokens (an email sign-in waiting for its second
# factor). Found by the SHA-256 of the token the browser holds.
factor_challenges = Table(
    "factor_challenges",
    metadata,
    Column("token_hash", String(HASH), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("user_id", String(ID), nullable=True),
    Column("session_id", String(ID), nullable=True),
    Column("browser_hash", String(HASH), nullable=True),  # or ``ip:<key>`` without a cookie
    Column("challenge", String(200), nullable=True),  # WebAuthn challenge, base64url
    Column("data", Text, nullable=True),  # JSON: what the sign-in it finishes carries
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Index("ix_factor_challenges_expires_at", "expires_at"),
)
