"""``/docs``: the interactive API documentation (Swagger UI), under a policy of its own.

Swagger UI's script and stylesheet come from the jsDelivr CDN (as FastAPI serves them); the
page starts it with one inline script. Instead of ``'unsafe-inline'`` this page's
Content-Security-Policy allows exactly that script by its SHA-256 (CSP Level 2 hash source),
and the CDN only for this one path; every other response gets the site's policy
(``security.CSP``). docs/security.md says so too.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
PATH = "/docs"
CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_csp(html: str) -> str:
    """The policy for the docs page ``html``: its inline scripts by hash, the CDN, no more."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
        f"style-src 'self' {CDN}; script-src 'self' {CDN} {hashes}; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


@router.get(PATH)
async def docs(request: Request) -> HTMLResponse:
    root_path = request.scope.get("root_path", "").rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=f"{root_path}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
    )
    html = bytes(page.body).decode()
    return HTMLResponse(html, headers={"content-security-policy": docs_csp(html)})
