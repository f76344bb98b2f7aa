"""Handles, secrets, ids and the hashing of tokens and typed codes."""

from __future__ import annotations

import base64
import hashlib
import re

from qrlogin.core.tokens import (
    BASE20_ALPHABET,
    HANDLE_LEN,
    HANDLE_TAG_LEN,
    code_hmac,
    constant_time_equal,
    derive_handle,
    handle_tag,
    new_base20,
    new_digits,
    new_id,
    new_secret,
    normalize_code,
    sha256_hex,
    tag_of,
)

URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")
KEY = b"k" * 32


def b64_bytes(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_handles_are_at_least_128_bits_and_url_safe() -> None:
    handle = derive_handle(KEY, "lr_abc", 0)
    assert URLSAFE.match(handle)
    assert len(handle) == HANDLE_LEN
    # the part that rotates alone is 128 bits; the fixed tag adds 64
    assert len(b64_bytes(handle[HANDLE_TAG_LEN:])) * 8 == 128
    assert len(b64_bytes(handle[:HANDLE_TAG_LEN])) * 8 == 64


def test_a_handle_keeps_its_tag_across_slots_and_rotates_the_rest() -> None:
    handles = [derive_handle(KEY, "lr_abc", slot) for slot in range(20)]
    assert {h[:HANDLE_TAG_LEN] for h in handles} == {handle_tag(KEY, "lr_abc")}
    assert len({h[HANDLE_TAG_LEN:] for h in handles}) == 20
    assert handle_tag(KEY, "lr_abc") != handle_tag(KEY, "lr_abd")
    assert handle_tag(KEY, "lr_abc") != handle_tag(b"other key", "lr_abc")


def test_tag_of_accepts_only_what_can_be_a_handle() -> None:
    handle = derive_handle(KEY, "lr_abc", 4)
    assert tag_of(handle) == handle_tag(KEY, "lr_abc")
    assert tag_of(handle[:-1]) is None
    assert tag_of(handle + "x") is None
    assert tag_of("é" * HANDLE_LEN) is None
    assert tag_of("") is None


def test_secrets_are_256_bits_url_safe_and_fresh_each_time() -> None:
    secrets_ = {new_secret() for _ in range(200)}
    assert len(secrets_) == 200
    for secret in secrets_:
        assert URLSAFE.match(secret)
        assert len(b64_bytes(secret)) * 8 == 256


def test_ids_carry_their_prefix_and_128_random_bits() -> None:
    ids = {new_id("lr") for _ in range(200)}
    assert len(ids) == 200
    for id_ in ids:
        prefix, rest = id_.split("_", 1)
        assert prefix == "lr"
        assert URLSAFE.match(rest)
        assert len(b64_bytes(rest)) * 8 == 128


def test_derive_handle_is_deterministic_per_key_request_and_seq() -> None:
    assert derive_handle(KEY, "lr_abc", 3) == derive_handle(KEY, "lr_abc", 3)


def test_derive_handle_differs_across_seq_requests_and_keys() -> None:
    handles = {derive_handle(KEY, "lr_abc", seq) for seq in range(50)}
    assert len(handles) == 50
    assert derive_handle(KEY, "lr_abc", 0) != derive_handle(KEY, "lr_abd", 0)
    assert derive_handle(KEY, "lr_abc", 0) != derive_handle(b"other key", "lr_abc", 0)


def test_derive_handle_does_not_confuse_id_and_seq_boundaries() -> None:
    assert derive_handle(KEY, "lr_1", 23) != derive_handle(KEY, "lr_12", 3)


def test_sha256_hex_is_the_hex_digest_of_the_token() -> None:
    assert sha256_hex("token") == hashlib.sha256(b"token").hexdigest()
    assert len(sha256_hex(new_secret())) == 64


def test_code_hmac_depends_on_key_code_and_scope() -> None:
    base = code_hmac(KEY, "123456", "lr_abc")
    assert base == code_hmac(KEY, "123456", "lr_abc")
    assert base != code_hmac(b"another key", "123456", "lr_abc")
    assert base != code_hmac(KEY, "123457", "lr_abc")
    assert base != code_hmac(KEY, "123456", "lr_abd")
    assert base != sha256_hex("123456")  # not reversible from the code alone
    assert len(base) == 64


def test_constant_time_equal_compares_values() -> None:
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abd")
    assert not constant_time_equal("abc", "abcd")


def test_normalize_code_drops_spaces_and_dashes_and_upper_cases() -> None:
    assert normalize_code("123 456") == "123456"
    assert normalize_code(" 123-456 ") == "123456"
    assert normalize_code("bcdf-ghjk") == "BCDFGHJK"
    assert normalize_code("bc\tdf\u00a0gh-jk") == "BCDFGHJK"
    assert normalize_code("") == ""


def test_random_digit_and_base20_codes_have_the_asked_shape() -> None:
    for _ in range(50):
        digits = new_digits(6)
        assert len(digits) == 6 and digits.isdigit()
        code = new_base20()
        assert len(code) == 8 and set(code) <= set(BASE20_ALPHABET)
    assert len({new_digits(12) for _ in range(50)}) == 50
