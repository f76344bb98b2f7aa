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
    """The built-in accounts' ``identity.ports.CodeFailures``."""

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

    def _retry_after(self, user: User) -> int | None:
        if user.locked_at is None:
            return None
        left = user.locked_at + self.policy.account_lockout - self.clock.now()
        return int(left) + 1 if left > 0 else None

    async def check(self, user_id: str) -> None:
        """Refuse while the account is locked; clear an expired lock."""
        user = await self.store.get_user(user_id)
        if user is not None:
            await self.check_user(user)

    async def check_user(self, user: User) -> None:
        """``check`` for a user already read."""
        retry = self._retry_after(user)
        if retry is not None:
            raise AccountLocked(retry_after=retry)
        if user.locked_at is not None:
            await self.store.reset_code_failures(user.id)

    async def failed(self, user_id: str, kind: str, ip: str, user_agent: str) -> None:
        """Count a wrong code of ``kind``; on the threshold lock the account, sign out its
        devices and tell its owner."""
        now = self.clock.now()
        entry = AuditEntry(
            event="code.failed",
            created_at=now,
            ip=ip[:64],
            user_agent=user_agent[:500],
            user_id=user_id,
            detail=kind,
        )
        user = await self.store.record_code_failure(
            user_id, now, self.policy.account_failure_lockout, entry
        )
        if user is None or user.locked_at is None:
            return
        if user.failed_code_streak != self.policy.account_failure_lockout:
            return  # only the failure that locked it acts (the streak counts on while locked)
        log.warning("account locked after repeated wrong codes", extra={"user_id": user_id})
        await self.store.audit(replace(entry, event="account.locked", detail=None))
        if kind == "user_code":
            # wrong user codes come from the account's own signed-in sessions: one of them may
            # be stolen, so all are signed out. Wrong email codes anyone can type, so those
            # only lock sign-in and never throw the owner's devices out.
            await self.sessions.revoke_all(user.id, "account_locked", Device("", user_agent, ip))
        minutes = int(self.policy.account_lockout // 60)
        await self.mailer.send(
            Mail(
                user.email,
                f"Your {self.site_name} account was locked",
                f"Someone typed {self.policy.account_failure_lockout} wrong codes in a row for "
                f"your {self.site_name} account, so we locked it for {minutes} minutes.\n\n"
                "If that was not you, nothing was lost: no code was accepted. If it keeps "
                "happening, sign out your other devices from your account page.\n",
            )
        )

    async def succeeded(self, user_id: str) -> None:
        await self.store.reset_code_failures(user_id)  # writes only when there is a streak
