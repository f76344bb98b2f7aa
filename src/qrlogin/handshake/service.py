"""Login requests: create, read (with handle rotation), scan, approve, deny, cancel, exchange."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qrlogin.accounts.lockout import AccountGuard
from qrlogin.core import codes
from qrlogin.core.clock import Clock
from qrlogin.core.errors import (
    ConfirmCodeRequired,
    InvalidCode,
    InvalidHandle,
    InvalidSecret,
    QrLoginError,
    RateLimited,
)
from qrlogin.core.machine import Action, Status
from qrlogin.core.network import same_network
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import (
    code_hmac,
    constant_time_equal,
    derive_handle,
    new_id,
    new_secret,
    normalize_code,
    sha256_hex,
)
from qrlogin.core.useragent import describe
from qrlogin.events.port import EventBus, login_request_channel
from qrlogin.handshake.refusals import exchange_refusal
from qrlogin.identity.ports import Approver
from qrlogin.limiter import RateLimiter
from qrlogin.sessions.service import Device, IssuedSession, SessionService
from qrlogin.store.records import LoginRequest
from qrlogin.store.sql import SqlStore

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


class LoginRequests:
    def __init__(
        self,
        store: SqlStore,
        bus: EventBus,
        sessions: SessionService,
        clock: Clock,
        policy: Policy,
        key: bytes,
        *,
        public_url: str,
        confirm: str,
        user_code_format: codes.UserCodeFormat,
        limiter: RateLimiter,
        guard: AccountGuard,
    ) -> None:
        self.store = store
        self.bus = bus
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        self.key = key
        self.public_url = public_url
        self.confirm = confirm
        self.user_code_format: codes.UserCodeFormat = user_code_format
        self.limiter = limiter
        self.guard = guard

    # -- derived values --------------------------------------------------------------------

    def handle(self, rec: LoginRequest) -> str:
        return derive_handle(self.key, rec.id, rec.handle_seq)

    def qr_url(self, rec: LoginRequest) -> str:
        return f"{self.public_url}/q/{self.handle(rec)}"

    def user_code(self, rec: LoginRequest) -> str:
        return codes.derive_user_code(self.key, rec.id, rec.user_code_seq, self.user_code_format)

    def _user_code_hmac(self, code: str) -> str:
        return code_hmac(self.key, code, USER_CODE_SCOPE)

    async def _publish(self, rec: LoginRequest) -> None:
        await self.bus.publish(login_request_channel(rec.id), rec.version)

    # -- requester -------------------------------------------------------------------------

    async def create(self, device: Device) -> Created:
        await self.limiter.reserve_all(("create_per_ip", (device.ip,)), ("create_global", ()))
        now = self.clock.now()
        if (
            await self.store.count_pending_by_ip(device.ip, now)
            >= self.limiter.rules.pending_per_ip
        ):
            raise RateLimited(
                "Too many sign-ins are waiting from your network. Finish or cancel one, "
                "or wait a minute.",
                retry_after=60,
            )
        request_id = new_id("lr")
        secret = new_secret()
        seq = 0
        # user codes are unique among live requests: move on to the next derived code when
        # one is taken (rare with 10^6 codes; bounded so a full space fails loudly)
        for seq in range(20):
            code = codes.derive_user_code(self.key, request_id, seq, self.user_code_format)
            if await self.store.login_request_by_user_code(self._user_code_hmac(code), now) is None:
                break
        else:
            raise QrLoginError("Too many sign-ins are waiting right now. Try again in a minute.")
        rec = LoginRequest(
            id=request_id,
            secret_hash=sha256_hex(secret),
            status=Status.PENDING.value,
            version=1,
            created_at=now,
            expires_at=now + self.policy.request_lifetime,
            handle_seq=0,
            handle_hash=sha256_hex(derive_handle(self.key, request_id, 0)),
            handle_expires_at=now + self.policy.handle_rotation,
            device_name=device.name[:100],
            user_agent=device.user_agent[:500],
            ip=device.ip[:64],
            user_code_hmac=self._user_code_hmac(code),
            user_code_seq=seq,
        )
        await self.store.insert_login_request(rec)
        return Created(rec, secret)

    async def for_requester(self, request_id: str, secret: str | None) -> LoginRequest:
        """The request if ``secret`` is its requester secret. Unknown ids, missing and wrong
        secrets get one identical refusal (DESIGN.md requirements 1 and 2)."""
        rec = await self.store.get_login_request(request_id) if secret else None
        if rec is None or not constant_time_equal(rec.secret_hash, sha256_hex(secret or "")):
            raise InvalidSecret()
        return await self.rotate_if_due(rec)

    async def rotate_if_due(self, rec: LoginRequest) -> LoginRequest:
        """Give the QR a new handle when the current one is due; the old one stays valid for a
        short grace so a scan in flight still lands."""
        now = self.clock.now()
        if rec.status_at(now) is not Status.PENDING or now < rec.handle_expires_at:
            return rec
        seq = rec.handle_seq + 1
        new = await self.store.transition(
            rec.id,
            Action.ROTATE,
            now,
            values={
                "handle_seq": seq,
                "handle_hash": sha256_hex(derive_handle(self.key, rec.id, seq)),
                "handle_expires_at": now + self.policy.handle_rotation,
                "prev_handle_hash": rec.handle_hash,
                "prev_handle_until": now + self.policy.handle_grace,
            },
            expect={"handle_seq": rec.handle_seq},
        )
        if new is None:  # another reader rotated it, or it changed state: take what is there
            return await self.store.get_login_request(rec.id) or rec
        await self._publish(new)
        return new

    def next_deadline(self, rec: LoginRequest) -> float:
        """When this request changes by itself (rotation or expiry) if nobody acts."""
        status = rec.status_at(self.clock.now())
        if status.terminal:
            return float("inf")
        if status is Status.PENDING:
            return min(rec.handle_expires_at, rec.expires_at)
        return rec.expires_at

    def requester_view(self, rec: LoginRequest) -> dict[str, Any]:
        """The requester's state. Before approval it holds nothing about the approver but the
        kind of device it uses (the USENIX "personal data in polls" flaw)."""
        now = self.clock.now()
        status = rec.status_at(now)
        view: dict[str, Any] = {
            "id": rec.id,
            "status": status.value,
            "version": rec.version,
            "expires_at": rec.expires_at,
            "reason": rec.reason if status in (Status.DENIED, Status.CANCELLED) else None,
            "qr_url": None,
            "qr_expires_at": None,
            "user_code": None,
            "approver_device": None,
            "confirm_code_required": False,
        }
        if status is Status.PENDING:
            view["qr_url"] = self.qr_url(rec)
            view["qr_expires_at"] = rec.handle_expires_at
            view["user_code"] = codes.display_user_code(self.user_code(rec))
        if status in (Status.SCANNED, Status.APPROVED):
            view["approver_device"] = "your other device"
        if status is Status.APPROVED:
            view["confirm_code_required"] = rec.confirm_code_hmac is not None
        return view

    async def cancel(self, rec: LoginRequest) -> LoginRequest:
        new = await self.store.transition(
            rec.id,
            Action.CANCEL,
            self.clock.now(),
            values={"finished_at": self.clock.now(), "reason": "cancelled_by_requester"},
        )
        if new is None:
            return await self.store.get_login_request(rec.id) or rec
        await self._publish(new)
        return new

    async def exchange(
        self, rec: LoginRequest, confirm_code: str | None, device: Device
    ) -> IssuedSession:
        """approved → consumed: a **new** session for the requester (requirement 5)."""
        now = self.clock.now()
        refusal = exchange_refusal(rec.status_at(now), rec.reason)
        if refusal is not None:
            raise refusal
        if rec.confirm_code_hmac is not None:
            await self._check_confirm_code(rec, confirm_code)
        user = await self.store.get_user(rec.approver_user_id or "")
        if user is None:
            raise exchange_refusal(Status.DENIED) or InvalidSecret()
        token, session = self.sessions.new_session(
            user,
            Device(rec.device_name, device.user_agent or rec.user_agent, device.ip or rec.ip),
            rec.linked_by or "qr",
            linked_from_session_id=rec.approver_session_id,
            login_request_id=rec.id,
        )
        new = await self.store.exchange(rec.id, now, session, expect={"version": rec.version})
        if new is None:  # lost a race: report the state the winner left
            latest = await self.store.get_login_request(rec.id)
            status = latest.status_at(now) if latest else Status.EXPIRED
            raise exchange_refusal(status, latest.reason if latest else None) or InvalidSecret()
        await self._publish(new)
        return IssuedSession(token, session, user)

    async def _check_confirm_code(self, rec: LoginRequest, confirm_code: str | None) -> None:
        if not confirm_code:
            raise ConfirmCodeRequired()
        expected = rec.confirm_code_hmac or ""
        given = code_hmac(self.key, normalize_code(confirm_code), rec.id)
        if constant_time_equal(expected, given):
            return
        new = await self.store.fail_confirm_code(
            rec.id, self.clock.now(), self.policy.confirm_attempts
        )
        if new is not None and new.status == Status.DENIED.value:
            await self._publish(new)
            refusal = exchange_refusal(Status.DENIED, new.reason)
            assert refusal is not None
            raise refusal
        raise InvalidCode("That confirm code is not right. Check the code on your other device.")

    # -- approver --------------------------------------------------------------------------

    async def _by_handle(self, handle: str) -> LoginRequest:
        rec = await self.store.login_request_by_handle(sha256_hex(handle), self.clock.now())
        if rec is None:
            raise InvalidHandle()
        return rec

    async def link(self, raw_code: str, approver: Approver) -> ApproverView:
        """The approver typed a requester's user code (RFC 8628 §3.3): claim that request as a
        scan would. Unknown, expired, used and wrong codes all get one reply."""
        user = await self.store.get_user(approver.user_id)
        if user is None:
            raise InvalidCode()
        await self.guard.check(user)
        await self.limiter.reserve_all(
            ("link_per_account", (user.id,)),
            ("link_per_ip", (approver.ip,)),
            ("link_global", ()),
        )
        code = codes.plausible_user_code(raw_code, self.user_code_format)
        rec = None
        if code is not None:
            rec = await self.store.login_request_by_user_code(
                self._user_code_hmac(code), self.clock.now()
            )
        if rec is None:
            await self.guard.failed(user)
            raise InvalidCode()
        try:
            view = await self.claim(rec, approver, via="user_code")
        except InvalidHandle:
            await self.guard.failed(user)
            raise InvalidCode() from None
        await self.guard.succeeded(user)
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
        rec = await self._by_handle(handle)
        return await self.claim(rec, approver, via=via)

    async def claim(self, rec: LoginRequest, approver: Approver, *, via: str) -> ApproverView:
        now = self.clock.now()
        if rec.status_at(now) is Status.PENDING:
            new = await self.store.transition(
                rec.id,
                Action.SCAN,
                now,
                values={
                    "approver_user_id": approver.user_id,
                    "approver_session_id": approver.session_id,
                    "scanned_at": now,
                    "linked_by": via,
                    # the handle that was scanned, current or previous, now stays valid for
                    # the bound approver until the request ends
                    "prev_handle_until": rec.expires_at,
                },
            )
            if new is not None:
                await self._publish(new)
                return self._approver_view(new)
            rec = await self.store.get_login_request(rec.id) or rec
        if self._claimed_by(rec, approver) and not rec.status_at(now).terminal:
            return self._approver_view(rec)
        raise InvalidHandle()

    async def _decide(self, handle: str, approver: Approver, action: Action) -> ApproverView:
        rec = await self._by_handle(handle)
        if not self._claimed_by(rec, approver):
            raise InvalidHandle()
        now = self.clock.now()
        values: dict[str, Any] = {}
        if action is Action.APPROVE:
            values["approved_at"] = now
            if self._needs_confirm_code(rec, approver):
                code = codes.derive_confirm_code(self.key, rec.id)
                values["confirm_code_hmac"] = code_hmac(self.key, code, rec.id)
        else:
            values.update(finished_at=now, reason="denied_by_approver")
        new = await self.store.transition(
            rec.id,
            action,
            now,
            values=values,
            expect={"approver_session_id": approver.session_id},
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
        if self.confirm == "tap":
            return False
        if self.confirm == "auto":
            return not same_network(rec.ip, approver.ip)
        return True

    async def approve(self, handle: str, approver: Approver) -> ApproverView:
        return await self._decide(handle, approver, Action.APPROVE)

    async def deny(self, handle: str, approver: Approver) -> ApproverView:
        return await self._decide(handle, approver, Action.DENY)

    def describe_requester(self, rec: LoginRequest, approver_ip: str) -> dict[str, Any]:
        browser, system = describe(rec.user_agent)
        return {
            "id": rec.id,
            "device_name": rec.device_name,
            "browser": browser,
            "os": system,
            "ip": rec.ip,
            "created_at": rec.created_at,
            "age_seconds": max(0, int(self.clock.now() - rec.created_at)),
            "same_network": same_network(rec.ip, approver_ip),
        }
