"""Login requests: create, read (with handle rotation), scan, approve, deny, cancel, exchange."""

from __future__ import annotations

from qrlogin.handshake.approver import ApproverFlows
from qrlogin.handshake.base import ApproverView, Created
from qrlogin.handshake.requester import RequesterFlows

__all__ = ["ApproverView", "Created", "LoginRequests"]


class LoginRequests(RequesterFlows, ApproverFlows):
    """Both sides of the handshake on one object."""
