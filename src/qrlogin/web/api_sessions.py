"""Linked devices: list and revoke sessions, refresh API tokens, the signed-in page's live
stream (sign-out and new sign-in notices), and the activity log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from qrlogin.core.errors import NotFound
from qrlogin.core.useragent import describe
from qrlogin.events.port import user_channel
from qrlogin.services import Services
from qrlogin.store.records import Session
from qrlogin.web import deps
from qrlogin.web.responses import CSRF, NOT_SIGNED_IN, event_stream, merge, refusal
from qrlogin.web.schemas import (
    ActivityEntry,
    ActivityList,
    RefreshBody,
    RevokedCount,
    SessionInfo,
    SessionList,
    SessionOut,
    StreamSession,
)
from qrlogin.web.security import require_browser_header
from qrlogin.web.sessions import session_response
from qrlogin.web.sse import HEARTBEAT, EventStreamResponse, as_is, last_event_id, sse_event

router = APIRouter(prefix="/api/v1", tags=["devices"])
ERRORS = NOT_SIGNED_IN
WRITE = merge(NOT_SIGNED_IN, CSRF)  # a cookie session must send our header


async def session_info(
    svc: Services, session: Session, current_id: str, cache: dict[str, Session | None]
) -> SessionInfo:
    browser, system = describe(session.user_agent)
    linked_from = None
    if session.linked_from_session_id:
        if session.linked_from_session_id not in cache:
            cache[session.linked_from_session_id] = await svc.store.get_session(
                session.linked_from_session_id
            )
        source = cache[session.linked_from_session_id]
        linked_from = source.device_name if source else "a device since signed out"
    return SessionInfo(
        id=session.id,
        device_name=session.device_name,
        browser=browser,
        os=system,
        ip=session.ip,
        created_at=session.created_at,
        last_seen_at=session.last_seen_at,
        linked_by=session.linked_by,
        linked_from=linked_from,
        amr=list(session.methods),
        current=session.id == current_id,
    )


async def list_sessions(request: Request) -> list[SessionInfo]:
    auth = await deps.require_session(request)
    svc = deps.services(request)
    cache: dict[str, Session | None] = {}
    return [
        await session_info(svc, s, auth.session.id, cache)
        for s in await svc.store.active_sessions(auth.user.id, svc.clock.now())
    ]


@router.get("/sessions", response_model=SessionList, responses=ERRORS)
async def sessions(request: Request) -> SessionList:
    """Every device signed in to this account; ``current`` marks the caller's."""
    return SessionList(sessions=await list_sessions(request))


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


async def revoke_others_of(request: Request) -> int:
    auth = await deps.require_session(request)
    svc = deps.services(request)
    return await svc.sessions.revoke_all(
        auth.user.id, "revoked_by_user", deps.device_of(request), keep=auth.session.id
    )


@router.post("/sessions/revoke-others", response_model=RevokedCount, responses=WRITE)
async def revoke_others(request: Request) -> RevokedCount:
    """Sign out every device but this one."""
    await deps.require_session(request)  # not signed in is a 401 before any header check
    _write_check(request)
    return RevokedCount(revoked=await revoke_others_of(request))


# declared after /sessions/revoke-others: routes match in order, and {session_id} would take
# that path too (a GET there would then be told to use DELETE)
@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    responses=merge(WRITE, refusal(404, "not_found: no such device on your account")),
)
async def revoke_session(session_id: str, request: Request) -> Response:
    """Sign a device out. It is refused from its next request on, and its open pages leave."""
    await deps.require_session(request)  # not signed in is a 401 before any header check
    _write_check(request)
    await revoke_one(request, session_id)
    return Response(status_code=204)


@router.post(
    "/token/refresh",
    response_model=SessionOut,
    responses=refusal(401, "invalid_grant: unknown, expired, revoked or reused refresh token"),
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
    responses=merge(
        ERRORS,
        event_stream({"hello": StreamSession, "notice": SessionInfo, "revoked": StreamSession}),
    ),
)
async def me_events(request: Request) -> Response:
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
        sub = svc.bus.subscribe(user_channel(auth.user.id))
        try:
            while True:
                woke = await sub.wait(svc.policy.heartbeat)
                if not await svc.sessions.is_active(own):
                    yield sse_event("revoked", StreamSession(session_id=own))
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

    hello = sse_event("hello", StreamSession(session_id=own), int(since * 1000))
    return EventStreamResponse(
        stream(),
        as_is,
        first=b"retry: 3000\n" + hello,
        gauge=svc.metrics.open_streams.labels("me"),
        metrics=svc.metrics,
        route="/api/v1/me/events",
    )


@router.get("/me/activity", response_model=ActivityList, responses=ERRORS)
async def activity(request: Request) -> ActivityList:
    """Recent sign-in activity on this account, newest first."""
    auth = await deps.require_session(request)
    return ActivityList(activity=await activity_of(request, auth.user.id))


async def activity_of(request: Request, user_id: str) -> list[ActivityEntry]:
    entries = await deps.services(request).store.activity(user_id)
    out = []
    for e in entries:
        browser, system = describe(e.user_agent)
        out.append(
            ActivityEntry(
                event=e.event,
                created_at=e.created_at,
                ip=e.ip,
                browser=browser,
                os=system,
                request_id=e.request_id,
                session_id=e.session_id,
                detail=e.detail,
            )
        )
    return out
