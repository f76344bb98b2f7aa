"""Redirect targets: same-origin paths only, judged as a browser will read them
(DESIGN.md requirement 14).

A ``next`` value is checked here once, and what comes out is what the server stores, puts in
``Location`` and hands to page scripts. The check works on the string a browser's URL parser
(WHATWG URL Standard, "basic URL parser") would actually see, because the browser, not the
server, decides where a redirect goes:

- leading and trailing C0 controls and spaces are stripped;
- ASCII tab, LF and CR are removed anywhere (``/\\t/evil.example`` becomes ``//evil.example``);
- in http(s) URLs ``\\`` is a ``/`` (``/\\evil.example`` is ``//evil.example``).

After that the value must be an absolute path (one ``/``, then not a second ``/``): no
scheme, no authority. Other control characters are refused outright, and everything that is
not printable ASCII is percent-encoded, so the result is plain printable ASCII that any
layer passes on unchanged.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# printable ASCII that may stay as it is in a path, query or fragment
_KEEP = "/?#&=+;:@!$'()*,-._~%[]"
MAX_LENGTH = 2000


def safe_redirect_path(raw: str | None) -> str | None:
    """``raw`` as a same-origin path (``/q/…``, ``/account?tab=1``), or ``None`` when a browser
    could read it as anything else (``//evil.example``, ``/\\t/evil``, ``https://…``,
    ``javascript:…``) or it is empty or too long."""
    if not raw:
        return None
    path = _TAB_OR_NEWLINE.sub("", raw.strip(_C0_OR_SPACE)).replace("\\", "/")
    if not path or len(path) > MAX_LENGTH or _CONTROL.search(path):
        return None
    if not path.startswith("/") or path.startswith("//"):
        return None
    # no dot segments (browsers read %2e as a dot too): whoever collapses them, a proxy or a
    # framework, must not be able to turn /..//evil into //evil
    route = path.split("?", 1)[0].split("#", 1)[0]
    if any(seg.lower().replace("%2e", ".") in (".", "..") for seg in route.split("/")):
        return None
    return quote(path, safe=_KEEP)
