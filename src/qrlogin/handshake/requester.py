"""The requester side: create, read (with handle rotation), cancel, exchange."""

from __future__ import annotations

from dataclasses import replace

from qrlogin.core import codes
from qrlogin.core.device_names import clean_device_name
from qrlogin.core.errors import (
    ConfirmCodeRequired,
    InvalidCode,
    InvalidSecret,
    QrLoginError,
    RateLimited,
)
from qrlogin.core.machine import Action, Status
from qrlogin.core.tokens import (
    code_hmac,
    constant_time_equal,
    handle_tag,
    new_id,
    new_secret,
    normalize_code,
    sha256_hex,
)
from qrlogin.handshake.base import Created, LoginRequestsBase
from qrlogin.handshake.refusals import exchange_refusal
from qrlogin.handshake.views import LoginRequestState
from qrlogin.identity.device import Device
from qrlogin.identity.ports import SessionGrant, StartedSession, StoredSessionStarter
from qrlogin.limiter import UNLIMITED
from qrlogin.store.ports import UserCodeTaken
from qrlogin.store.records import AuditEntry, LoginRequest


class RequesterFlows(LoginRequestsBase):
    # -- requester -------------------------------------------------------------------------

    async def create(
        self, device: Device, *, client_id: str | None = None, scope: str | None = None
    ) -> Created:
        """A new login request for ``device``. With ``client_id`` it is an OAuth device
        grant's (RFC 8628): its session will be that client's, for ``scope``."""
        ip_key = self.limiter.ip_key(device.ip)
        await self.limiter.reserve_all(("create_per_ip", (ip_key,)), ("create_global", ()))
        now = self.clock.now()
        cap = self.limiter.rules.pending_per_ip
        if cap < UNLIMITED.pending_per_ip and (
            await self.store.count_pending_by_ip(ip_key, now, cap) >= cap
        ):
            raise RateLimited(
                "Too many sign-ins are waiting from your network. Finish or cancel one, "
                "or wait a minute.",
                retry_after=60,
            )
        request_id = new_id("lr")
        secret = new_secret()
        first = codes.derive_user_code(self.key, request_id, 0, self.user_code_format)
        rec = LoginRequest(
            id=request_id,
            secret_hash=sha256_hex(secret),
            status=Status.PENDING.value,
            version=1,
            created_at=now,
            expires_at=now + self.policy.request_lifetime,
            handle_seq=0,
            handle_hash=sha256_hex(handle_tag(self.key, request_id)),
            # cleaned where it enters (web/deps.py) and again here, for embedding hosts
            device_name=clean_device_name(device.name) or "A device",
            user_agent=device.user_agent[:500],
            ip=device.ip[:64],
            ip_key=ip_key[:64],
            user_code_hmac=self._user_code_hmac(first),
            user_code_seq=0,
            client_id=client_id,
            scope=scope,
        )
        # user codes are unique among pending requests (a unique index, no read first):
        # when the insert finds the code taken, the next derived one (rare with 10^6 codes;
        # bounded, so that a full space fails loudly)
        for seq in range(20):
            if seq:
                code = codes.derive_user_code(self.key, request_id, seq, self.user_code_format)
                rec = replace(rec, user_code_hmac=self._user_code_hmac(code), user_code_seq=seq)
            try:
                await self.store.insert_login_request(
                    rec, self._entry("request.created", rec, device=device)
                )
            except UserCodeTaken:
                continue
            return Created(rec, secret)
        raise QrLoginError("Too many sign-ins are waiting right now. Try again in a minute.")

    async def for_requester(self, request_id: str, secret: str | None) -> LoginRequest:
        """The request if ``secret`` is its requester secret. Unknown ids, missing and wrong
        secrets get one identical refusal (DESIGN.md requirements 1 and 2)."""
        rec = await self.store.get_login_request(request_id) if secret else None
        if rec is None or not constant_time_equal(rec.secret_hash, sha256_hex(secret or "")):
            raise InvalidSecret()
        return rec

    def next_deadline(self, rec: LoginRequest) -> float:
        """When this request changes by itself (rotation or expiry) if nobody acts."""
        status = rec.status_at(self.clock.now())
        if status.terminal:
            return float("inf")
        if status is Status.PENDING:  # the QR's next handle
            now = self.clock.now()
            return min(self.slot_ends_at(rec, self.slot_at(rec, now)), rec.expires_at)
        return rec.expires_at

    def requester_view(self, rec: LoginRequest) -> LoginRequestState:
        """The requester's state: the same model for the JSON reply, the long-poll and SSE."""
        now = self.clock.now()
        status = rec.status_at(now)
        view = LoginRequestState(
            id=rec.id,
            status=status.value,
            version=rec.version,
            expires_at=rec.expires_at,
            reason=rec.reason if status in (Status.DENIED, Status.CANCELLED) else None,
            # someone opened the QR on a phone that is signing in first (``ApproverFlows.hold``)
            approver_signing_in=status is Status.PENDING and rec.held_at is not None,
        )
        if status is Status.PENDING:
            slot_end = self.slot_ends_at(rec, self.slot_at(rec, now))
            view.qr_url = self.qr_url(rec)
            view.qr_expires_at = min(slot_end, rec.expires_at)
            view.user_code = codes.display_user_code(self.user_code(rec))
        if status in (Status.SCANNED, Status.APPROVED):
            view.approver_device = rec.approver_device or "your other device"
        if status is Status.APPROVED:
            view.confirm_code_required = rec.confirm_code_hmac is not None
        return view

    async def cancel(self, rec: LoginRequest, device: Device) -> LoginRequest:
        new = await self.store.transition(
            rec.id,
            Action.CANCEL,
            self.clock.now(),
            values={"finished_at": self.clock.now(), "reason": "cancelled_by_requester"},
            audit=lambda r: self._entry("request.cancelled", r, device=device),
        )
        if new is None:
            return await self.store.get_login_request(rec.id) or rec
        await self._publish(new)
        return new

    async def exchange(
        self,
        rec: LoginRequest,
        confirm_code: str | None,
        device: Device,
        *,
        api: bool = False,
        client_id: str | None = None,
    ) -> StartedSession:
        """approved → consumed, then a **new** session for the requester (requirement 5),
        started through the identity port once this call has won the conditional write.
        An approval whose approver session has ended since is refused (requirement 11).
        A device grant's request is exchanged only by its authenticated OAuth client
        (``client_id``, at the token endpoint), never through the requester API."""
        if rec.client_id != client_id:
            raise InvalidSecret()
        now = self.clock.now()
        refusal = exchange_refusal(rec.status_at(now), rec.reason)
        if refusal is not None:
            raise refusal
        if rec.confirm_code_hmac is not None:
            await self._check_confirm_code(rec, confirm_code, device)
        user_id, approver_session = rec.approver_user_id or "", rec.approver_session_id or ""
        if not await self.approvers.session_is_live(user_id, approver_session):
            await self.end_approvals_of(approver_session)
            raise exchange_refusal(Status.DENIED, "approver_signed_out") or InvalidSecret()
        grant = SessionGrant(
            user_id=user_id,
            device=Device(
                rec.device_name, device.user_agent or rec.user_agent, device.ip or rec.ip
            ),
            linked_by=rec.linked_by or "qr",
            api=api,
            login_request_id=rec.id,
            approver_session_id=approver_session,
            client_id=rec.client_id,
            scope=rec.scope,
        )
        values, expect = {"finished_at": now}, {"version": rec.version}

        def audit(r: LoginRequest) -> AuditEntry:
            return self._entry("request.consumed", r, device=device, detail=r.linked_by)

        if isinstance(self.sessions, StoredSessionStarter):
            # the built-in sessions: the session's rows go into the consuming transaction
            rows, started = await self.sessions.prepare_session(grant)
            new = await self.store.exchange(rec.id, now, values, expect, audit, rows)
            await self._won(rec.id, new, now)
            await self.sessions.session_started(grant, started, rows)
            return started
        # a host app's sessions: started once this call has won the consuming write
        new = await self.store.transition(
            rec.id, Action.EXCHANGE, now, values=values, expect=expect, audit=audit
        )
        await self._won(rec.id, new, now)
        return await self.sessions.start_session(grant)

    async def _won(self, request_id: str, new: LoginRequest | None, now: float) -> None:
        """Tell the requester's listeners of the consuming write it won; if another caller
        won it (``new`` is None), refuse with the state the winner left."""
        if new is not None:
            await self._publish(new)
            return
        latest = await self.store.get_login_request(request_id)
        status = latest.status_at(now) if latest else Status.EXPIRED
        raise exchange_refusal(status, latest.reason if latest else None) or InvalidSecret()

    async def _check_confirm_code(
        self, rec: LoginRequest, confirm_code: str | None, device: Device
    ) -> None:
        if not confirm_code:
            raise ConfirmCodeRequired()
        expected = rec.confirm_code_hmac or ""
        given = code_hmac(self.key, normalize_code(confirm_code), rec.id)
        if constant_time_equal(expected, given):
            return
        new = await self.store.fail_confirm_code(
            rec.id,
            self.clock.now(),
            self.policy.confirm_attempts,
            audit=lambda r: self._entry("code.failed", r, device=device, detail="confirm_code"),
        )
        if new is None:  # burned, cancelled or expired meanwhile: say so, not "try again"
            latest = await self.store.get_login_request(rec.id)
            status = latest.status_at(self.clock.now()) if latest else Status.EXPIRED
            raise exchange_refusal(status, latest.reason if latest else None) or InvalidCode()
        if new.status == Status.DENIED.value:
            await self._publish(new)
            refusal = exchange_refusal(Status.DENIED, new.reason)
            assert refusal is not None
            raise refusal
        raise InvalidCode(
            "That confirm code is not right. Check the code on your other device.",
            attempts_left=max(0, self.policy.confirm_attempts - new.confirm_attempts),
        )

    async def expire_due(self) -> int:
        """Record the expiry of requests past their lifetime, and tell their listeners."""
        expired = await self.store.expire_due(
            self.clock.now(), lambda r: self._entry("request.expired", r)
        )
        for rec in expired:
            await self._publish(rec)
        return len(expired)
