"""Codes people type: user codes (RFC 8628 ``user_code``), confirm codes, email codes.

User and confirm codes are derived from the server key and the request id, so any instance
can show them again while the database holds only their HMAC (DESIGN.md requirement 6).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from qrlogin.core.tokens import BASE20_ALPHABET, normalize_code

UserCodeFormat = Literal["digits", "base20"]


def _prf(key: bytes, *parts: str) -> int:
    mac = hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big")


def derive_user_code(key: bytes, request_id: str, seq: int, fmt: UserCodeFormat) -> str:
    """The canonical (normalised) user code; ``seq`` moves on when a code collides."""
    n = _prf(key, "user_code", request_id, str(seq))
    if fmt == "digits":
        return f"{n % 1_000_000:06d}"
    chars = []
    for _ in range(8):
        n, r = divmod(n, len(BASE20_ALPHABET))
        chars.append(BASE20_ALPHABET[r])
    return "".join(chars)


def display_user_code(code: str) -> str:
    """``123456`` → ``123 456``; ``BCDFGHJK`` → ``BCDF-GHJK`` (RFC 8628 §6.1)."""
    if code.isdigit():
        return f"{code[:3]} {code[3:]}"
    return f"{code[:4]}-{code[4:]}"


def derive_confirm_code(key: bytes, request_id: str) -> str:
    return f"{_prf(key, 'confirm_code', request_id) % 1_000_000:06d}"


def plausible_user_code(raw: str, fmt: UserCodeFormat) -> str | None:
    """The normalised code if it has the configured shape, else ``None``."""
    code = normalize_code(raw)
    if fmt == "digits":
        return code if len(code) == 6 and code.isdigit() else None
    return code if len(code) == 8 and all(ch in BASE20_ALPHABET for ch in code) else None
