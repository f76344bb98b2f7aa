"""Flows of a signed-in device: its session (refreshed before it expires), who it is, signing
out, and approving other devices (scan a QR's handle or type a user code, then approve/deny)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from qrlogin.client.calls import bearer, body_of, request
from qrlogin.client.errors import InvalidGrant, NotSignedIn
from qrlogin.client.state import Session
from qrlogin.client.steps import Call, Flow
from qrlogin.client.storage import TokenStore, normalize_url

#: Refresh when the access token has less than this left, so a call never races its expiry.
REFRESH_MARGIN = 60.0


class Account:
    """The session kept for one server, and the calls made with it."""

    def __init__(
        self, server_url: str, store: TokenStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.server_url = normalize_url(server_url)
        self.store = store
        self._clock = clock

    def saved(self, session: Session) -> Session:
        self.store.save(session)
        return session

    def session(self) -> Flow[Session]:
        """The stored session, refreshed first when its access token is about to expire."""
        session = self.store.load(self.server_url)
        if session is None:
            raise NotSignedIn(
                f"Not signed in to {self.server_url}. Run: qrlogin login --server {self.server_url}"
            )
        if session.refresh_token and session.expires_within(REFRESH_MARGIN, self._clock()):
            session = yield from self.refresh(session)
        return session

    def refresh(self, session: Session) -> Flow[Session]:
        """New access and refresh tokens. The new refresh token is stored before anything
        else uses it; a retry after a lost reply reuses the old one, which the server answers
        the same within its retry window. Refused (``InvalidGrant``): the entry is forgotten."""
        call = Call("POST", "/api/v1/token/refresh", json={"refresh_token": session.refresh_token})
        response = yield from request(call)
        try:
            body = body_of(response)
        except InvalidGrant:
            self.store.delete(self.server_url)
            raise
        return self.saved(Session.from_reply(self.server_url, body, self._clock()))

    def call(self, method: str, path: str, json: Any = None) -> Flow[dict[str, Any]]:
        session = yield from self.session()
        response = yield from request(
            Call(method, path, json=json, headers=bearer(session.access_token))
        )
        return body_of(response)

    def me(self) -> Flow[dict[str, Any]]:
        """``GET /api/v1/me``: ``{"user": {...}, "session_id", "expires_at"}``."""
        return (yield from self.call("GET", "/api/v1/me"))

    def logout(self) -> Flow[None]:
        """Revoke the session on the server, then forget it (also when the server already
        had: it is of no use any more)."""
        try:
            yield from self.call("POST", "/api/v1/logout")
        except (NotSignedIn, InvalidGrant):
            pass
        finally:
            self.store.delete(self.server_url)

    def scan(self, handle: str) -> Flow[dict[str, Any]]:
        """What the approval screen shows for a QR's handle (marks the request scanned)."""
        return (yield from self.call("GET", f"/api/v1/scan/{handle}"))

    def link(self, user_code: str) -> Flow[dict[str, Any]]:
        """The same, for the user code a camera-less requester shows."""
        return (yield from self.call("POST", "/api/v1/link", json={"user_code": user_code}))

    def approve(self, handle: str) -> Flow[dict[str, Any]]:
        """``{"status": "approved", "confirm_code": "482913" | None}``."""
        return (yield from self.call("POST", f"/api/v1/scan/{handle}/approve"))

    def deny(self, handle: str) -> Flow[dict[str, Any]]:
        return (yield from self.call("POST", f"/api/v1/scan/{handle}/deny"))
