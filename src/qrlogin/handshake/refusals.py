"""Why an exchange is refused, by state (RFC 8628 §3.5 error codes)."""

from __future__ import annotations

from qrlogin.core.errors import (
    AccessDenied,
    AlreadyUsed,
    AuthorizationPending,
    ExpiredToken,
    QrLoginError,
)
from qrlogin.core.machine import Status

_REFUSALS: dict[Status, type[QrLoginError]] = {
    Status.PENDING: AuthorizationPending,
    Status.SCANNED: AuthorizationPending,
    Status.DENIED: AccessDenied,
    Status.CANCELLED: AccessDenied,
    Status.EXPIRED: ExpiredToken,
    Status.CONSUMED: AlreadyUsed,
}


def exchange_refusal(status: Status, reason: str | None = None) -> QrLoginError | None:
    """The error an exchange gets in ``status``, or ``None`` when it may go ahead."""
    cls = _REFUSALS.get(status)
    if cls is None:
        return None
    if cls is AccessDenied and reason == "too_many_attempts":
        return AccessDenied(
            "Too many wrong confirm codes: this sign-in was blocked. Start a new login request."
        )
    if cls is AccessDenied and reason == "approver_signed_out":
        return AccessDenied(
            "The device that approved this sign-in has been signed out since, so the approval "
            "no longer counts. Scan the code again from a signed-in device."
        )
    return cls()
