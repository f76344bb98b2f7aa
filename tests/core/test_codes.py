"""User codes (RFC 8628 user_code) and confirm codes."""

from __future__ import annotations

import pytest

from qrlogin.core.codes import (
    derive_confirm_code,
    derive_user_code,
    display_user_code,
    plausible_user_code,
)
from qrlogin.core.tokens import BASE20_ALPHABET

KEY = b"k" * 32


def test_base20_alphabet_is_rfc_8628_without_vowels_or_look_alikes() -> None:
    assert BASE20_ALPHABET == "BCDFGHJKLMNPQRSTVWXZ"
    assert len(set(BASE20_ALPHABET)) == 20
    assert not set(BASE20_ALPHABET) & set("AEIOUY01")


def test_digit_user_codes_are_six_digits_shown_as_three_and_three() -> None:
    code = derive_user_code(KEY, "lr_abc", 0, "digits")
    assert len(code) == 6 and code.isdigit()
    shown = display_user_code(code)
    assert shown == f"{code[:3]} {code[3:]}"
    assert display_user_code("123456") == "123 456"


def test_base20_user_codes_are_eight_letters_shown_as_four_and_four() -> None:
    code = derive_user_code(KEY, "lr_abc", 0, "base20")
    assert len(code) == 8 and set(code) <= set(BASE20_ALPHABET)
    assert display_user_code(code) == f"{code[:4]}-{code[4:]}"
    assert display_user_code("BCDFGHJK") == "BCDF-GHJK"


@pytest.mark.parametrize("fmt", ["digits", "base20"])
def test_user_codes_are_derived_per_key_request_and_seq(fmt: str) -> None:
    code = derive_user_code(KEY, "lr_abc", 0, fmt)  # type: ignore[arg-type]
    assert code == derive_user_code(KEY, "lr_abc", 0, fmt)  # type: ignore[arg-type]
    by_seq = {derive_user_code(KEY, "lr_abc", seq, fmt) for seq in range(20)}  # type: ignore[arg-type]
    assert len(by_seq) >= 19  # moving on after a collision gives another code
    by_request = {derive_user_code(KEY, f"lr_{i}", 0, fmt) for i in range(50)}  # type: ignore[arg-type]
    assert len(by_request) >= 49
    assert code != derive_user_code(b"other", "lr_abc", 0, fmt)  # type: ignore[arg-type]


def test_base20_user_codes_use_the_whole_alphabet() -> None:
    seen = set()
    for i in range(300):
        seen |= set(derive_user_code(KEY, f"lr_{i}", 0, "base20"))
    assert seen == set(BASE20_ALPHABET)


def test_confirm_codes_are_six_digits_derived_per_request_and_key() -> None:
    code = derive_confirm_code(KEY, "lr_abc")
    assert len(code) == 6 and code.isdigit()
    assert code == derive_confirm_code(KEY, "lr_abc")
    assert len({derive_confirm_code(KEY, f"lr_{i}") for i in range(50)}) >= 49
    assert code != derive_confirm_code(b"other", "lr_abc")
    assert code != derive_user_code(KEY, "lr_abc", 0, "digits")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123456", "123456"),
        ("123 456", "123456"),
        ("123-456", "123456"),
        ("  12 34 56 ", "123456"),
        ("12345", None),
        ("1234567", None),
        ("12345a", None),
        ("", None),
        ("BCDF-GHJK", None),
    ],
)
def test_plausible_digit_codes(raw: str, expected: str | None) -> None:
    assert plausible_user_code(raw, "digits") == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BCDF-GHJK", "BCDFGHJK"),
        ("bcdf-ghjk", "BCDFGHJK"),
        ("bcdf ghjk", "BCDFGHJK"),
        ("BcDfGhJk", "BCDFGHJK"),
        ("BCDF-GHJ", None),
        ("BCDF-GHJKL", None),
        ("ABCD-EFGH", None),  # vowels are not in the alphabet
        ("BCDF-GHJ1", None),
        ("123456", None),
    ],
)
def test_plausible_base20_codes(raw: str, expected: str | None) -> None:
    assert plausible_user_code(raw, "base20") == expected


@pytest.mark.parametrize("fmt", ["digits", "base20"])
def test_a_displayed_code_reads_back_as_the_code(fmt: str) -> None:
    for i in range(30):
        code = derive_user_code(KEY, f"lr_{i}", 0, fmt)  # type: ignore[arg-type]
        shown = display_user_code(code)
        assert plausible_user_code(shown, fmt) == code  # type: ignore[arg-type]
        assert plausible_user_code(shown.lower(), fmt) == code  # type: ignore[arg-type]
