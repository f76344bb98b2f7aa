"""Issue 11 item 1: redirect targets are same-origin paths after normalising as a browser
would (DESIGN.md requirement 14)."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest

from qrlogin.core.redirects import safe_redirect_path

ORIGIN = "http://qrlogin.test"
CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"]


@pytest.mark.parametrize(
    "raw",
    ["/account", "/q/AbC-_123", "/link", "/account?tab=devices#top", "/a/b.c/d~e", "/"],
)
def test_same_origin_paths_are_kept(raw: str) -> None:
    assert safe_redirect_path(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "account",
        "//evil.example/phish",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "/\t/evil.example/phish",
        "/\n/evil.example/phish",
        "/\r/evil.example/phish",
        "\t//evil.example",
        " //evil.example",
        "/\t\\evil.example",
        "\x00//evil.example",
        "https://evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,hi",
        "/..//evil.example",
        "/%2e%2e//evil.example",
        "/./evil",
        "/a/../../evil",
        "/" + "a" * 2001,
    ],
)
def test_anything_a_browser_could_read_as_another_origin_is_refused(raw: str | None) -> None:
    assert safe_redirect_path(raw) is None


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize("shape", ["/{c}/evil.example/phish", "/{c}\\evil.example", "{c}//evil"])
def test_no_control_character_turns_a_path_into_another_origin(control: str, shape: str) -> None:
    raw = shape.format(c=control)
    safe = safe_redirect_path(raw)
    if safe is not None:  # whatever is let through resolves on our own origin
        assert urljoin(ORIGIN + "/signin", safe).startswith(ORIGIN + "/"), (raw, safe)
        assert not safe.startswith("//")


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_a_control_character_inside_a_path_is_refused_or_dropped(control: str) -> None:
    safe = safe_redirect_path(f"/acc{control}ount")
    assert safe in (None, "/account")


def test_leading_and_trailing_spaces_and_controls_are_stripped_as_a_browser_does() -> None:
    assert safe_redirect_path(" \t/account\x00 ") == "/account"


def test_what_comes_out_is_printable_ascii() -> None:
    safe = safe_redirect_path('/q/ä b"<x>')
    assert safe == "/q/%C3%A4%20b%22%3Cx%3E"
    assert safe.isascii() and safe.isprintable()
