"""Approver API: look at a scanned request, approve or deny it."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from qrlogin.handshake.service import ApproverView, LoginRequests
from qrlogin.handshake.views import ApproverState
from qrlogin.handshake.watch import Watch
from qrlogin.store.records import LoginRequest
from qrlogin.web import deps
from qrlogin.web.lean import hot
from qrlogin.web.responses import CSRF, NOT_SIGNED_IN, RATE_LIMITED, event_stream, merge, refusal
from qrlogin.web.schemas import DecisionOut, LinkBody, ScanOut
from qrlogin.web.security import require_browser_header
from qrlogin.web.sse import HEARTBEAT, EventStreamResponse, sse_event

router = APIRouter(prefix="/api/v1/scan", tags=["approver"])
ERRORS = merge(
    NOT_SIGNED_IN,
    refusal(404, "invalid_handle: unknown, expired or already-claimed handle"),
)
DECIDE = merge(ERRORS, CSRF)  # a cookie session must send our header
APPROVE = merge(
    DECIDE,
    refusal(
        403,
        "step_up_required: the account has a second factor and this session has not proved it "
        "lately (QRLOGIN_APPROVE_STEP_UP); `methods` says which to use: verify with "
        "POST /api/v1/me/verify (TOTP) or /api/v1/me/verify/passkey, then approve again",
    ),
)


def scan_body(request: Request, view: ApproverView) -> ScanOut:
    """The approval screen's data: the same model for the API and the page."""
    lr = deps.services(request).login_requests
    return ScanOut(
        request=lr.describe_requester(view.request, deps.ip_of(request)),
        status=view.status.value,
        handle=view.handle,
        confirm_code=view.confirm_code,
    )


@router.get("/{handle}", response_model=ScanOut, responses=ERRORS)
@hot
async def scan(handle: str, request: Request) -> ScanOut:
    """What the approval screen shows. Marks the request scanned (idempotent) and tells the
    requester; it never approves by itself."""
    approver = await deps.require_approver(request)
    view = await deps.services(request).login_requests.scan(handle, approver)
    return scan_body(request, view)


@router.get(
    "/{handle}/events",
    response_class=StreamingResponse,
    responses=merge(ERRORS, event_stream({"state": ApproverState})),
)
async def scan_events(handle: str, request: Request) -> Response:
    """The approver's stream of a request its session claimed: ``event: state`` with
    ``{status, reason, version}`` now and at every change (consumed, cancelled, denied,
    expired), a heartbeat at least every 15 s, and the end after a final state. What the
    approval page follows after Approve or Deny; anyone else gets the reply of an unknown
    handle."""
    approver = await deps.require_approver(request)
    svc = deps.services(request)
    lr = svc.login_requests
    rec = (await lr.for_approver(handle, approver)).request
    first = b"retry: 3000\n" + sse_event("state", lr.approver_state(rec), rec.version)
    return EventStreamResponse(
        Watch(lr, rec, heartbeat=svc.policy.heartbeat),
        partial(_approver_event, lr),
        first=first,
        gauge=svc.metrics.open_streams.labels("scan"),
        metrics=svc.metrics,
        route="/api/v1/scan/{handle}/events",
    )


def _approver_event(lr: LoginRequests, changed: LoginRequest | None) -> bytes:
    if changed is None:
        return HEARTBEAT
    return sse_event("state", lr.approver_state(changed), changed.version)


async def _decide(request: Request, handle: str, approve: bool) -> DecisionOut:
    approver = await deps.require_approver(request)
    if deps.used_cookie_session(request):
        require_browser_header(request)
    lr = deps.services(request).login_requests
    view = await (lr.approve(handle, approver) if approve else lr.deny(handle, approver))
    return DecisionOut(status=view.status.value, confirm_code=view.confirm_code)


@router.post("/{handle}/approve", response_model=DecisionOut, responses=APPROVE)
@hot
async def approve(handle: str, request: Request) -> DecisionOut:
    """Approve. Under the ``code`` confirm policy the reply holds the confirm code to type on
    the requester. Any ids in the body are ignored: the approver is who its session says."""
    return await _decide(request, handle, True)


@router.post("/{handle}/deny", response_model=DecisionOut, responses=DECIDE)
@hot
async def deny(handle: str, request: Request) -> DecisionOut:
    return await _decide(request, handle, False)


link_router = APIRouter(prefix="/api/v1", tags=["approver"])


@link_router.post(
    "/link",
    response_model=ScanOut,
    responses=merge(
        refusal(400, "invalid_code: one reply for every wrong, unknown or used code"),
        NOT_SIGNED_IN,
        CSRF,
        RATE_LIMITED,
    ),
)
@hot
async def link(body: LinkBody, request: Request) -> ScanOut:
    """The approver types the user code a camera-less requester shows (RFC 8628 §3.3). The
    reply is the approval screen's data, handle included; approve or deny by that handle."""
    approver = await deps.require_approver(request)
    if deps.used_cookie_session(request):
        require_browser_header(request)
    view = await deps.services(request).login_requests.link(body.user_code, approver)
    return scan_body(request, view)
