"""Passwordless first-device sign-in by email: a 6-digit code and a link in one mail.

The link's GET only shows a confirm page (mail scanners prefetch links); its POST consumes
atomically (DESIGN.md requirement 8). A link opened in another browser hands the sign-in to the
browser that asked, which collects it while it waits.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from qrlogin.accounts.factors import STEP_UP_METHODS, SecondFactors, bound_to_hash
from qrlogin.accounts.lockout import AccountGuard
from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidCode, InvalidRequest, SecondFactorRequired
from qrlogin.core.policy import Policy
from qrlogin.core.redirects import safe_redirect_path
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
        factors: SecondFactors | None = None,
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
        self.factors = factors

    async def start(
        self, raw_email: str, device: Device, browser_token: str | None, next_url: str | None
    ) -> None:
        """Send one mail with a code and a link. Same reply whether or not the account exists."""
        email = normalize_email(raw_email)
        browser_hash = sha256_hex(browser_token) if browser_token else None
        # each browser (each IP, without a browser cookie) has its own budget for an address;
        # the address's ceiling, which a stranger can spend, binds only browsers that never
        # signed in to it, so the owner's own browser still gets codes (requirement 12)
        ip_key = self.limiter.ip_key(device.ip)
        checks = [
            ("email_start_per_ip", (ip_key,)),
            ("email_start_per_address_browser", (email, browser_hash or f"ip:{ip_key}")),
        ]
        if not await self._known(email, browser_hash):
            checks.append(("email_start_per_address", (email,)))
        checks.append(("email_start_global", ()))
        await self.limiter.reserve_all(*checks)
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
                browser_hash=browser_hash,
                user_agent=device.user_agent[:500],
                ip=device.ip[:64],
                created_at=now,
                expires_at=now + self.policy.email_code_lifetime,
                next=safe_redirect_path(next_url),  # whoever calls, only a path is kept
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

    async def _known(self, email: str, browser_hash: str | None) -> bool:
        """Whether this browser completed an email sign-in for ``email`` lately."""
        if browser_hash is None:
            return False
        since = self.clock.now() - self.policy.known_browser_lifetime
        return await self.store.browser_is_known(email, browser_hash, since)

    def _new_user(self, email: str) -> User:
        return User(
            id=new_id("usr"),
            email=email,
            display_name=email.split("@", 1)[0],
            created_at=self.clock.now(),
        )

    async def _complete(
        self,
        login: EmailLogin,
        device: Device,
        browser_hash: str | None,
        *,
        picked_up: bool = False,
        api: bool = False,
    ) -> tuple[User, StartedSession] | None:
        """Consume the email login and write the new device's session, in one transaction
        (the conditional write a race has one winner of); ``None`` when it was lost. The
        browser that signed in (``browser_hash``, when it has a cookie) becomes known to the
        address as the owner's (requirement 12).

        For an account with a second factor the email login is consumed with an mfa token
        in place of a session, and ``SecondFactorRequired`` carries the token."""
        user = await self.store.user_by_email(login.email)
        if user is None:  # first sign-in: the account is made first (a no-op if it wins)
            user = await self.store.ensure_user(self._new_user(login.email))
        methods = await self.factors.methods(user.id) if self.factors is not None else []
        if self.factors is not None and any(m in STEP_UP_METHODS for m in methods):
            bound_to = bound_to_hash(browser_hash, self.limiter.ip_key(device.ip))
            token, challenge = self.factors.mfa_challenge(
                user, bound_to, api=api, next_url=login.next
            )
            done = await self.store.complete_email_login(
                login.id,
                self.clock.now(),
                self.policy.code_attempts,
                None,
                picked_up=picked_up,
                challenge=challenge,
            )
            if not done:
                return None
            if browser_hash is not None:
                await self.store.remember_browser(user.email, browser_hash, self.clock.now())
            raise SecondFactorRequired(token, methods)
        grant = SessionGrant(user_id=user.id, device=device, linked_by="email", api=api)
        rows, started = await self.sessions.prepare_session(grant)
        done = await self.store.complete_email_login(
            login.id, self.clock.now(), self.policy.code_attempts, rows, picked_up=picked_up
        )
        if not done:
            return None
        if browser_hash is not None:
            await self.store.remember_browser(user.email, browser_hash, self.clock.now())
        await self.sessions.session_started(grant, started, rows)
        return user, started

    async def verify_code(
        self,
        raw_email: str,
        raw_code: str,
        device: Device,
        browser_token: str | None,
        *,
        api: bool = False,
    ) -> StartedSession:
        """A session for the right code; one and the same refusal for every failure.

        Only the code this browser asked for is tried (by IP, for an asker without a browser
        cookie): a wrong code counts against that code and this browser's IP, and against the
        account's email-code streak, never against a code someone else is waiting for."""
        email = normalize_email(raw_email)
        await self.limiter.reserve_all(
            ("email_verify_per_ip", (self.limiter.ip_key(device.ip),)),
            ("email_verify_global", ()),
        )
        browser_hash = sha256_hex(browser_token) if browser_token else None
        user = await self.store.user_by_email(email)
        if user is not None:
            known = await self._known(email, browser_hash)
            await self.guard.check_email_sign_in(user, known_browser=known)
        now = self.clock.now()
        login = await self.store.latest_email_login(
            email, browser_hash, device.ip, now, self.policy.code_attempts
        )
        if login is None:
            raise InvalidCode()  # this browser asked for no code: there is nothing to guess
        code = normalize_code(raw_code)
        right = constant_time_equal(login.code_hmac, code_hmac(self.key, code, login.id))
        done = await self._complete(login, device, browser_hash, api=api) if right else None
        if done is None:
            if not right:
                # one activity row per failure: on the account when there is one
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
        if done[0].email_code_streak:
            await self.guard.succeeded(done[0].id, "email_code")
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
            here = sha256_hex(browser_token) if browser_token else None
            done = await self._complete(info.login, device, here)
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
        done = await self._complete(login, device, login.browser_hash, picked_up=True)
        return done[1] if done else None
