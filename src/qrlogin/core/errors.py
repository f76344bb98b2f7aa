"""Errors with stable wire codes.

Each class carries the ``error`` string clients match on, the HTTP status it maps to, and a
default message that says what happened and what to do next.
"""

from __future__ import annotations

from typing import ClassVar


class QrLoginError(Exception):
    """Base class: ``error`` is the stable code, ``status`` the HTTP status."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Something went wrong on our side. Try again."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        super().__init__(self.message)

    def to_dict(self) -> dict[str, str | int | list[str]]:
        return {"error": self.error, "message": self.message}


class InvalidRequest(QrLoginError):
    """The request body or parameters are malformed."""

    error = "invalid_request"
    status = 400
    default_message = "The request is malformed. Check the fields and try again."


class InvalidSecret(QrLoginError):
    """Requester calls need the request's secret; missing, wrong and unknown ids look alike."""

    error = "invalid_secret"
    status = 401
    default_message = (
        "This login request does not exist or the secret does not match. Start a new login request."
    )


class NotSignedIn(QrLoginError):
    """An approver call came without a valid session."""

    error = "not_signed_in"
    status = 401
    default_message = "You are not signed in. Sign in on this device first."


class InvalidHandle(QrLoginError):
    """Unknown, expired, rotated-out or already-claimed handles all get this one reply."""

    error = "invalid_handle"
    status = 404
    default_message = (
        "This code has expired or was already used. Show a new code on the other device "
        "and scan again."
    )


class AuthorizationPending(QrLoginError):
    """RFC 8628 §3.5: the approver has not approved yet."""

    error = "authorization_pending"
    status = 409
    default_message = "Not approved yet. Wait for approval on the other device."


class AccessDenied(QrLoginError):
    """RFC 8628 §3.5: the request was denied or cancelled."""

    error = "access_denied"
    status = 403
    default_message = "This sign-in was denied or cancelled. Start a new login request."


class ExpiredToken(QrLoginError):
    """RFC 8628 §3.5: the login request expired."""

    error = "expired_token"
    status = 410
    default_message = "This login request expired. Start a new one."


class AlreadyUsed(QrLoginError):
    """Exchange is single-use."""

    error = "already_used"
    status = 409
    default_message = "This login request was already used to sign in. Start a new one."


class ConfirmCodeRequired(QrLoginError):
    """Exchange needs the confirm code that the approver shows."""

    error = "confirm_code_required"
    status = 400
    default_message = "Type the 6-digit code shown on your other device."


class InvalidCode(QrLoginError):
    """A typed code was wrong, unknown, expired or used: one reply for all.

    ``attempts_left`` is set only where the caller already holds the request it types a code
    for (the requester's confirm code), so telling it leaks nothing a stranger could use."""

    error = "invalid_code"
    status = 400
    default_message = "That code is not valid. Check it and try again, or request a new one."

    def __init__(
        self,
        message: str | None = None,
        *,
        attempts_left: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.attempts_left = attempts_left

    def to_dict(self) -> dict[str, str | int | list[str]]:
        body = super().to_dict()
        if self.attempts_left is not None:
            body["attempts_left"] = self.attempts_left
        return body


class InvalidState(QrLoginError):
    """The login request is not in a state that allows this action."""

    error = "invalid_state"
    status = 409
    default_message = "This login request can no longer be changed this way."


class CsrfFailed(QrLoginError):
    error = "csrf_failed"
    status = 403
    default_message = "The form expired. Reload the page and try again."


class RateLimited(QrLoginError):
    """Too many attempts; ``retry_after`` says when to try again."""

    error = "rate_limited"
    status = 429
    default_message = "Too many attempts. Wait a little and try again."


class AccountLocked(QrLoginError):
    """Too many consecutive wrong codes for this account (NIST SP 800-63B §5.2.2)."""

    error = "account_locked"
    status = 429
    default_message = (
        "Too many wrong codes were entered for this account, so it is locked for a while. "
        "We sent a notice to its email address. Try again later."
    )


class InvalidGrant(QrLoginError):
    """RFC 6749 §5.2: the refresh token is unknown, expired, revoked or was reused."""

    error = "invalid_grant"
    status = 401
    default_message = "This refresh token is not valid any more. Sign in again."


class ServiceUnavailable(QrLoginError):
    """The database did not answer; nothing was changed."""

    error = "unavailable"
    status = 503
    default_message = "The service is briefly unavailable. Nothing was changed; try again."


class NotFound(QrLoginError):
    error = "not_found"
    status = 404
    default_message = "Nothing here. Check the address."


class SecondFactorRequired(QrLoginError):
    """The email step of a sign-in worked; the account asks for its second factor. The
    reply carries a single-use ``mfa_token`` (bound to this browser) and the ``methods``."""

    error = "second_factor_required"
    status = 401
    default_message = (
        "One more step: use your passkey, or type a code from your authenticator app or "
        "one of your recovery codes."
    )

    def __init__(self, mfa_token: str, methods: list[str], message: str | None = None) -> None:
        super().__init__(message)
        self.mfa_token = mfa_token
        self.methods = methods

    def to_dict(self) -> dict[str, str | int | list[str]]:
        body = super().to_dict()
        body["mfa_token"] = self.mfa_token
        body["methods"] = list(self.methods)
        return body


class InvalidMfaToken(QrLoginError):
    """The mfa token is unknown, used, expired, from another browser or out of tries."""

    error = "invalid_mfa_token"
    status = 401
    default_message = "This sign-in step expired or was already used. Sign in again."


class StepUpRequired(QrLoginError):
    """Approving needs a fresh second factor from the approver (``methods`` says which)."""

    error = "step_up_required"
    status = 403
    default_message = (
        "Confirm it's you before you approve: use your passkey or type a code from your "
        "authenticator app."
    )

    def __init__(self, methods: list[str], message: str | None = None) -> None:
        super().__init__(message)
        self.methods = methods

    def to_dict(self) -> dict[str, str | int | list[str]]:
        body = super().to_dict()
        body["methods"] = list(self.methods)
        return body


class FactorRequired(QrLoginError):
    """The account requires a second factor: its last one cannot be removed."""

    error = "last_factor"
    status = 409
    default_message = (
        "This is your account's last second factor, and the account requires one. Add "
        "another first, or stop requiring a second factor."
    )


class PasskeyRefused(QrLoginError):
    """A passkey ceremony failed: unknown, used, expired or foreign challenge, wrong origin or
    RP ID, bad signature, an unknown or another account's credential, or a sign counter that
    did not move forward (a cloned authenticator). One reply for all."""

    error = "passkey_refused"
    status = 400
    default_message = "That passkey could not be used. Try again, or sign in by email."
