"""Errors carry stable wire codes and HTTP statuses."""

from __future__ import annotations

from qrlogin.core import errors
from qrlogin.core.errors import InvalidHandle, QrLoginError, RateLimited


def all_errors() -> list[type[QrLoginError]]:
    return [
        v
        for v in vars(errors).values()
        if isinstance(v, type) and issubclass(v, QrLoginError) and v is not QrLoginError
    ]


def test_every_error_has_its_own_wire_code_and_a_client_or_server_status() -> None:
    classes = all_errors()
    assert len(classes) >= 10
    codes = [cls.error for cls in classes]
    assert len(codes) == len(set(codes)), codes
    for cls in classes:
        assert 400 <= cls.status < 600
        assert cls.default_message.endswith((".", "!"))


def test_to_dict_gives_the_code_and_message() -> None:
    assert InvalidHandle().to_dict() == {
        "error": "invalid_handle",
        "message": InvalidHandle.default_message,
    }
    custom = InvalidHandle("Try again.")
    assert custom.to_dict()["message"] == "Try again."
    assert str(custom) == "Try again."


def test_retry_after_is_carried() -> None:
    err = RateLimited(retry_after=12)
    assert err.retry_after == 12
    assert err.status == 429
    assert RateLimited().retry_after is None
