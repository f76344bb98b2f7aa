"""The login request's QR code as terminal text, SVG and PNG (segno draws it)."""

from __future__ import annotations

import io

import segno

#: ISO/IEC 18004 asks for a quiet zone of four modules on every side.
QUIET_ZONE = 4
#: Explicit black on white, whatever the terminal's own colours: a dark theme's light-on-dark
#: default would invert the code, and many phone scanners read only dark-on-light.
ON_WHITE = "\x1b[30;47m"
RESET = "\x1b[0m"
_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def make(url: str) -> segno.QRCode:
    """The smallest code for ``url`` (segno raises the error level while it fits)."""
    return segno.make_qr(url, error="l")


def text(url: str) -> list[str]:
    """Lines that draw the code with half blocks: two modules per character cell, so a
    41-module code with its quiet zone takes 41 columns and 21 rows."""
    rows = [[bool(m) for m in row] for row in make(url).matrix_iter(border=QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    return [
        ON_WHITE + "".join(_HALF_BLOCKS[pair] for pair in zip(top, bottom, strict=True)) + RESET
        for top, bottom in zip(rows[::2], rows[1::2], strict=True)
    ]


def svg(url: str, scale: int = 4) -> str:
    out = io.BytesIO()
    make(url).save(out, kind="svg", scale=scale, border=QUIET_ZONE)
    return out.getvalue().decode("utf-8")


def png(url: str, scale: int = 8) -> bytes:
    out = io.BytesIO()
    make(url).save(out, kind="png", scale=scale, border=QUIET_ZONE)
    return out.getvalue()
