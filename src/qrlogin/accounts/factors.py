"""Second factors of the built-in accounts: what an account has, the mfa token that holds an
email sign-in until its second factor, the step-up an approver makes before it approves,
and the activity rows and mails every factor change gets.

The factors themselves live beside this: ``passkeys.py`` (WebAuthn) and ``totp.py`` (TOTP
and recovery codes). An account "has a second factor" when it has a passkey or TOTP on;
from then on an email code or link alone no longer signs a new device in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Protocol

from qrlogin.config import StepUpPolicy
from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidCode, InvalidMfaToken, InvalidState, StepUpRequired
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import constant_time_equal, new_secret, sha256_hex
from qrlogin.identity.device import Device
from qrlogin.identity.ports import Approver, SessionGrant, StartedSession, StoredSessionStarter
from qrlogin.mail import Mail, Mailer
from qrlogin.store.ports import FactorStore
from qrlogin.store.records import AuditEntry, FactorChallenge, Session, User

log = logging.getLogger("qrlogin.accounts")

MFA = "mfa"  # FactorChallenge.kind of an mfa token
STEP_UP_METHODS = ("passkey", "totp")  # what an approver can step up with


def binding(browser_token: str | None, ip_key: str) -> str:
    """What a challenge or mfa token is bound to: the browser's ``qrl_browser`` cookie
    (its SHA-256), or, for a caller without one, its address (as email codes are)."""
    return bound_to_hash(sha256_hex(browser_token) if browser_token else None, ip_key)


def bound_to_hash(browser_hash: str | None, ip_key: str) -> str:
    """``binding`` for a caller whose cookie's SHA-256 is already at hand."""
    return browser_hash or f"ip:{ip_key}"


def factor_entry(
    event: str,
    user_id: str,
    device: Device | None,
    detail: str,
    now: float,
    session_id: str | None = None,
) -> AuditEntry:
    """The activity row of a factor change (``factor.added``, ``factor.removed`` …)."""
    return AuditEntry(
        event=event,
        created_at=now,
        ip=device.ip if device else "",
        user_agent=device.user_agent if device else "",
        user_id=user_id,
        session_id=session_id,
        detail=detail[:200],
    )


class CodeAlreadyUsed(InvalidCode):
    """The right code of a time step already accepted (a replay, or the losers of parallel
    uses of one code): refused with the same reply as a wrong code, but it is no guess, so
    it spends no try of an mfa token (the winner of the race still finishes with it)."""


class CodeChecker(Protocol):
    """Checks a typed second-factor code (``totp.py``): a TOTP code or a recovery code."""

    async def check(self, user: User, code: str, device: Device) -> str:
        """The ``amr`` method the code proved (``otp`` or ``recovery``); ``InvalidCode``
        for every failure alike, a locked factor included."""
        ...


@dataclass(frozen=True)
class PendingSignIn:
    """An email sign-in waiting for its second factor (what its mfa token holds)."""

    token_hash: str
    user: User
    api: bool
    first: str  # the amr of the step already made ("email")
    next: str | None


