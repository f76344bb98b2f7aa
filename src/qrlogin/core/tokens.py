"""Generation and hashing of handles, secrets, ids and human-typed codes.

Every random value comes from :mod:`secrets` (DESIGN.md security requirement 1). Tokens are
stored as SHA-256 (requirement 7); human-typed codes as HMAC(server key, code ‖ scope)
(requirement 6) because a 6-digit code's SHA-256 is trivially reversed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

HANDLE_BYTES = 16  # the rotating, 128-bit part of a handle
HANDLE_TAG_BYTES = 8  # the fixed part: finds the request in the database
SECRET_BYTES = 32  # 256-bit secrets and session tokens


def new_id(prefix: str) -> str:
    """A server-chosen public id such as ``lr_…``; 128 random bits."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def new_secret() -> str:
    """A 256-bit bearer secret (requester secret, session token, magic link)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


HANDLE_TAG_LEN = len(_b64(bytes(HANDLE_TAG_BYTES)))  # 11 characters
HANDLE_LEN = HANDLE_TAG_LEN + len(_b64(bytes(HANDLE_BYTES)))  # 33 characters


def handle_tag(key: bytes, request_id: str) -> str:
    """The part of every handle of a request that does not rotate: what the database finds
    the request by (it stores the tag's SHA-256). Useless without the rotating part."""
    mac = hmac.new(key, f"handle-tag\x00{request_id}".encode(), hashlib.sha256).digest()
    return _b64(mac[:HANDLE_TAG_BYTES])


def derive_handle(key: bytes, request_id: str, slot: int) -> str:
    """The handle for rotation ``slot`` of a request: its tag, then 128 bits of
    HMAC(key, request id ‖ slot) that change every slot.

    Derived rather than stored so any instance can show the current QR, and rotating it
    costs no write; the database keeps only the tag's hash, so a dump without the key yields
    no handle, and a handle from an earlier slot fails the HMAC check.
    """
    mac = hmac.new(key, f"handle\x00{request_id}\x00{slot}".encode(), hashlib.sha256).digest()
    return handle_tag(key, request_id) + _b64(mac[:HANDLE_BYTES])


def tag_of(handle: str) -> str | None:
    """The tag part of something offered as a handle, or ``None`` if it cannot be one."""
    if len(handle) != HANDLE_LEN or not handle.isascii():
        return None
    return handle[:HANDLE_TAG_LEN]


def new_digits(length: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


BASE20_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, no ambiguous characters


def new_base20(length: int = 8) -> str:
    return "".join(secrets.choice(BASE20_ALPHABET) for _ in range(length))


def code_hmac(key: bytes, code: str, scope: str) -> str:
    """HMAC(server key, code ‖ scope): how human-typed codes are stored and compared."""
    return hmac.new(key, f"{code}\x00{scope}".encode(), hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def normalize_code(raw: str) -> str:
    """Strip spaces and dashes and upper-case, so ``123 456``, ``bcdf-ghjk`` match."""
    return "".join(ch for ch in raw if ch not in " -\t\u00a0").upper()
