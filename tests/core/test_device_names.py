"""Issue 11 item 6: what a requester calls itself is cleaned before anyone sees it (DESIGN.md
requirement 13)."""

from __future__ import annotations

import pytest

from qrlogin.core.device_names import MAX_LENGTH, clean_device_name

BIDI = [
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069",
    "\u200e", "\u200f", "\u061c",
]  # fmt: skip


@pytest.mark.parametrize("mark", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_bidi_controls_are_stripped(mark: str) -> None:
    assert clean_device_name(f"Office{mark}PC") == "OfficePC"


@pytest.mark.parametrize("code", [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
def test_control_characters_are_stripped(code: int) -> None:
    assert clean_device_name(f"TV{chr(code)}1") == "TV1"


def test_the_classic_override_trick_no_longer_reverses_anything() -> None:
    assert clean_device_name("Safe \u202eexe.live") == "Safe exe.live"


@pytest.mark.parametrize(
    "invisible", ["\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\ue000", "\U000e0041"]
)
def test_invisible_and_private_characters_are_stripped(invisible: str) -> None:
    assert clean_device_name(f"Desk{invisible}top") == "Desktop"


def test_whitespace_of_every_kind_collapses_to_one_space() -> None:
    raw = "  Living\t\n room\u2028\u2029TV\u00a0\u3000 "
    assert clean_device_name(raw) == "Living room TV"


def test_the_length_is_capped() -> None:
    assert clean_device_name("x" * 100) == "x" * MAX_LENGTH
    assert len(clean_device_name("word " * 40)) <= MAX_LENGTH
    assert not clean_device_name("a" * (MAX_LENGTH - 1) + " b").endswith(" ")


@pytest.mark.parametrize("raw", [None, "", "   ", "\u202e\u200b\x00", "\t\n"])
def test_nothing_visible_is_nothing(raw: str | None) -> None:
    assert clean_device_name(raw) == ""


def test_ordinary_names_and_emoji_stay() -> None:
    assert clean_device_name("Ann’s iPad — Küche ✅") == "Ann’s iPad — Küche ✅"
    assert clean_device_name("客厅电视") == "客厅电视"
