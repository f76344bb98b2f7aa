"""Consecutive wrong codes per account: after 100 the account locks for a while and its owner
gets a notice (DESIGN.md requirement 6; NIST SP 800-63B §5.2.2)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Protocol

from qrlogin.core.clock import Clock
from qrlogin.core.errors import AccountLocked
from qrlogin.core.policy import Policy
from qrlogin.identity.device import Device
from qrlogin.mail import Mail, Mailer
from qrlogin.store.ports import AccountStore
from qrlogin.store.records import AuditEntry, User

log = logging.getLogger("qrlogin.accounts")


class SignsOut(Protocol):
    """Signs every session of an account out (the built-in sessions do)."""

    async def revoke_all(
        self, user_id: str, reason: str, device: Device | None, *, keep: str | None = None
    ) -> int: ...


class AccountGuard:
    """The built-in accounts' ``identity.ports.CodeFailures``, and the email-code lockout.

    Two streaks, two locks. Wrong **user codes** come from the account's own signed-in
    sessions (one may be stolen): 100 in a row lock ``/link`` and email sign-in and sign every
    session out. Wrong **email codes** anyone can ask for and type: 1,000 in a row lock email
    sign-in for browsers other than the owner's known ones, and nothing else (DESIGN.md
    requirement 12), so a stranger never shuts out the owner's devices.
    """

    def __init__(
        self,
        store: AccountStore,
        mailer: Mailer,
        clock: Clock,
        policy: Policy,
        site_name: str,
        sessions: SignsOut,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.mailer = mailer
        self.clock = clock
        self.policy = policy
        self.site_name = site_name

    def _retry_after(self, locked_at: float | None) -> int | None:
        if locked_at is None:
            return None
        left = locked_at + self.policy.account_lockout - self.clock.now()
        return int(left) + 1 if left > 0 else None

    async def check(self, user_id: str) -> None:
        """Refuse while wrong user codes have the account locked; clear an expired lock.
        Wrong email codes never refuse here: they are typed elsewhere, by anyone."""
        user = await self.store.get_user(user_id)
        if user is not None:
            await self._check_user_codes(user)

    async def _check_user_codes(self, user: User) -> None:
        retry = self._retry_after(user.locked_at)
        if retry is not None:
            raise AccountLocked(retry_after=retry)
        if user.locked_at is not None:
            await self.store.reset_code_failures(user.id)

    async def check_email_sign_in(self, user: User, *, known_browser: bool) -> None:
        """Refuse email sign-in while wrong user codes have the account locked, or while
        wrong email codes have it locked and this is not one of the owner's known browsers."""
        await self._check_user_codes(user)
        retry = self._retry_after(user.email_locked_at)
        if retry is not None and not known_browser:
            raise AccountLocked(retry_after=retry)
        if retry is None and user.email_locked_at is not None:
            await self.store.reset_code_failures(user.id, kind="email_code")

    async def failed(self, user_id: str, kind: str, ip: str, user_agent: str) -> None:
        """Count a wrong code of ``kind`` (``user_code`` or ``email_code``); on its threshold
        lock the account for that kind and tell its owner."""
        now = self.clock.now()
        entry = AuditEntry(
            event="code.failed",
            created_at=now,
            ip=ip[:64],
            user_agent=user_agent[:500],
            user_id=user_id,
            detail=kind,
        )
        email = kind == "email_code"
        threshold = (
            self.policy.email_failure_lockout if email else self.policy.account_failure_lockout
        )
        user = await self.store.record_code_failure(
            user_id, now, threshold, entry, kind="email_code" if email else "user_code"
        )
        if user is None:
            return
        streak = user.email_code_streak if email else user.failed_code_streak
        if streak != threshold:
            return  # only the failure that locked it acts (the streak counts on while locked)
        log.warning(
            "account locked after repeated wrong codes", extra={"user_id": user_id, "kind": kind}
        )
        await self.store.audit(replace(entry, event="account.locked"))
        if not email:
            # wrong user codes come from the account's own signed-in sessions: one of them may
            # be stolen, so all are signed out
            await self.sessions.revoke_all(user.id, "account_locked", Device("", user_agent, ip))
        await self.mailer.send(self._notice(user, threshold, email=email))

    def _notice(self, user: User, threshold: int, *, email: bool) -> Mail:
        minutes = int(self.policy.account_lockout // 60)
        if email:
            what = (
                f"Someone asked for sign-in codes for your {self.site_name} account and typed "
                f"{threshold} wrong codes in a row, so for {minutes} minutes email sign-in works "
                "only in browsers where you signed in before. Your signed-in devices are not "
                "affected and nobody was signed out.\n\n"
            )
        else:
            what = (
                f"{threshold} wrong codes in a row were typed on devices signed in to your "
                f"{self.site_name} account, so we locked it for {minutes} minutes and signed "
                "out all of its devices.\n\n"
            )
        return Mail(
            user.email,
            f"Your {self.site_name} account was locked",
            what + "Nothing was lost: no code was accepted. If it was not you and it keeps "
            "happening, sign out your other devices from your account page.\n",
        )

    async def succeeded(self, user_id: str, kind: str = "user_code") -> None:
        """A right code of ``kind`` ends that kind's streak (writes only when there is one)."""
        await self.store.reset_code_failures(user_id, kind=kind)
