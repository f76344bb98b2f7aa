"""qrlogin's built-in sessions as the adapter of both identity ports (``identity/ports.py``).

The approver is whoever the request's own session token says (``Authorization: Bearer`` or
the session cookie); the requester gets a new session of its own, with a refresh token for
API clients and an HttpOnly cookie for browsers.
"""

from __future__ import annotations

from qrlogin.core.errors import AccessDenied
from qrlogin.identity.ports import (
    Cookie,
    HttpRequest,
    SessionGrant,
    SignedIn,
    StartedSession,
)
from qrlogin.sessions.service import IssuedSession, SessionService, session_entry
from qrlogin.store.records import NewSessionRows


def bearer_token(headers: HttpRequest) -> str | None:
    """The token of ``Authorization: Bearer <token>``, if the request has one."""
    scheme, _, value = headers.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class BuiltinIdentity:
    """``ApproverIdentity`` and ``SessionStarter`` on qrlogin's own users and sessions."""

    def __init__(
        self, sessions: SessionService, *, cookie_name: str, cookie_path: str, https: bool
    ) -> None:
        self.sessions = sessions
        self.cookie_name = cookie_name
        self.cookie_path = cookie_path
        self.https = https

    async def signed_in(self, request: HttpRequest) -> SignedIn | None:
        token = bearer_token(request) or request.cookies.get(self.cookie_name)
        auth = await self.sessions.authenticate(token)
        if auth is None:
            return None
        return SignedIn(
            auth.user.id, auth.user.display_name, auth.session.id, auth.session.device_name
        )

    async def session_is_live(self, user_id: str, session_id: str) -> bool:
        return await self.sessions.is_active(session_id, user_id)

    async def prepare_session(self, grant: SessionGrant) -> tuple[NewSessionRows, StartedSession]:
        svc = self.sessions
        user = await svc.store.get_user(grant.user_id)
        if user is None:  # the account is gone since it approved
            raise AccessDenied()
        token, session = svc.new_session(
            user,
            grant.device,
            grant.linked_by,
            linked_from_session_id=grant.approver_session_id,
            login_request_id=grant.login_request_id,
            api=grant.api,
            client_id=grant.client_id,
            scope=grant.scope,
            amr=grant.amr,
        )
        audit = session_entry("session.created", session, svc.clock.now(), grant.device)
        issued, refresh = svc.with_refresh_token(IssuedSession(token, session, user))
        return NewSessionRows(session, refresh, audit), self.started(issued, browser=not grant.api)

    async def session_started(
        self, grant: SessionGrant, started: StartedSession, rows: NewSessionRows
    ) -> None:
        svc = self.sessions
        linked_from = None
        if grant.approver_session_id is not None:
            linked_from = await svc.store.get_session(grant.approver_session_id)
        # a device linked from another one is mailed about; a first sign-in by email is not
        await svc.announce(started.user_id, rows.session, linked_from, mail=linked_from is not None)

    async def start_session(self, grant: SessionGrant) -> StartedSession:
        rows, started = await self.prepare_session(grant)
        await self.sessions.store.insert_session(rows.session, rows.audit, rows.refresh)
        await self.session_started(grant, started, rows)
        return started

    def started(self, issued: IssuedSession, *, browser: bool) -> StartedSession:
        """An issued built-in session as a reply carries it: for a browser, the token goes
        into an HttpOnly cookie only; an API client gets it (and its refresh token)."""
        session = issued.session
        cookie = None
        if browser:
            max_age = max(0, int(session.expires_at - self.sessions.clock.now()))
            cookie = Cookie(
                self.cookie_name, issued.token, max_age, self.cookie_path, secure=self.https
            )
        return StartedSession(
            user_id=issued.user.id,
            display_name=issued.user.display_name,
            session_id=session.id,
            expires_at=session.access_expires_at or session.expires_at,
            access_token=None if cookie else issued.token,
            refresh_token=issued.refresh_token,
            cookie=cookie,
        )
