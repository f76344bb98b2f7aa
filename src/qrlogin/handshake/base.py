"""What requester and approver flows share: wiring, derived values, events, audit rows."""

from __future__ import annotations

from dataclasses import dataclass

from qrlogin.core import codes
from qrlogin.core.clock import Clock
from qrlogin.core.machine import Action, Status
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import (
    code_hmac,
    derive_handle,
)
from qrlogin.events.port import EventBus, login_request_channel
from qrlogin.identity.device import Device
from qrlogin.identity.ports import (
    Approver,
    ApproverIdentity,
    CodeFailures,
    SessionStarter,
    StepUp,
)
from qrlogin.limiter import RateLimiter
from qrlogin.store.ports import LoginRequestStore
from qrlogin.store.records import AuditEntry, LoginRequest

USER_CODE_SCOPE = "user_code"  # user codes identify the request, so they cannot be scoped to it


@dataclass(frozen=True)
class Created:
    request: LoginRequest
    secret: str


@dataclass(frozen=True)
class ApproverView:
    """What the approval screen shows, and the confirm code once approved."""

    request: LoginRequest
    status: Status
    handle: str
    confirm_code: str | None


class LoginRequestsBase:
    """The handshake's wiring. It knows users and sessions only through the identity ports:
    ``approvers`` says who is signed in on an approving device and whether that session is
    still live, ``sessions`` starts the requester's session, and ``failures`` (optional)
    counts wrong codes per account."""

    def __init__(
        self,
        store: LoginRequestStore,
        bus: EventBus,
        approvers: ApproverIdentity,
        sessions: SessionStarter,
        clock: Clock,
        policy: Policy,
        key: bytes,
        *,
        public_url: str,
        confirm: str,
        user_code_format: codes.UserCodeFormat,
        limiter: RateLimiter,
        failures: CodeFailures | None = None,
        step_up: StepUp | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.approvers = approvers
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        self.key = key
        self.public_url = public_url
        self.confirm = confirm
        self.user_code_format: codes.UserCodeFormat = user_code_format
        self.limiter = limiter
        self.failures = failures
        self.step_up = step_up

    # -- derived values --------------------------------------------------------------------

    def slot_at(self, rec: LoginRequest, now: float) -> int:
        """Which 30 s rotation slot of the request ``now`` falls in (slot 0 starts when it is
        created): the QR shows that slot's handle."""
        return max(0, int((now - rec.created_at) // self.policy.handle_rotation))

    def slot_ends_at(self, rec: LoginRequest, slot: int) -> float:
        return rec.created_at + (slot + 1) * self.policy.handle_rotation

    def current_slot(self, rec: LoginRequest) -> int:
        """The slot whose handle is the request's handle now: while it waits for a scan, the
        clock's; once claimed, the one it was claimed in (``handle_seq``), for good."""
        if rec.status == Status.PENDING.value:
            return self.slot_at(rec, self.clock.now())
        return rec.handle_seq

    def valid_slots(self, rec: LoginRequest, now: float) -> list[int]:
        """The slots whose handle reaches the request at ``now``: while pending, the current
        one and, for the grace after a rotation, the one before (a scan in flight still
        lands); once claimed, only the claimed one."""
        if rec.status != Status.PENDING.value:
            return [rec.handle_seq]
        slot = self.slot_at(rec, now)
        slots = [slot]
        if slot > 0 and now < self.slot_ends_at(rec, slot - 1) + self.policy.handle_grace:
            slots.append(slot - 1)
        return slots

    def handle(self, rec: LoginRequest) -> str:
        return derive_handle(self.key, rec.id, self.current_slot(rec))

    def qr_url(self, rec: LoginRequest) -> str:
        return f"{self.public_url}/q/{self.handle(rec)}"

    def user_code(self, rec: LoginRequest) -> str:
        return codes.derive_user_code(self.key, rec.id, rec.user_code_seq, self.user_code_format)

    def _user_code_hmac(self, code: str) -> str:
        return code_hmac(self.key, code, USER_CODE_SCOPE)

    async def end_approvals_of(self, session_id: str) -> int:
        """An approver session ended (signed out, revoked): the requests it claimed and that
        were not exchanged yet are denied, and their requesters told at once (DESIGN.md
        requirement 11). Returns how many it ended."""
        now = self.clock.now()
        ended = 0
        for rec in await self.store.claimed_by_session(session_id, now):
            new = await self.store.transition(
                rec.id,
                Action.DENY,
                now,
                values={"finished_at": now, "reason": "approver_signed_out"},
                expect={"approver_session_id": session_id},
                audit=lambda r: self._entry("request.denied", r, detail="approver_signed_out"),
            )
            if new is not None:
                ended += 1
                await self._publish(new)
        return ended

    async def _publish(self, rec: LoginRequest) -> None:
        await self.bus.publish(login_request_channel(rec.id), rec.version)

    def _entry(
        self,
        event: str,
        rec: LoginRequest,
        *,
        device: Device | None = None,
        approver: Approver | None = None,
        session_id: str | None = None,
        detail: str | None = None,
    ) -> AuditEntry:
        """An activity row for ``rec``; the actor is the approver, else the requester device."""
        if approver is not None:
            ip, ua = approver.ip, approver.user_agent
        elif device is not None:
            ip, ua = device.ip, device.user_agent
        else:
            ip, ua = rec.ip, rec.user_agent
        return AuditEntry(
            event=event,
            created_at=self.clock.now(),
            ip=ip[:64],
            user_agent=ua[:500],
            user_id=approver.user_id if approver else rec.approver_user_id,
            session_id=session_id or (approver.session_id if approver else None),
            request_id=rec.id,
            detail=detail,
        )
