"""Passwordless first-device sign-in by email: a 6-digit code and a link in one mail.

The link's GET only shows a confirm page (mail scanners prefetch links); its POST consumes
atomically (DESIGN.md requirement 8). A link opened in another browser hands the sign-in to the
browser that asked, which collects it while it waits.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from qrlogin.accounts.lockout import AccountGuard
from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidCode, InvalidRequest
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import (
    code_hmac,
    constant_time_equal,
    new_digits,
    new_id,
    new_secret,
    normalize_code,
    sha256_hex,
)
from qrlogin.identity.device import Device
from qrlogin.identity.ports import SessionGrant, StartedSession, StoredSessionStarter
from qrlogin.limiter import RateLimiter
from qrlogin.mail import Mail, Mailer
from qrlogin.store.ports import AccountStore
from qrlogin.store.records import AuditEntry, EmailLogin, User

log = logging.getLogger("qrlogin.accounts")

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidRequest("That does not look like an email address. Check it and try again.")
    return email


@dataclass(frozen=True)
class LinkInfo:
    login: EmailLogin
    same_browser: bool


class EmailLogins:
    def __init__(
        self,
        store: AccountStore,
        sessions: StoredSessionStarter,
        mailer: Mailer,
        clock: Clock,
        policy: Policy,
        key: bytes,
        public_url: str,
        site_name: str,
        limiter: RateLimiter,
        guard: AccountGuard,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.mailer = mailer
        self.clock = clock
        self.policy = policy
        self.key = key
        self.public_url = public_url
        self.site_name = site_name
        self.limiter = limiter
        self.guard = guard

    async def start(
        self, raw_email: str, device: Device, browser_token: str | None, next_url: str | None
    ) -> None:
        """Send one mail with a code and a link. Same reply whether or not the account exists."""
        email = normalize_email(raw_email)
        await self.limiter.reserve_all(
            ("email_start_per_ip", (device.ip,)),
            ("email_start_per_address", (email,)),
            ("email_start_global", ()),
        )
        now = self.clock.now()
        code = new_digits(6)
        link_token = new_secret()
        login_id = new_id("em")
        await self.store.insert_email_login(
            EmailLogin(
                id=login_id,
                email=email,
                code_hmac=code_hmac(self.key, code, login_id),
                link_hash=sha256_hex(link_token),
                browser_hash=sha256_hex(browser_token) if browser_token else None,
                user_agent=device.user_agent[:500],
                ip=device.ip[:64],
                created_at=now,
                expires_at=now + self.policy.email_code_lifetime,
                next=next_url,
            )
        )
        minutes = int(self.policy.email_code_lifetime // 60)
        text = (
            f"Your {self.site_name} sign-in code is {code}\n\n"
            f"Or open this link to sign in:\n{self.public_url}/auth/email/{link_token}\n\n"
            f"The code and the link work once and expire in {minutes} minutes.\n"
            "If you did not ask to sign in, ignore this mail: nobody can sign in without it.\n"
        )
        await self.mailer.send(Mail(email, f"{code} is your {self.site_name} sign-in code", text))

    def _new_user(self, email: str) -> User:
        return User(
            id=new_id("usr"),
            email=email,
            display_name=email.split("@", 1)[0],
            created_at=self.clock.now(),
        )

    async def _complete(
        self, login: EmailLogin, device: Device, *, picked_up: bool = False, api: bool = False
    ) -> tuple[User, StartedSession] | None:
        """Consume the email login and write the new device's session, in one transaction
        (the conditional write a race has one winner of); ``None`` when it was lost."""
        user = await self.store.user_by_email(login.email)
        if user is None:  # first sign-in: the account is made first (a no-op if it wins)
            user = await self.store.ensure_user(self._new_user(login.email))
        grant = SessionGrant(user_id=user.id, device=device, linked_by="email", api=api)
        rows, started = await self.sessions.prepare_session(grant)
        done = await self.store.complete_email_login(
            login.id, self.clock.now(), self.policy.code_attempts, rows, picked_up=picked_up
        )
        if not done:
            return None
        await self.sessions.session_started(grant, started)
        return user, started

    async def verify_code(
        self, raw_email: str, raw_code: str, device: Device, *, api: bool = False
    ) -> StartedSession:
        """A session for the right code; one and the same refusal for every failure."""
        email = normalize_email(raw_email)
        await self.limiter.reserve_all(
            ("email_verify_per_ip", (device.ip,)), ("email_verify_global", ())
        )
        user = await self.store.user_by_email(email)
        if user is not None:
            await self.guard.check_user(user)
        now = self.clock.now()
        login = await self.store.latest_email_login(email, now, self.policy.code_attempts)
        code = normalize_code(raw_code)
        right = login is not None and constant_time_equal(
            login.code_hmac, code_hmac(self.key, code, login.id)
        )
        done = None
        if login is not None and right:
            done = await self._complete(login, device, api=api)
        if done is None:
            # one activity row per failure: on the account when there is one
            if login is not None and not right:
                failure = AuditEntry(
                    event="code.failed",
                    created_at=now,
                    ip=device.ip,
                    user_agent=device.user_agent,
                    detail="email_code",
                )
                await self.store.fail_email_code(login.id, None if user else failure)
            if user is not None:
                await self.guard.failed(user.id, "email_code", device.ip, device.user_agent)
            raise InvalidCode()
        if done[0].failed_code_streak:
            await self.guard.succeeded(done[0].id)
        return done[1]

    async def link(self, link_token: str, browser_token: str | None) -> LinkInfo | None:
        """Look at a link without using it (GET)."""
        login = await self.store.email_login_by_link(
            sha256_hex(link_token), self.clock.now(), self.policy.code_attempts
        )
        if login is None:
            return None
        same = bool(
            browser_token
            and login.browser_hash
            and constant_time_equal(login.browser_hash, sha256_hex(browser_token))
        )
        return LinkInfo(login, same)

    async def confirm_link(
        self, link_token: str, browser_token: str | None, device: Device
    ) -> tuple[StartedSession | None, LinkInfo | None]:
        """POST of the link. In the browser that asked: a session here. Elsewhere: hand off to
        the asking browser (``(None, info)``). Unknown or used: ``(None, None)``."""
        info = await self.link(link_token, browser_token)
        if info is None:
            return None, None
        if info.same_browser or info.login.browser_hash is None:
            done = await self._complete(info.login, device)
            if done is None:  # a lost race: the link was used
                return None, None
            return done[1], info
        ok = await self.store.confirm_email_login_elsewhere(
            info.login.id, self.clock.now(), self.policy.code_attempts
        )
        return None, (info if ok else None)

    async def pick_up(self, browser_token: str | None, device: Device) -> StartedSession | None:
        """The asking browser collects a sign-in confirmed by link on another device."""
        if not browser_token:
            return None
        login = await self.store.email_login_confirmed_for_browser(
            sha256_hex(browser_token), self.clock.now()
        )
        if login is None:
            return None
        done = await self._complete(login, device, picked_up=True)
        return done[1] if done else None
