"""Turning a started session into a response: tokens in the body for API clients, an
HttpOnly cookie for browsers (which never see the token)."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.responses import Response

from qrlogin.identity.ports import StartedSession
from qrlogin.web.schemas import SessionOut, SessionUser
from qrlogin.web.security import set_cookie


def session_response(started: StartedSession, now: float) -> JSONResponse:
    """The ``SessionOut`` reply of a sign-in, with the session's cookie when it has one."""
    body = SessionOut(
        access_token=started.access_token,
        expires_in=max(0, int(started.expires_at - now)),
        refresh_token=started.refresh_token,
        user=SessionUser(id=started.user_id, display_name=started.display_name),
    )
    response = JSONResponse(body.model_dump(mode="json"))
    set_session_cookie(response, started)
    return response


def set_session_cookie(response: Response, started: StartedSession) -> None:
    """Set the new session's cookie (a browser's), if it has one."""
    cookie = started.cookie
    if cookie is not None:
        set_cookie(
            response,
            cookie.name,
            cookie.value,
            https=cookie.secure,
            max_age=cookie.max_age,
            samesite=cookie.samesite,
            path=cookie.path,
        )
