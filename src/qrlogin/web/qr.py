"""QR codes as SVG documents (segno draws them): the login request's and TOTP enrolment's."""

from __future__ import annotations

import io

import segno


def svg(
    text: str, *, error: str, scale: int, title: str | None = None, mask: int | None = None
) -> bytes:
    """A complete SVG document (with its namespace), black on white, a 4-module quiet zone.
    ``mask`` fixed spares segno scoring all eight (most of the time of a code)."""
    buf = io.BytesIO()
    segno.make(text, error=error, micro=False, mask=mask).save(
        buf,
        kind="svg",
        scale=scale,
        border=4,
        dark="#000",
        light="#fff",
        title=title,
        xmldecl=False,
        svgclass="qr-svg",
        lineclass=None,
    )
    return buf.getvalue()
