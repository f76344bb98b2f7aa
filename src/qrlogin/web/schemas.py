"""Request and response bodies of the JSON API: each reply shape is one model, used for the
JSON body, the SSE ``data:`` lines and the OpenAPI document alike. The handshake's own
replies (``LoginRequestState``, ``RequesterInfo``) are defined in ``handshake.views``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from qrlogin.handshake.views import LoginRequestState, RequesterInfo

__all__ = ["LoginRequestState", "RequesterInfo"]  # re-exported: the API's models in one place


class ErrorBody(BaseModel):
    error: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What happened and what to do next.")
    attempts_left: int | None = Field(
        default=None,
        description="invalid_code on the exchange only: wrong confirm codes still allowed.",
    )
    mfa_token: str | None = Field(
        default=None,
        description="second_factor_required only: finishes the sign-in with the second "
        "factor (single use, 5 minutes, this browser only).",
    )
    methods: list[str] | None = Field(
        default=None,
        description="second_factor_required and step_up_required: the factors the account "
        "can use (passkey, totp, recovery).",
    )


class CreateLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_name: str | None = Field(default=None, max_length=100)


class CreatedLoginRequest(LoginRequestState):
    secret: str | None = Field(
        None, description="The requester secret. Browser clients get an HttpOnly cookie instead."
    )


class ExchangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm_code: str | None = Field(default=None, max_length=20)


class SessionUser(BaseModel):
    id: str
    display_name: str


class UserOut(SessionUser):
    email: str | None = None


class SessionOut(BaseModel):
    access_token: str | None = Field(
        None, description="Omitted for browser clients, which get the session cookie."
    )
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str | None = Field(
        None, description="API clients only: renews the access token at /api/v1/token/refresh."
    )
    user: SessionUser


class ScanOut(BaseModel):
    request: RequesterInfo
    status: str
    handle: str
    confirm_code: str | None = None


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_code: str = Field(
        min_length=1, max_length=32, description="As shown: spaces, dashes and case ignored."
    )


class DecisionOut(BaseModel):
    status: str
    confirm_code: str | None = None


# Spaces around are trimmed, none inside. The spaces are spelled out as one class that reads
# the same to Python, to pydantic's regex engine and to an ECMAScript one (``\s`` does not):
# str.isspace's, which ``accounts.email_login.normalize_email`` strips and refuses
_SPACES = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PART = f"[^@{_SPACES}]"
Email = Annotated[
    str,
    Field(
        max_length=320,
        pattern=f"^[{_SPACES}]*{_PART}{{1,64}}@{_PART}+\\.{_PART}+[{_SPACES}]*$",
    ),
]


class EmailStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    next: str | None = Field(default=None, max_length=500)


class EmailVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    code: str = Field(min_length=1, max_length=20)


class Accepted(BaseModel):
    status: str = "sent"
    message: str


class MeOut(BaseModel):
    user: UserOut
    session_id: str
    expires_at: float


# -- TOTP, recovery codes and the second-factor step (web/api_totp.py) ----------------------


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32, for typing into an app that cannot scan.")
    otpauth_uri: str = Field(description="The otpauth:// URI the QR code holds.")
    qr_svg: str = Field(description="The QR code of otpauth_uri, an SVG document.")


class FactorCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(
        min_length=1,
        max_length=32,
        description="6 digits from the authenticator app, or a recovery code.",
    )


class FreshFactor(BaseModel):
    """A change that needs a fresh second factor: a code in the same call, or none when
    the session proved one within the last 5 minutes."""

    model_config = ConfigDict(extra="forbid")
    code: str | None = Field(default=None, min_length=1, max_length=32)


class RequireFactor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    required: bool
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="To stop requiring: a TOTP or recovery code, unless the session proved a "
        "second factor within the last 5 minutes.",
    )


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once: each works once.")


class SecondFactorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mfa_token: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=32)


class Verified(BaseModel):
    verified_at: float


class FactorsOut(BaseModel):
    methods: list[str] = Field(
        description="The second factors usable now: passkey, totp, recovery."
    )
    passkeys: int
    totp: bool
    recovery_codes_left: int
    mfa_required: bool


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(max_length=200)


class SessionInfo(BaseModel):
    id: str
    device_name: str
    browser: str
    os: str
    ip: str
    created_at: float
    last_seen_at: float
    linked_by: str = Field(description="email, passkey, qr, user_code or oauth")
    linked_from: str | None = Field(
        default=None, description="The approving device, for qr/user_code."
    )
    amr: list[str] = Field(
        default_factory=list,
        description="How it signed in: email, passkey, otp (authenticator app), qr (approved "
        "by another device) and recovery (a recovery code), in order.",
    )
    current: bool


class SessionList(BaseModel):
    sessions: list[SessionInfo]


class RevokedCount(BaseModel):
    revoked: int


class ActivityEntry(BaseModel):
    event: str
    created_at: float
    ip: str
    browser: str
    os: str
    request_id: str | None = None
    session_id: str | None = None
    detail: str | None = None


class StreamSession(BaseModel):
    """``hello`` and ``revoked`` on a signed-in page's stream: which session it is about."""

    session_id: str


class ActivityList(BaseModel):
    activity: list[ActivityEntry]


class Health(BaseModel):
    status: str = "ok"
    worker: int = Field(description="The serving process's id (one per `--workers`).")


class Readiness(BaseModel):
    status: str = Field(description="ready or unavailable")
    database: str = Field(description="ok or unavailable")
    bus: str = Field(description="ok or unavailable")
