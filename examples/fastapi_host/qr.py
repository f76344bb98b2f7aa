"""The host's side of qrlogin: its adapters of the two identity ports.

qrlogin asks ``HostApprovers`` who is signed in on the phone that scanned the QR code (from
the host's own cookie, nothing else), and asks ``HostSessions`` to sign the new device in
once its exchange has won. Both only call the host's own store.
"""

from __future__ import annotations

from examples.fastapi_host.store import SESSION_LIFETIME, HostStore
from qrlogin.core.errors import AccessDenied
from qrlogin.identity.ports import Cookie, HttpRequest, SessionGrant, SignedIn, StartedSession

COOKIE = "host_session"


# -- docs/embedding.md shows this part -------------------------------------------------------
class HostApprovers:
    """ApproverIdentity: the approver is whoever this request's own host session is."""

    def __init__(self, store: HostStore) -> None:
        self.store = store

    async def signed_in(self, request: HttpRequest) -> SignedIn | None:
        # a browser sends the cookie; an app or CLI signed in by QR sends its token
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = self.store.session_of(
            token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
        )
        if found is None:
            return None
        session, user = found
        return SignedIn(user.id, user.display_name, session.id, device_name=session.device_name)

    async def session_is_live(self, user_id: str, session_id: str) -> bool:
        return self.store.is_live(session_id, user_id)


class HostSessions:
    """SessionStarter: a NEW host session for the device that asked, never the approver's."""

    def __init__(self, store: HostStore, *, https: bool) -> None:
        self.store, self.https = store, https

    async def start_session(self, grant: SessionGrant) -> StartedSession:
        user = self.store.user(grant.user_id)
        if user is None:  # deleted since it approved
            raise AccessDenied()
        token, session = self.store.start_session(
            user.id,
            device_name=grant.device.name,
            user_agent=grant.device.user_agent,
            ip=grant.device.ip,
            signed_in_with=grant.linked_by,
            linked_from=grant.approver_session_id,
            login_request_id=grant.login_request_id,
        )
        if grant.api:  # a command-line or app requester holds the token itself
            return StartedSession(
                user.id, user.display_name, session.id, session.expires_at, access_token=token
            )
        return StartedSession(
            user.id,
            user.display_name,
            session.id,
            session.expires_at,
            cookie=Cookie(COOKIE, token, SESSION_LIFETIME, "/", secure=self.https),
        )


# -- end of the part docs/embedding.md shows -------------------------------------------------
