"""Request and response bodies of the JSON API (they make /openapi.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    error: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What happened and what to do next.")
    attempts_left: int | None = Field(
        None, description="invalid_code on the exchange only: wrong confirm codes still allowed."
    )


class CreateLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_name: str | None = Field(default=None, max_length=100)


class LoginRequestState(BaseModel):
    id: str
    status: str
    version: int
    expires_at: float
    reason: str | None = None
    qr_url: str | None = Field(None, description="Present while pending: what the QR encodes.")
    qr_expires_at: float | None = None
    user_code: str | None = Field(None, description="Present while pending: the code to type.")
    approver_device: str | None = None
    confirm_code_required: bool = False
    approver_signing_in: bool = Field(
        False,
        description="While pending: someone opened the QR on a phone that is signing in first.",
    )


class CreatedLoginRequest(LoginRequestState):
    secret: str | None = Field(
        None, description="The requester secret. Browser clients get an HttpOnly cookie instead."
    )


class ExchangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm_code: str | None = Field(default=None, max_length=20)


class UserOut(BaseModel):
    id: str
    display_name: str
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
    user: UserOut


class RequesterInfo(BaseModel):
    id: str
    device_name: str
    browser: str
    os: str
    ip: str
    created_at: float
    age_seconds: int
    same_network: bool


class ScanOut(BaseModel):
    request: RequesterInfo
    status: str
    handle: str
    confirm_code: str | None = None


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_code: str = Field(max_length=32, description="As shown: spaces, dashes and case ignored.")


class DecisionOut(BaseModel):
    status: str
    confirm_code: str | None = None


class EmailStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    next: str | None = Field(default=None, max_length=500)


class EmailVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    code: str = Field(max_length=20)


class Accepted(BaseModel):
    status: str = "sent"
    message: str


class MeOut(BaseModel):
    user: UserOut
    session_id: str
    expires_at: float


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
    linked_by: str = Field(description="email, qr or user_code")
    linked_from: str | None = Field(None, description="The approving device, for qr/user_code.")
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


class ActivityList(BaseModel):
    activity: list[ActivityEntry]
