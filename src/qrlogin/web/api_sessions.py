"""Linked devices: list and revoke sessions, refresh API tokens, the signed-in page's live
stream (sign-out and new sign-in notices), and the activity log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from qrlogin.core.errors import NotFound
from qrlogin.core.useragent import describe
from qrlogin.events.port import user_channel
from qrlogin.services import Services
from qrlogin.store.records import Session
from qrlogin.web import deps
from qrlogin.web.schemas import (
    ActivityList,
    ErrorBody,
    RefreshBody,
    RevokedCount,
    SessionList,
    SessionOut,
)
from qrlogin.web.security import require_browser_header
from qrlogin.web.sessions import session_response
from qrlogin.web.sse import HEARTBEAT, counted, last_event_id, sse_event, sse_response

router = APIRouter(prefix="/api/v1", tags=["devices"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in."}
}


async def session_info(
    svc: Services, session: Session, current_id: str, cache: dict[str, Session | None]
) -> dict[str, Any]:
    browser, system = describe(session.user_agent)
    linked_from = None
    if session.linked_from_session_id:
        if session.linked_from_session_id not in cache:
            cache[session.linked_from_session_id] = await svc.store.get_session(
                session.linked_from_session_id
            )
        source = cache[session.linked_from_session_id]
        linked_from = source.device_name if source else "a device since signed out"
    return {
        "id": session.id,
        "device_name": session.device_name,
        "browser": browser,
        "os": system,
        "ip": session.ip,
        "created_at": session.created_at,
        "last_seen_at": session.last_seen_at,
        "linked_by": session.linked_by,
        "linked_from": linked_from,
        "current": session.id == current_id,
    }


async def list_sessions(request: Request) -> list[dict[str, Any]]:
    auth = await deps.require_session(request)
    svc = deps.services(request)
    cache: dict[str, Session | None] = {}
    return [
        await session_info(svc, s, auth.session.id, cache)
        for s in await svc.store.active_sessions(auth.user.id, svc.clock.now())
    ]


@router.get("/sessions", response_model=SessionList, responses=ERRORS)
async def sessions(request: Request) -> dict[str, Any]:
    """Every device signed in to this account; ``current`` marks the caller's."""
    return {"sessions": await list_sessions(request)}


def _write_check(request: Request) -> None:
    if deps.used_cookie_session(request):
        require_browser_header(request)


async def revoke_one(request: Request, session_id: str) -> None:
    auth = await deps.require_session(request)
    svc = deps.services(request)
    target = await svc.store.get_session(session_id)
    if target is None or target.user_id != auth.user.id:
        raise NotFound("No such device on your account. Reload the list.")
    await svc.sessions.revoke(target, "revoked_by_user", deps.device_of(request))


@router.delete(
    "/sessions/{session_id}", status_code=204, responses={**ERRORS, 404: {"model": ErrorBody}}
)
async def revoke_session(session_id: str, request: Request) -> Response:
    """Sign a device out. It is refused from its next request on, and its open pages leave."""
    _write_check(request)
    await revoke_one(request, session_id)
    return Response(status_code=204)


async def revoke_others_of(request: Request) -> int:
    auth = await deps.require_session(request)
    svc = deps.services(request)
    return await svc.sessions.revoke_all(
        auth.user.id, "revoked_by_user", deps.device_of(request), keep=auth.session.id
    )


@router.post("/sessions/revoke-others", response_model=RevokedCount, responses=ERRORS)
async def revoke_others(request: Request) -> dict[str, int]:
    """Sign out every device but this one."""
    _write_check(request)
    return {"revoked": await revoke_others_of(request)}


@router.post(
    "/token/refresh",
    response_model=SessionOut,
    responses={401: {"model": ErrorBody, "description": "invalid_grant"}},
)
async def refresh(body: RefreshBody, request: Request) -> Response:
    """Trade a refresh token for a new access token and a new refresh token. The old refresh
    token answers the same once more within 10 s (a retry); after that, reusing it signs the
    whole chain out."""
    svc = deps.services(request)
    issued = await svc.sessions.refresh(body.refresh_token, deps.device_of(request))
    return session_response(svc.identity.started(issued, browser=False), svc.clock.now())


@router.get(
    "/me/events",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def me_events(request: Request) -> StreamingResponse:
    """A signed-in page's stream: ``event: notice`` when another device signs in to the
    account, ``event: revoked`` (then the end) when this session is signed out."""
    auth = await deps.require_session(request)
    svc = deps.services(request)
    own = auth.session.id
    last_id = last_event_id(request.headers.get("last-event-id"))
    since = last_id / 1000 if last_id is not None else svc.clock.now()

    async def stream() -> AsyncIterator[bytes]:
        nonlocal since
        seen: set[str] = {own}
        cache: dict[str, Session | None] = {}
        yield b"retry: 3000\n" + sse_event("hello", {"session_id": own}, int(since * 1000))
        sub = svc.bus.subscribe(user_channel(auth.user.id))
        try:
            while True:
                woke = await sub.wait(svc.policy.heartbeat)
                if not await svc.sessions.is_active(own):
                    yield sse_event("revoked", {"session_id": own})
                    return
                if not woke:
                    yield HEARTBEAT
                    continue
                for new in await svc.store.sessions_created_since(auth.user.id, since):
                    if new.id in seen:
                        continue
                    seen.add(new.id)
                    info = await session_info(svc, new, own, cache)
                    yield sse_event("notice", info, int(new.created_at * 1000))
        finally:
            sub.close()

    return sse_response(counted(svc.metrics.open_streams.labels("me"), stream()))


@router.get("/me/activity", response_model=ActivityList, responses=ERRORS)
async def activity(request: Request) -> dict[str, Any]:
    """Recent sign-in activity on this account, newest first."""
    auth = await deps.require_session(request)
    return {"activity": await activity_of(request, auth.user.id)}


async def activity_of(request: Request, user_id: str) -> list[dict[str, Any]]:
    entries = await deps.services(request).store.activity(user_id)
    out = []
    for e in entries:
        browser, system = describe(e.user_agent)
        out.append(
            {
                "event": e.event,
                "created_at": e.created_at,
                "ip": e.ip,
                "browser": browser,
                "os": system,
                "request_id": e.request_id,
                "session_id": e.session_id,
                "detail": e.detail,
            }
        )
    return out
