"""Which RFC 8628 error an exchange gets in each state."""

from __future__ import annotations

import pytest

from qrlogin.core.errors import (
    AccessDenied,
    AlreadyUsed,
    AuthorizationPending,
    ExpiredToken,
    QrLoginError,
)
from qrlogin.core.machine import Status
from qrlogin.handshake.refusals import exchange_refusal


@pytest.mark.parametrize(
    ("status", "refusal", "error"),
    [
        (Status.PENDING, AuthorizationPending, "authorization_pending"),
        (Status.SCANNED, AuthorizationPending, "authorization_pending"),
        (Status.DENIED, AccessDenied, "access_denied"),
        (Status.CANCELLED, AccessDenied, "access_denied"),
        (Status.EXPIRED, ExpiredToken, "expired_token"),
        (Status.CONSUMED, AlreadyUsed, "already_used"),
    ],
)
def test_exchange_is_refused_in_every_state_but_approved(
    status: Status, refusal: type[QrLoginError], error: str
) -> None:
    got = exchange_refusal(status)
    assert type(got) is refusal
    assert got is not None and got.error == error


def test_exchange_may_go_ahead_only_when_approved() -> None:
    assert exchange_refusal(Status.APPROVED) is None
    assert [s for s in Status if exchange_refusal(s) is None] == [Status.APPROVED]


def test_a_burned_request_says_too_many_wrong_codes() -> None:
    burned = exchange_refusal(Status.DENIED, "too_many_attempts")
    plain = exchange_refusal(Status.DENIED, "denied_by_approver")
    assert isinstance(burned, AccessDenied)
    assert burned.error == "access_denied"
    assert "Too many wrong confirm codes" in burned.message
    assert plain is not None and plain.message == AccessDenied.default_message


def test_the_too_many_attempts_reason_does_not_change_other_states() -> None:
    for status in (Status.PENDING, Status.CONSUMED, Status.EXPIRED):
        got = exchange_refusal(status, "too_many_attempts")
        assert got is not None
        assert got.message == type(got).default_message


def test_each_refusal_is_a_new_exception() -> None:
    assert exchange_refusal(Status.CONSUMED) is not exchange_refusal(Status.CONSUMED)
