"""What ``Client`` and ``AsyncClient`` (and their login flows) share besides the flows: their
settings, the HTTP client's options, and the login request's readings and QR code."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import httpx

from qrlogin.client import qr
from qrlogin.client.account import Account
from qrlogin.client.login import LoginMachine
from qrlogin.client.state import LoginState
from qrlogin.client.steps import Call
from qrlogin.client.storage import TokenStore, default_store, normalize_url

#: Connect, write and pool timeouts; reads get their own per call (streams wait longer).
TIMEOUT = httpx.Timeout(15.0)
NO_CONFIRM_CODE = "This server asks for the confirm code: pass confirm_code= to wait()."
_SYSTEMS = {"Darwin": "Macintosh; Mac OS X", "Windows": "Windows", "Linux": "Linux"}


def user_agent() -> str:
    """Names the OS the way browsers do, so the approval screen can say "Python on Linux"."""
    system = _SYSTEMS.get(platform.system(), platform.system() or "unknown")
    # the installed distribution's version: importing ``qrlogin`` itself would make the
    # import graph reach the server through its lazy attributes
    try:
        version = metadata.version("qrlogin")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"qrlogin/{version} ({system}) python-httpx/{httpx.__version__}"


def http_options(server_url: str) -> dict[str, Any]:
    return {
        "base_url": normalize_url(server_url),
        "timeout": TIMEOUT,
        "headers": {"user-agent": user_agent()},
        "follow_redirects": False,
    }


def build(http: httpx.Client | httpx.AsyncClient, call: Call, read: float | None) -> httpx.Request:
    timeout = (
        TIMEOUT
        if read is None and call.timeout is None
        else httpx.Timeout(15.0, read=read if read is not None else call.timeout)
    )
    return http.build_request(
        call.method,
        call.path,
        json=call.json,
        params=call.params,
        headers=call.headers,
        timeout=timeout,
    )


def is_event_stream(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.headers.get("content-type", "").startswith(
        "text/event-stream"
    )


class ClientBase:
    def __init__(self, server_url: str, store: TokenStore | None) -> None:
        self.server_url = normalize_url(server_url)
        self.store = store if store is not None else default_store()
        self.account = Account(self.server_url, self.store)


class LoginFlowBase:
    """A login request this device started: what to show, and its latest state."""

    def __init__(self, server_url: str, machine: LoginMachine, account: Account) -> None:
        self.server_url = server_url
        self.machine = machine
        self.account = account

    @property
    def id(self) -> str:
        return self.machine.id

    @property
    def state(self) -> LoginState:
        return self.machine.state

    @property
    def qr_url(self) -> str | None:
        """What the QR encodes; changes as the code rotates (every 30 s); ``None`` once
        scanned."""
        return self.machine.state.qr_url

    @property
    def user_code(self) -> str | None:
        """The code to type on a device without a camera, at ``link_url``."""
        return self.machine.state.user_code

    @property
    def link_url(self) -> str:
        return f"{self.server_url}/link"

    @property
    def expires_at(self) -> float:
        return self.machine.state.expires_at

    def _url(self) -> str:
        if self.qr_url is None:
            raise ValueError("This login request has no QR code any more (it was scanned).")
        return self.qr_url

    def qr_text(self) -> list[str]:
        """The QR drawn with half blocks, one string per terminal line (with colours)."""
        return qr.text(self._url())

    def qr_svg(self, scale: int = 4) -> str:
        return qr.svg(self._url(), scale)

    def qr_png(self, scale: int = 8) -> bytes:
        return qr.png(self._url(), scale)
