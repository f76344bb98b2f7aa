"""What a requester calls itself, made safe to show (DESIGN.md requirement 13).

The requester names itself (``device_name``), so the name is a claim, never a fact. Before it
is stored it loses everything that could make it look like something else: control
characters (NUL, escape sequences), format characters, among them the bidirectional
overrides and isolates (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C) that can make
"evil.exe" read as "exe.live", invisible ones (zero-width spaces and joiners), surrogates,
private-use and unassigned code points. Every run of whitespace (line and paragraph
separators included) becomes one space, and the result is cut to ``MAX_LENGTH`` characters.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 60
# Cc control, Cf format (bidi marks and overrides, zero-width characters), Cs surrogate,
# Co private use, Cn unassigned
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_SPACES = frozenset({"Zs", "Zl", "Zp"})  # space, line and paragraph separators


def clean_device_name(raw: str | None, max_length: int = MAX_LENGTH) -> str:
    """``raw`` with control, bidi and other invisible characters removed, whitespace
    collapsed and the length capped; ``""`` when nothing visible is left."""
    if not raw:
        return ""
    kept = []
    for ch in unicodedata.normalize("NFC", raw):
        category = unicodedata.category(ch)
        if category in _SPACES or ch in "\t\n\r":  # tab and newlines are Cc, yet spaces
            kept.append(" ")
        elif category not in _DROPPED:
            kept.append(ch)
    return " ".join("".join(kept).split())[:max_length].rstrip()
