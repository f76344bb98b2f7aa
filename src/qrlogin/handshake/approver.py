"""The approver side: scan or type a user code, then approve or deny."""

from __future__ import annotations

from typing import Any

from qrlogin.core import codes
from qrlogin.core.errors import (
    InvalidCode,
    InvalidHandle,
)
from qrlogin.core.machine import Action, Status
from qrlogin.core.network import same_network
from qrlogin.core.tokens import (
    code_hmac,
    constant_time_equal,
    derive_handle,
    new_secret,
    sha256_hex,
    tag_of,
)
from qrlogin.core.useragent import describe
from qrlogin.handshake.base import ApproverView, LoginRequestsBase
from qrlogin.handshake.views import ApproverState, RequesterInfo
from qrlogin.identity.ports import Approver
from qrlogin.store.records import LoginRequest


class ApproverFlows(LoginRequestsBase):
    # -- approver --------------------------------------------------------------------------

    async def _by_handle(self, handle: str) -> tuple[LoginRequest, int]:
        """The request ``handle`` reaches now, and the rotation slot it belongs to. An
        unknown, malformed, rotated-out or foreign handle gets one reply."""
        tag = tag_of(handle)
        rec = await self.store.login_request_by_handle(sha256_hex(tag)) if tag else None
        if rec is not None:
            for slot in self.valid_slots(rec, self.clock.now()):
                if constant_time_equal(handle, derive_handle(self.key, rec.id, slot)):
                    return rec, slot
        raise InvalidHandle()

    async def link(self, raw_code: str, approver: Approver) -> ApproverView:
        """The approver typed a requester's user code (RFC 8628 §3.3): claim that request as a
        scan would. Unknown, expired, used and wrong codes all get one reply."""
        if self.failures is not None:
            await self.failures.check(approver.user_id)
        await self.limiter.reserve_all(
            ("link_per_account", (approver.user_id,)),
            ("link_per_ip", (self.limiter.ip_key(approver.ip),)),
            ("link_global", ()),
        )
        code = codes.plausible_user_code(raw_code, self.user_code_format)
        rec = None
        if code is not None:
            rec = await self.store.login_request_by_user_code(
                self._user_code_hmac(code), self.clock.now()
            )
        try:
            if rec is None:
                raise InvalidHandle()
            view = await self.claim(rec, approver, via="user_code")
        except InvalidHandle:
            if self.failures is not None:
                await self.failures.failed(
                    approver.user_id, "user_code", approver.ip, approver.user_agent
                )
            # the approver cannot make a new code: only the device showing it can
            raise InvalidCode(
                "That code is not valid. Check the code on the other device and type it again; "
                "if it shows none any more, start signing in there again."
            ) from None
        if self.failures is not None:
            await self.failures.succeeded(approver.user_id)
        return view

    def _claimed_by(self, rec: LoginRequest, approver: Approver) -> bool:
        return rec.approver_session_id == approver.session_id

    def _approver_view(self, rec: LoginRequest) -> ApproverView:
        status = rec.status_at(self.clock.now())
        confirm = None
        if status is Status.APPROVED and rec.confirm_code_hmac is not None:
            confirm = codes.derive_confirm_code(self.key, rec.id)
        return ApproverView(rec, status, self.handle(rec), confirm)

    async def scan(self, handle: str, approver: Approver, *, via: str = "qr") -> ApproverView:
        """Mark the request scanned by this approver's session. Idempotent for that session;
        anyone else gets the same reply as an unknown handle. Never approves (requirement 4)."""
        rec, slot = await self._by_handle(handle)
        return await self.claim(rec, approver, via=via, slot=slot)

    async def hold(self, handle: str) -> str:
        """A browser that is not signed in opened ``handle``: hold the request for it while
        it signs in, since the handle will have rotated away by then. Returns a hold token
        for an HttpOnly cookie on that browser (never a URL; stored as SHA-256 only).

        The token is bound only if the handle reaches a pending request; for a claimed,
        ended or unknown handle it holds nothing, so the reply to a handle alone is the same
        whatever the request's state (requirement 2). The request stays ``pending``: nothing
        is claimed before someone is signed in (requirement 3); its requester is told that
        someone is signing in. A later hold replaces an earlier one."""
        token = new_secret()
        try:
            rec, _ = await self._by_handle(handle)
        except InvalidHandle:
            return token
        now = self.clock.now()
        if rec.status_at(now) is Status.PENDING:
            held = await self.store.hold_login_request(rec.id, sha256_hex(token), now)
            if held is not None:
                await self._publish(held)
        return token

    async def held(self, token: str | None) -> LoginRequest | None:
        """The live request a hold token holds, if any."""
        rec = await self.store.login_request_by_hold(sha256_hex(token)) if token else None
        if rec is None or rec.status_at(self.clock.now()).terminal:
            return None
        return rec

    async def resume(self, token: str | None, approver: Approver) -> ApproverView:
        """The browser that held a request is signed in now: claim it as its scan would have
        (idempotent for that session, like ``scan``). A hold whose request was claimed by
        someone else, or ended, gets the reply of an unknown handle."""
        rec = await self.held(token)
        if rec is None:
            raise InvalidHandle()
        return await self.claim(rec, approver, via="qr")

    async def for_approver(self, handle: str, approver: Approver) -> ApproverView:
        """The request this approver's session claimed through ``handle``, in any state, final
        ones included (what the approval page and its stream show after the decision)."""
        rec, _ = await self._by_handle(handle)
        if not self._claimed_by(rec, approver):
            raise InvalidHandle()
        return self._approver_view(rec)

    def approver_state(self, rec: LoginRequest) -> ApproverState:
        """What the approver's stream says of a request it claimed: its status, why it ended
        (denied or cancelled), and its version. Nothing it did not already know."""
        status = rec.status_at(self.clock.now())
        reason = rec.reason if status in (Status.DENIED, Status.CANCELLED) else None
        return ApproverState(status=status.value, reason=reason, version=rec.version)

    async def claim(
        self, rec: LoginRequest, approver: Approver, *, via: str, slot: int | None = None
    ) -> ApproverView:
        """Bind the request to this approver's session. Its handle stops rotating at the slot
        it was claimed in (the scanned one, which may be the previous slot within the
        grace), so the approver's next calls keep reaching it."""
        now = self.clock.now()
        if rec.status_at(now) is Status.PENDING:
            values: dict[str, Any] = {
                "approver_user_id": approver.user_id,
                "approver_session_id": approver.session_id,
                "scanned_at": now,
                "linked_by": via,
                # the kind of device only (e.g. "Chrome on Android"), never who is behind it
                "approver_device": " on ".join(describe(approver.user_agent))[:100],
            }
            values["handle_seq"] = self.slot_at(rec, now) if slot is None else slot
            new = await self.store.transition(
                rec.id,
                Action.SCAN,
                now,
                values=values,
                audit=lambda r: self._entry("request.scanned", r, approver=approver, detail=via),
            )
            if new is not None:
                await self._publish(new)
                return self._approver_view(new)
            rec = await self.store.get_login_request(rec.id) or rec
        if self._claimed_by(rec, approver) and not rec.status_at(now).terminal:
            return self._approver_view(rec)
        raise InvalidHandle()

    async def _decide(self, handle: str, approver: Approver, action: Action) -> ApproverView:
        rec, _ = await self._by_handle(handle)
        if not self._claimed_by(rec, approver):
            raise InvalidHandle()
        if (
            action is Action.APPROVE
            and self.step_up is not None
            and rec.status_at(self.clock.now()) is not Status.APPROVED  # not a repeated click
        ):
            await self.step_up.before_approval(approver)
        now = self.clock.now()
        values: dict[str, Any] = {}
        if action is Action.APPROVE:
            values["approved_at"] = now
            if self._needs_confirm_code(rec, approver):
                code = codes.derive_confirm_code(self.key, rec.id)
                values["confirm_code_hmac"] = code_hmac(self.key, code, rec.id)
        else:  # a deny, or the withdrawal of an approval before the exchange
            values.update(finished_at=now, reason="denied_by_approver")
        new = await self.store.transition(
            rec.id,
            action,
            now,
            values=values,
            expect={"approver_session_id": approver.session_id},
            audit=lambda r: self._entry(f"request.{r.status}", r, approver=approver),
        )
        if new is None:
            latest = await self.store.get_login_request(rec.id)
            wanted = Status.APPROVED if action is Action.APPROVE else Status.DENIED
            if latest is not None and latest.status_at(now) is wanted:
                return self._approver_view(latest)  # a repeated click: same answer
            raise InvalidHandle()
        await self._publish(new)
        return self._approver_view(new)

    def _needs_confirm_code(self, rec: LoginRequest, approver: Approver) -> bool:
        if rec.client_id is not None:
            # a device grant (RFC 8628): its client only polls and can take no typed code;
            # the approval page shows the user code to compare with the device's screen
            # instead (§5.4)
            return False
        if self.confirm == "tap":
            return False
        if self.confirm == "auto":
            return not same_network(rec.ip, approver.ip)
        return True

    async def approve(self, handle: str, approver: Approver) -> ApproverView:
        return await self._decide(handle, approver, Action.APPROVE)

    async def deny(self, handle: str, approver: Approver) -> ApproverView:
        """Deny, or withdraw an approval until the requester has exchanged it."""
        return await self._decide(handle, approver, Action.DENY)

    def describe_requester(self, rec: LoginRequest, approver_ip: str) -> RequesterInfo:
        browser, system = describe(rec.user_agent)
        return RequesterInfo(
            id=rec.id,
            device_name=rec.device_name,
            browser=browser,
            os=system,
            ip=rec.ip,
            created_at=rec.created_at,
            age_seconds=max(0, int(self.clock.now() - rec.created_at)),
            same_network=same_network(rec.ip, approver_ip),
        )
