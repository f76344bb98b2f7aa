"""The QR as terminal text: black on white, a 4-module quiet zone, within 80 columns, and
readable by a QR decoder once drawn as the terminal would."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from qrlogin.client import qr
from support import decode_qr

COLOURED = re.compile(r"^\x1b\[30;47m([▀▄█ ]+)\x1b\[0m$")


def drawn(lines: list[str]) -> bytes:
    """The lines as a terminal draws them (each cell two modules tall), as a PNG."""
    rows = [COLOURED.match(line) for line in lines]
    assert all(rows), lines
    cells = [m.group(1) for m in rows if m]
    image = Image.new("L", (len(cells[0]) * 4, len(cells) * 8), 255)
    for y, row in enumerate(cells):
        for x, char in enumerate(row):
            for half, dark in ((0, char in "▀█"), (1, char in "▄█")):
                if dark:
                    image.paste(0, (x * 4, y * 8 + half * 4, x * 4 + 4, y * 8 + half * 4 + 4))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/q/" + "A" * 43,
        "https://login.a-rather-long-company-name.example.com/some/base/path/q/" + "b1" * 30,
    ],
)
def test_the_terminal_qr_fits_80_columns_and_decodes(url: str) -> None:
    lines = qr.text(url)
    width = len(COLOURED.match(lines[0]).group(1))  # type: ignore[union-attr]
    assert width <= 80
    assert decode_qr(drawn(lines)) == [url]


def test_the_quiet_zone_is_four_modules_of_white() -> None:
    lines = qr.text("http://127.0.0.1:8000/q/handle")
    cells = [COLOURED.match(line).group(1) for line in lines]  # type: ignore[union-attr]
    assert cells[0].strip() == "" and cells[1].strip() == ""  # 4 module rows on top
    assert all(row[:4] == "    " and row[-4:] == "    " for row in cells)
    assert cells[2][4] in "▀█"  # the finder pattern starts right after it


def test_svg_and_png_are_the_same_code() -> None:
    url = "http://127.0.0.1:8000/q/handle"
    assert decode_qr(qr.png(url)) == [url]
    assert qr.svg(url).lstrip().startswith("<?xml") and "<svg" in qr.svg(url)
