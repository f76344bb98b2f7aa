"""Approver API: look at a scanned request, approve or deny it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from qrlogin.handshake.service import ApproverView
from qrlogin.web import deps
from qrlogin.web.responses import CSRF, NOT_SIGNED_IN, RATE_LIMITED, merge, refusal
from qrlogin.web.schemas import DecisionOut, LinkBody, ScanOut
from qrlogin.web.security import require_browser_header

router = APIRouter(prefix="/api/v1/scan", tags=["approver"])
ERRORS = merge(
    NOT_SIGNED_IN,
    refusal(404, "invalid_handle: unknown, expired or already-claimed handle"),
)
DECIDE = merge(ERRORS, CSRF)  # a cookie session must send our header


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
async def scan(handle: str, request: Request) -> ScanOut:
    """What the approval screen shows. Marks the request scanned (idempotent) and tells the
    requester; it never approves by itself."""
    approver = await deps.require_approver(request)
    view = await deps.services(request).login_requests.scan(handle, approver)
    return scan_body(request, view)


async def _decide(request: Request, handle: str, approve: bool) -> DecisionOut:
    approver = await deps.require_approver(request)
    if deps.used_cookie_session(request):
        require_browser_header(request)
    lr = deps.services(request).login_requests
    view = await (lr.approve(handle, approver) if approve else lr.deny(handle, approver))
    return DecisionOut(status=view.status.value, confirm_code=view.confirm_code)


@router.post("/{handle}/approve", response_model=DecisionOut, responses=DECIDE)
async def approve(handle: str, request: Request) -> DecisionOut:
    """Approve. Under the ``code`` confirm policy the reply holds the confirm code to type on
    the requester. Any ids in the body are ignored: the approver is who its session says."""
    return await _decide(request, handle, True)


@router.post("/{handle}/deny", response_model=DecisionOut, responses=DECIDE)
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
async def link(body: LinkBody, request: Request) -> ScanOut:
    """The approver types the user code a camera-less requester shows (RFC 8628 §3.3). The
    reply is the approval screen's data, handle included; approve or deny by that handle."""
    approver = await deps.require_approver(request)
    if deps.used_cookie_session(request):
        require_browser_header(request)
    view = await deps.services(request).login_requests.link(body.user_code, approver)
    return scan_body(request, view)
