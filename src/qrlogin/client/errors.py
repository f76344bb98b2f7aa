"""What the SDK raises: the server's own error classes (``qrlogin.core.errors``), built from
its JSON replies, plus the endings of a login request seen on its stream.

Every exception carries the wire code in ``error`` (``"access_denied"``, ``"invalid_code"`` …)
and the server's ``message``, which says what happened and what to do next.
"""

from __future__ import annotations

from typing import Any

import httpx

from qrlogin.core.errors import (
    AccessDenied,
    AccountLocked,
    AlreadyUsed,
    AuthorizationPending,
    ConfirmCodeRequired,
    CsrfFailed,
    ExpiredToken,
    InvalidCode,
    InvalidGrant,
    InvalidHandle,
    InvalidRequest,
    InvalidSecret,
    InvalidState,
    NotFound,
    NotSignedIn,
    QrLoginError,
    RateLimited,
    ServiceUnavailable,
)

__all__ = [
    "AccessDenied",
    "AlreadyUsed",
    "ExpiredToken",
    "InvalidCode",
    "InvalidGrant",
    "LoginCancelled",
    "LoginDenied",
    "NotSignedIn",
    "QrLoginError",
    "ServerUnreachable",
    "error_from",
]

_BY_CODE: dict[str, type[QrLoginError]] = {
    cls.error: cls
    for cls in (
        InvalidRequest,
        InvalidSecret,
        NotSignedIn,
        InvalidHandle,
        AuthorizationPending,
        AccessDenied,
        ExpiredToken,
        AlreadyUsed,
        ConfirmCodeRequired,
        InvalidCode,
        InvalidState,
        CsrfFailed,
        RateLimited,
        AccountLocked,
        InvalidGrant,
        ServiceUnavailable,
        NotFound,
    )
}


class LoginDenied(AccessDenied):
    """The approver pressed Deny (or withdrew an approval, or signed out)."""

    default_message = "The sign-in was denied on the other device. Start a new login request."


class LoginCancelled(AccessDenied):
    """The login request was cancelled by the requester."""

    default_message = "The sign-in was cancelled. Start a new login request."


class ServerUnreachable(QrLoginError):
    """The server did not answer (connection refused, timed out, or cut) after retries."""

    error = "unreachable"
    status = 0
    default_message = "The qrlogin server did not answer. Check the address and your network."


def error_from(response: httpx.Response) -> QrLoginError:
    """The typed exception for an error reply; unknown codes give the base class."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    retry = response.headers.get("retry-after", "")
    retry_after = int(retry) if retry.isascii() and retry.isdigit() and len(retry) < 10 else None
    cls = _BY_CODE.get(code or "", QrLoginError)
    if cls is QrLoginError and message is None:
        message = f"The server answered {response.status_code} {response.reason_phrase}."
    if cls is InvalidCode:
        left = body.get("attempts_left") if isinstance(body, dict) else None
        return InvalidCode(
            message,
            retry_after=retry_after,
            attempts_left=left if isinstance(left, int) else None,
        )
    return cls(message, retry_after=retry_after)
