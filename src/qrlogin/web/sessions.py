"""Turning an issued session into a response: token in the body for API clients, an HttpOnly
cookie for browsers (which never see the token)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from qrlogin.sessions.service import IssuedSession
from qrlogin.web import deps
from qrlogin.web.schemas import SessionOut, SessionUser
from qrlogin.web.security import set_cookie


def session_response(request: Request, issued: IssuedSession, *, browser: bool) -> JSONResponse:
    svc = deps.services(request)
    ends = issued.session.access_expires_at or issued.session.expires_at
    expires_in = max(0, int(ends - svc.clock.now()))
    body = SessionOut(
        access_token=None if browser else issued.token,
        expires_in=expires_in,
        refresh_token=issued.refresh_token,
        user=SessionUser(id=issued.user.id, display_name=issued.user.display_name),
    )
    response = JSONResponse(body.model_dump(mode="json"))
    if browser:
        set_session_cookie(request, response, issued)
    return response


def set_session_cookie(request: Request, response: Response, issued: IssuedSession) -> None:
    svc = deps.services(request)
    set_cookie(
        response,
        deps.cookie_names(request).session,
        issued.token,
        https=svc.settings.https,
        max_age=max(0, int(issued.session.expires_at - svc.clock.now())),
    )
