"""What the server tells a requester, and what a signed-in device keeps: plain data."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

#: The states a login request passes through (DESIGN.md, "The login request state machine").
PENDING, SCANNED, APPROVED, CONSUMED = "pending", "scanned", "approved", "consumed"
DENIED, CANCELLED, EXPIRED = "denied", "cancelled", "expired"
FINAL = frozenset({CONSUMED, DENIED, CANCELLED, EXPIRED})


@dataclass(frozen=True)
class LoginState:
    """One reading of a login request, as its requester sees it (``LoginRequestState``)."""

    id: str
    status: str
    version: int
    expires_at: float
    qr_url: str | None = None
    qr_expires_at: float | None = None
    user_code: str | None = None
    approver_device: str | None = None
    confirm_code_required: bool = False
    reason: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> LoginState:
        return cls(
            id=str(body["id"]),
            status=str(body["status"]),
            version=int(body["version"]),
            expires_at=float(body["expires_at"]),
            qr_url=body.get("qr_url"),
            qr_expires_at=body.get("qr_expires_at"),
            user_code=body.get("user_code"),
            approver_device=body.get("approver_device"),
            confirm_code_required=bool(body.get("confirm_code_required")),
            reason=body.get("reason"),
        )

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True)
class User:
    id: str
    display_name: str
    email: str | None = None


@dataclass(frozen=True)
class Session:
    """A signed-in device's tokens. ``expires_at`` is this machine's clock (epoch seconds)."""

    server_url: str
    access_token: str
    refresh_token: str | None
    expires_at: float
    user: User

    @classmethod
    def from_reply(cls, server_url: str, body: dict[str, Any], now: float) -> Session:
        user = body["user"]
        return cls(
            server_url=server_url,
            access_token=str(body["access_token"]),
            refresh_token=body.get("refresh_token"),
            expires_at=now + float(body["expires_in"]),
            user=User(str(user["id"]), str(user["display_name"]), user.get("email")),
        )

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return self.expires_at - (time.time() if now is None else now) <= seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Session:
        return cls(
            server_url=str(body["server_url"]),
            access_token=str(body["access_token"]),
            refresh_token=body.get("refresh_token"),
            expires_at=float(body["expires_at"]),
            user=User(**body["user"]),
        )
