"""Helpers for the TOTP tests (test_api_totp.py, test_pages_second_factor.py): an account
with TOTP on, and the email step of a new device's sign-in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
from web_support import BROWSER, Site, code_in

START = "/api/v1/auth/email/start"
VERIFY = "/api/v1/auth/email/verify"
SECOND = "/api/v1/auth/second-factor"
STEP = 30


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"], body
    return response.status_code, str(body["error"])


@dataclass
class Account:
    """A person with TOTP on, and the device (a browser, by cookie) that set it up."""

    email: str
    user_id: str
    device: httpx.AsyncClient
    secret: str
    recovery_codes: list[str]

    def code(self, site: Site, steps: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(site.clock.now() + steps * STEP)


def latest_code(site: Site, email: str) -> str:
    """The newest sign-in code mailed to ``email`` (factor notices go there too)."""
    return code_in(next(m for m in site.outbox if m.to == email and "sign-in code" in m.text))


async def enrolled(site: Site) -> Account:
    """Sign a browser in, set up TOTP there; the clock moves past the enrolment's step."""
    me = await site.sign_in(kind="browser")
    begun = await me.client.post("/api/v1/me/totp", headers=BROWSER)
    assert begun.status_code == 201, begun.text
    enrolment = begun.json()
    assert set(enrolment) == {"secret", "otpauth_uri", "qr_svg"}
    assert (
        enrolment["qr_svg"].startswith("<svg")
        and 'xmlns="http://www.w3.org/2000/svg"' in (enrolment["qr_svg"])
    )
    assert pyotp.parse_uri(enrolment["otpauth_uri"]).secret == enrolment["secret"]
    code = pyotp.TOTP(enrolment["secret"]).at(site.clock.now())
    verified = await me.client.post("/api/v1/me/totp/verify", json={"code": code}, headers=BROWSER)
    assert verified.status_code == 200, verified.text
    site.clock.advance(10 * STEP)
    codes = verified.json()["recovery_codes"]
    return Account(me.email, me.user["id"], me.client, enrolment["secret"], codes)


async def email_step(
    site: Site, email: str, *, kind: str = "api", client: httpx.AsyncClient | None = None
) -> tuple[httpx.AsyncClient, httpx.Response]:
    """A new device (or ``client``) does the email code step of signing in."""
    client = client or site.client()
    started = await client.post(START, json={"email": email})
    assert started.status_code == 202, started.text
    headers = BROWSER if kind == "browser" else {}
    body = {"email": email, "code": latest_code(site, email)}
    return client, await client.post(VERIFY, json=body, headers=headers)


async def mfa_token(site: Site, email: str, **kw: Any) -> tuple[httpx.AsyncClient, str]:
    client, response = await email_step(site, email, **kw)
    assert error_of(response) == (401, "second_factor_required")
    return client, str(response.json()["mfa_token"])
