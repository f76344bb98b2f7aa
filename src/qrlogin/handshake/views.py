"""What the handshake tells each side, as wire models: defined once, they give the JSON
replies, the SSE ``data:`` lines, the long-poll replies and the OpenAPI schema alike.

pydantic is a library, not a framework: these models hold no behaviour and know no web.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LoginRequestState(BaseModel):
    """The requester's view of its login request. Before approval it holds nothing about the
    approver but the kind of device it uses (the USENIX "personal data in polls" flaw)."""

    id: str
    status: str = Field(
        description="pending, scanned, approved, consumed, denied, cancelled or expired."
    )
    version: int = Field(description="Bumped by every change; the long-poll's `version`.")
    expires_at: float
    reason: str | None = Field(default=None, description="Why it ended, when denied or cancelled.")
    qr_url: str | None = Field(
        default=None, description="Present while pending: what the QR encodes."
    )
    qr_expires_at: float | None = Field(
        default=None, description="Present while pending: when the QR's handle rotates."
    )
    user_code: str | None = Field(
        default=None, description="Present while pending: the code to type."
    )
    approver_device: str | None = Field(
        default=None, description="Once scanned: the kind of device that scanned (never who)."
    )
    confirm_code_required: bool = False
    approver_signing_in: bool = Field(
        default=False,
        description="While pending: someone opened the QR on a phone that is signing in first.",
    )


class ApproverState(BaseModel):
    """What the approver's stream says of a request its session claimed: nothing it did not
    already know."""

    status: str
    reason: str | None = Field(default=None, description="Why it ended, when denied or cancelled.")
    version: int


class RequesterInfo(BaseModel):
    """What the approval screen shows about the requester (DESIGN.md requirement 4)."""

    id: str
    device_name: str = Field(description="What the requester calls itself: its claim, not fact.")
    browser: str
    os: str
    ip: str
    created_at: float
    age_seconds: int
    same_network: bool
