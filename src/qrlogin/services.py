"""Wiring: builds every service from the settings. The web app and the CLI share it."""

from __future__ import annotations

from dataclasses import dataclass, field

from qrlogin.accounts.email_login import EmailLogins
from qrlogin.accounts.lockout import AccountGuard
from qrlogin.accounts.mail import Mailer, OutboxMailer, SmtpMailer, parse_smtp_url
from qrlogin.config import Settings
from qrlogin.core.clock import Clock, SystemClock
from qrlogin.core.policy import Policy
from qrlogin.events.memory import MemoryBus
from qrlogin.events.port import EventBus
from qrlogin.handshake.service import LoginRequests
from qrlogin.limiter import UNLIMITED, Limits, RateLimiter
from qrlogin.sessions.service import SessionService
from qrlogin.store.engine import make_engine
from qrlogin.store.sql import SqlStore


@dataclass
class Services:
    settings: Settings
    clock: Clock
    policy: Policy
    key: bytes
    store: SqlStore
    bus: EventBus
    mailer: Mailer
    sessions: SessionService
    login_requests: LoginRequests
    email_logins: EmailLogins
    limiter: RateLimiter
    guard: AccountGuard
    outbox: OutboxMailer | None = field(default=None)


def build_services(
    settings: Settings, *, clock: Clock | None = None, policy: Policy | None = None
) -> Services:
    clock = clock or SystemClock()
    policy = policy or Policy(
        session_lifetime=float(settings.session_lifetime),
        session_idle_timeout=float(settings.session_idle_timeout),
    )
    key = settings.key_bytes()
    store = SqlStore(make_engine(settings.resolved_database_url))
    bus: EventBus = MemoryBus()
    outbox: OutboxMailer | None = None
    mailer: Mailer
    if settings.smtp_url:
        mailer = SmtpMailer(
            parse_smtp_url(settings.smtp_url, settings.smtp_username, settings.smtp_password),
            settings.smtp_from,
        )
    else:
        mailer = outbox = OutboxMailer()
    sessions = SessionService(
        store, clock, policy, bus, mailer, key, settings.site_name, settings.public_url
    )
    limiter = RateLimiter(Limits() if settings.rate_limits else UNLIMITED)
    guard = AccountGuard(store, mailer, clock, policy, settings.site_name, sessions)
    login_requests = LoginRequests(
        store,
        bus,
        sessions,
        clock,
        policy,
        key,
        public_url=settings.public_url,
        confirm=settings.confirm,
        user_code_format=settings.user_code_format,
        limiter=limiter,
        guard=guard,
    )
    email_logins = EmailLogins(
        store,
        sessions,
        mailer,
        clock,
        policy,
        key,
        settings.public_url,
        settings.site_name,
        limiter,
        guard,
    )
    return Services(
        settings=settings,
        clock=clock,
        policy=policy,
        key=key,
        store=store,
        bus=bus,
        mailer=mailer,
        sessions=sessions,
        login_requests=login_requests,
        email_logins=email_logins,
        limiter=limiter,
        guard=guard,
        outbox=outbox,
    )