class SecondFactors:
    def __init__(
        self,
        store: FactorStore,
        identity: StoredSessionStarter,
        mailer: Mailer,
        clock: Clock,
        policy: Policy,
        *,
        site_name: str,
        public_url: str,
        step_up: StepUpPolicy,
    ) -> None:
        self.store = store
        self.identity = identity
        self.mailer = mailer
        self.clock = clock
        self.policy = policy
        self.site_name = site_name
        self.public_url = public_url
        self.step_up = step_up
        self.codes: CodeChecker | None = None  # the TOTP service, wired in services.py
        self._background: set[asyncio.Task[None]] = set()

    # -- what an account has ---------------------------------------------------------------

    async def methods(self, user_id: str) -> list[str]:
        """The second factors an account can use now: ``passkey``, ``totp``, ``recovery``."""
        keys, totp, codes = await self.store.factor_summary(user_id)
        have = []
        if keys:
            have.append("passkey")
        if totp:
            have.append("totp")
        if codes and (keys or totp):
            have.append("recovery")
        return have

    async def has_second_factor(self, user_id: str) -> bool:
        return any(m in STEP_UP_METHODS for m in await self.methods(user_id))

    # -- the mfa token ---------------------------------------------------------------------

    def mfa_challenge(
        self, user: User, bound_to: str, *, api: bool, next_url: str | None, first: str = "email"
    ) -> tuple[str, FactorChallenge]:
        """A new mfa token and its row (the caller writes it with the step it follows)."""
        token = new_secret()
        now = self.clock.now()
        data = json.dumps({"api": api, "next": next_url, "first": first})
        return token, FactorChallenge(
            token_hash=sha256_hex(token),
            kind=MFA,
            created_at=now,
            expires_at=now + self.policy.mfa_token_lifetime,
            user_id=user.id,
            browser_hash=bound_to,
            data=data,
        )

    async def pending(self, mfa_token: str, bound_to: str) -> PendingSignIn:
        """The sign-in an mfa token holds, if it is live and this browser's; else one
        refusal (``InvalidMfaToken``) for unknown, used, expired, foreign or spent."""
        if not mfa_token or len(mfa_token) > 200:
            raise InvalidMfaToken()
        token_hash = sha256_hex(mfa_token)
        ch = await self.store.get_challenge(
            token_hash, MFA, self.clock.now(), self.policy.mfa_token_attempts
        )
        if ch is None or ch.user_id is None or ch.browser_hash is None:
            raise InvalidMfaToken()
        if not constant_time_equal(ch.browser_hash, bound_to):
            raise InvalidMfaToken()
        user = await self.store.get_user(ch.user_id)
        if user is None:
            raise InvalidMfaToken()
        data = json.loads(ch.data or "{}")
        return PendingSignIn(
            token_hash=token_hash,
            user=user,
            api=bool(data.get("api")),
            first=str(data.get("first") or "email"),
            next=data.get("next"),
        )

    async def finish(self, pending: PendingSignIn, method: str, device: Device) -> StartedSession:
        """Use the mfa token (once) and sign the device in, ``amr`` = first step + method."""
        taken = await self.store.take_challenge(
            pending.token_hash, MFA, self.clock.now(), self.policy.mfa_token_attempts
        )
        if taken is None:  # a parallel finish won
            raise InvalidMfaToken()
        grant = SessionGrant(
            user_id=pending.user.id,
            device=device,
            linked_by="email",
            api=pending.api,
            amr=(pending.first, method),
        )
        return await self.identity.start_session(grant)

    async def finish_with_code(
        self, mfa_token: str, bound_to: str, code: str, device: Device
    ) -> tuple[StartedSession, PendingSignIn]:
        """``POST /api/v1/auth/second-factor``: a TOTP or recovery code finishes it."""
        pending = await self.pending(mfa_token, bound_to)
        if self.codes is None:
            raise InvalidCode()
        try:
            method = await self.codes.check(pending.user, code, device)
        except CodeAlreadyUsed:
            raise
        except InvalidCode:
            await self.store.fail_challenge(pending.token_hash)
            raise
        return await self.finish(pending, method, device), pending

    # -- step-up before an approval --------------------------------------------------------

    async def step_up_methods(self, user_id: str) -> list[str]:
        return [m for m in await self.methods(user_id) if m in STEP_UP_METHODS]

    async def require_step_up(self, user_id: str, session_id: str) -> None:
        """Before an approval: the approver's session must have proved a second factor
        within the last 5 minutes (``recent``), or since its last approval (``always``).
        An account without a second factor has nothing to step up with, and passes."""
        if self.step_up == "off":
            return
        methods = await self.step_up_methods(user_id)
        if not methods:
            return
        if self.step_up == "always":
            since = self.clock.now() - self.policy.step_up_window
            ok = await self.store.spend_verification(session_id, since)
        else:
            ok = await self._verified_lately(session_id)
        if not ok:
            raise StepUpRequired(methods)

    async def _verified_lately(self, session_id: str) -> bool:
        """The session proved a second factor within the step-up window."""
        since = self.clock.now() - self.policy.step_up_window
        session = await self.store.get_session(session_id)
        return (
            session is not None
            and session.verified_at is not None
            and (session.verified_at >= since)
        )

    async def before_approval(self, approver: Approver) -> None:
        """``identity.ports.StepUp`` for the built-in accounts."""
        await self.require_step_up(approver.user_id, approver.session_id)

    async def verify_code(self, user: User, session_id: str, code: str, device: Device) -> str:
        """The session proves a second factor with a TOTP or recovery code now (a step-up);
        the method it proved. ``InvalidCode`` for a wrong one."""
        if self.codes is None:
            raise InvalidCode()
        method = await self.codes.check(user, code, device)
        await self.verified(user.id, session_id, method, device)
        return method

    async def verified(self, user_id: str, session_id: str, method: str, device: Device) -> None:
        """The session proved ``method`` (``otp`` or ``passkey``) just now."""
        now = self.clock.now()
        entry = factor_entry("factor.verified", user_id, device, method, now, session_id)
        await self.store.mark_verified(session_id, now, entry)

    # -- changes that weaken the account ---------------------------------------------------

    async def fresh_factor(
        self, user: User, session: Session, code: str | None, device: Device
    ) -> None:
        """Before a change that weakens the account (a factor off, new recovery codes, no
        longer requiring a second factor): a TOTP or recovery code in the same call, or a
        second factor this session proved within the step-up window. Else
        ``StepUpRequired`` (no code) or ``InvalidCode`` (a wrong one)."""
        if code:
            await self.verify_code(user, session.id, code, device)
            return
        if not await self._verified_lately(session.id):
            raise StepUpRequired(
                await self.methods(user.id),
                "Confirm it's you first: use your passkey, or type a code from your "
                "authenticator app or one of your recovery codes.",
            )

    async def set_required(
        self, user: User, session: Session, required: bool, code: str | None, device: Device
    ) -> None:
        """Require a second factor (the last one can then not be removed), or stop: that
        weakens the account, so it needs a fresh second factor, and its owner is told."""
        if not required:
            await self.fresh_factor(user, session, code, device)
        now = self.clock.now()
        event = "factor.required" if required else "factor.optional"
        entry = factor_entry(event, user.id, device, "account", now, session.id)
        if not await self.store.set_mfa_required(user.id, required, entry):
            raise InvalidState(
                "Set up a passkey or an authenticator app first: an account can only require "
                "a second factor it has."
            )
        if not required:
            self.notify(user, "requiring a second factor", added=False)

    # -- telling the owner -----------------------------------------------------------------

    def notify(self, user: User, what: str, *, added: bool) -> None:
        """Mail the account's owner that ``what`` ("a passkey", "TOTP") was added or
        removed, without delaying the reply."""
        task = asyncio.create_task(self._mail(user, what, added))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _mail(self, user: User, what: str, added: bool) -> None:
        verb = "added to" if added else "removed from"
        try:
            await self.mailer.send(
                Mail(
                    user.email,
                    f"A second factor was {verb} your {self.site_name} account",
                    f"{what[0].upper()}{what[1:]} was {verb} your {self.site_name} account.\n\n"
                    "If this was you, there is nothing to do. If not, sign your other devices "
                    f"out and review your sign-in methods now:\n{self.public_url}/account\n",
                )
            )
        except Exception:  # mail trouble must not undo the change; the activity row stays
            log.exception("could not send the factor change notice")

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
