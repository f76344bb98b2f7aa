"""Approver API: look at a scanned request, approve or deny it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from qrlogin.handshake.service import ApproverView
from qrlogin.handshake.watch import changes
from qrlogin.web import deps
from qrlogin.web.schemas import DecisionOut, ErrorBody, LinkBody, ScanOut
from qrlogin.web.security import require_browser_header
from qrlogin.web.sse import HEARTBEAT, counted, sse_event, sse_response

router = APIRouter(prefix="/api/v1/scan", tags=["approver"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    404: {"model": ErrorBody, "description": "Unknown, expired or already-claimed handle."},
}


def scan_body(request: Request, view: ApproverView) -> dict[str, Any]:
    lr = deps.services(request).login_requests
    return {
        "request": lr.describe_requester(view.request, deps.ip_of(request)),
        "status": view.status.value,
        "handle": view.handle,
        "confirm_code": view.confirm_code,
    }


@router.get("/{handle}", response_model=ScanOut, responses=ERRORS)
async def scan(handle: str, request: Request) -> dict[str, Any]:
    """What the approval screen shows. Marks the request scanned (idempotent) and tells the
    requester; it never approves by itself."""
    approver = await deps.require_approver(request)
    view = await deps.services(request).login_requests.scan(handle, approver)
    return scan_body(request, view)


@router.get(
    "/{handle}/events",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def scan_events(handle: str, request: Request) -> StreamingResponse:
    """The approver's stream of a request its session claimed: ``event: state`` with
    ``{status, reason, version}`` now and at every change (consumed, cancelled, denied,
    expired), a heartbeat at least every 15 s, and the end after a final state. What the
    approval page follows after Approve or Deny; anyone else gets the reply of an unknown
    handle."""
    approver = await deps.require_approver(request)
    svc = deps.services(request)
    lr = svc.login_requests
    rec = (await lr.for_approver(handle, approver)).request

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n" + sse_event("state", lr.approver_state(rec), rec.version)
        async for changed in changes(lr, rec, heartbeat=svc.policy.heartbeat):
            if changed is None:
                yield HEARTBEAT
            else:
                yield sse_event("state", lr.approver_state(changed), changed.version)

    return sse_response(counted(svc.metrics.open_streams.labels("scan"), stream()))


async def _decide(request: Request, handle: str, approve: bool) -> dict[str, Any]:
    approver = await deps.require_approver(request)
    if deps.used_cookie_session(request):
        require_browser_header(request)
    lr = deps.services(request).login_requests
    view = await (lr.approve(handle, approver) if approve else lr.deny(handle, approver))
    return {"status": view.status.value, "confirm_code": view.confirm_code}


@router.post("/{handle}/approve", response_model=DecisionOut, responses=ERRORS)
async def approve(handle: str, request: Request) -> dict[str, Any]:
    """Approve. Under the ``code`` confirm policy the reply holds the confirm code to type on
    the requester. Any ids in the body are ignored: the approver is who its session says."""
    return await _decide(request, handle, True)


@router.post("/{handle}/deny", response_model=DecisionOut, responses=ERRORS)
async def deny(handle: str, request: Request) -> dict[str, Any]:
    return await _decide(request, handle, False)


link_router = APIRouter(prefix="/api/v1", tags=["approver"])


@link_router.post(
    "/link",
    response_model=ScanOut,
    responses={
        **ERRORS,
        400: {"model": ErrorBody, "description": "invalid_code: one reply for every bad code"},
        429: {"model": ErrorBody, "description": "rate_limited or account_locked"},
    },
)
async def link(body: LinkBody, request: Request) -> dict[str, Any]:
    """The approver types the user code a camera-less requester shows (RFC 8628 §3.3). The
    reply is the approval screen's data, handle included; approve or deny by that handle."""
    approver = await deps.require_approver(request)
    if deps.used_cookie_session(request):
        require_browser_header(request)
    view = await deps.services(request).login_requests.link(body.user_code, approver)
    return scan_body(request, view)
