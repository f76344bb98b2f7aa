"""Wiring: builds every service from the settings. The web app and the CLI share it."""

from __future__ import annotations

from dataclasses import dataclass, field

from qrlogin.accounts.email_login import EmailLogins
from qrlogin.accounts.factors import SecondFactors
from qrlogin.accounts.lockout import AccountGuard
from qrlogin.accounts.passkeys import Passkeys
from qrlogin.accounts.totp import Totp
from qrlogin.config import Settings
from qrlogin.core.clock import Clock, SystemClock
from qrlogin.core.policy import Policy
from qrlogin.events.memory import MemoryBus
from qrlogin.events.port import EventBus
from qrlogin.events.postgres import PostgresBus
from qrlogin.events.redis import RedisBus
from qrlogin.handshake.service import LoginRequests
from qrlogin.identity.ports import ApproverIdentity, CodeFailures, SessionStarter
from qrlogin.limiter import UNLIMITED, Limits, RateLimiter
from qrlogin.mail import Mailer, OutboxMailer, SmtpMailer, parse_smtp_url
from qrlogin.metrics import Metrics
from qrlogin.oauth.device import PollGate
from qrlogin.oauth.keys import SigningKeys
from qrlogin.oauth.provider import OpenIDProvider
from qrlogin.sessions.identity import BuiltinIdentity
from qrlogin.sessions.service import SessionService
from qrlogin.store.engine import make_engine
from qrlogin.store.sql import SqlStore

ID_TOKEN_LIFETIME = 3600.0


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
    identity: BuiltinIdentity  # the built-in adapter of the identity ports
    embedded: bool  # the handshake uses a host app's identity adapters, not the built-in ones
    login_requests: LoginRequests
    email_logins: EmailLogins
    limiter: RateLimiter
    guard: AccountGuard
    metrics: Metrics
    factors: SecondFactors
    totp: Totp
    passkeys: Passkeys
    outbox: OutboxMailer | None = field(default=None)
    oauth: OpenIDProvider | None = field(default=None)  # standalone only


def make_bus(settings: Settings, metrics: Metrics) -> EventBus:
    """In-process events for one instance; Redis pub/sub or LISTEN/NOTIFY for many."""
    kind = settings.event_bus
    if kind == "redis" and settings.redis_url:
        return RedisBus(settings.redis_url, settings.redis_prefix, metrics.bus_errors.inc)
    if kind == "postgres":
        prefix = settings.redis_prefix.replace(":", "_").replace("-", "_")
        return PostgresBus(settings.resolved_database_url, prefix, metrics.bus_errors.inc)
    return MemoryBus()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    approvers: ApproverIdentity | None = None,
    sessions: SessionStarter | None = None,
    failures: CodeFailures | None = None,
) -> Services:
    """Every service, wired. With ``approvers`` and ``sessions`` (embedded mode) the
    handshake asks the host app who approves and lets it start the requester's session;
    without them it uses the built-in accounts and sessions for both."""
    if (approvers is None) != (sessions is None):
        raise ValueError("pass both identity adapters (approvers and sessions), or neither")
    clock = clock or SystemClock()
    policy = policy or Policy(
        session_lifetime=float(settings.session_lifetime),
        session_idle_timeout=float(settings.session_idle_timeout),
    )
    key = settings.key_bytes()
    store = SqlStore(make_engine(settings.resolved_database_url))
    metrics = Metrics()
    bus = make_bus(settings, metrics)
    outbox: OutboxMailer | None = None
    mailer: Mailer
    if settings.smtp_url:
        mailer = SmtpMailer(
            parse_smtp_url(settings.smtp_url, settings.smtp_username, settings.smtp_password),
            settings.smtp_from,
        )
    else:
        mailer = outbox = OutboxMailer()
    builtin_sessions = SessionService(
        store, clock, policy, bus, mailer, key, settings.site_name, settings.public_url
    )
    names = settings.cookie_names
    identity = BuiltinIdentity(
        builtin_sessions, cookie_name=names.session, cookie_path=names.path, https=settings.https
    )
    limiter = RateLimiter(
        Limits() if settings.rate_limits else UNLIMITED,
        redis_url=settings.redis_url,
        prefix=settings.redis_prefix,
        on_error=metrics.bus_errors.inc,
        on_refusal=lambda rule: metrics.rate_limit_refusals.labels(rule).inc(),
        ipv6_prefix=settings.ipv6_prefix,
    )
    guard = AccountGuard(store, mailer, clock, policy, settings.site_name, builtin_sessions)
    factors = SecondFactors(
        store,
        identity,
        mailer,
        clock,
        policy,
        site_name=settings.site_name,
        public_url=settings.public_url,
        step_up=settings.approve_step_up,
    )
    totp = Totp(store, factors, clock, policy, key, site_name=settings.site_name)
    factors.codes = totp
    passkeys = Passkeys(
        store,
        factors,
        clock,
        policy,
        rp_id=settings.rp_id,
        rp_name=settings.site_name,
        origin=settings.origin,
    )
    embedded = approvers is not None
    login_requests = LoginRequests(
        store,
        bus,
        approvers or identity,
        sessions or identity,
        clock,
        policy,
        key,
        public_url=settings.public_url,
        confirm=settings.confirm,
        user_code_format=settings.user_code_format,
        limiter=limiter,
        failures=failures if embedded else guard,
        step_up=None if embedded else factors,
    )
    # a revoked built-in session ends the approvals it gave (a host app calls
    # QRLogin.session_ended for its own sessions)
    builtin_sessions.on_revoked = login_requests.end_approvals_of
    email_logins = EmailLogins(
        store,
        identity,
        mailer,
        clock,
        policy,
        key,
        settings.public_url,
        settings.site_name,
        limiter,
        guard,
        factors,
    )
    oauth = None
    if not embedded:
        oauth = OpenIDProvider(
            store,
            builtin_sessions,
            login_requests,
            SigningKeys(store, clock, key, token_lifetime=ID_TOKEN_LIFETIME),
            PollGate(settings.device_poll_interval, settings.redis_url, settings.redis_prefix),
            clock,
            policy,
            issuer=settings.public_url,
            site_name=settings.site_name,
            id_token_lifetime=ID_TOKEN_LIFETIME,
        )
    return Services(
        settings=settings,
        clock=clock,
        policy=policy,
        key=key,
        store=store,
        bus=bus,
        mailer=mailer,
        sessions=builtin_sessions,
        identity=identity,
        embedded=embedded,
        login_requests=login_requests,
        email_logins=email_logins,
        limiter=limiter,
        guard=guard,
        metrics=metrics,
        factors=factors,
        totp=totp,
        passkeys=passkeys,
        outbox=outbox,
        oauth=oauth,
    )
