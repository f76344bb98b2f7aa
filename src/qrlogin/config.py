"""Settings, read from ``QRLOGIN_*`` environment variables or a TOML file."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

ConfirmPolicy = Literal["code", "tap", "auto"]
CONFIRM_POLICIES: tuple[ConfirmPolicy, ...] = ("code", "tap", "auto")
StepUpPolicy = Literal["always", "recent", "off"]
STEP_UP_POLICIES: tuple[StepUpPolicy, ...] = ("always", "recent", "off")


@dataclass(frozen=True)
class CookieNames:
    """The names of qrlogin's cookies. Over https at the root of a site they carry the
    ``__Host-`` prefix (bound to this exact origin and path ``/``); mounted under a path
    (embedded mode) ``__Secure-``, since ``__Host-`` cookies must have path ``/``."""

    session: str
    requester: str
    browser: str
    csrf: str
    path: str = "/"
    hold: str = "qrl_hold"  # a phone signing in before it approves (``ApproverFlows.hold``)

    @classmethod
    def for_https(cls, https: bool, path: str = "/", stem: str = "qrl_") -> CookieNames:
        # browsers refuse either prefix on http
        prefix = ("__Host-" if path == "/" else "__Secure-") if https else ""
        return cls(
            session=f"{prefix}{stem}session",
            requester=f"{prefix}{stem}requester",
            browser=f"{prefix}{stem}browser",
            csrf=f"{prefix}{stem}csrf",
            path=path,
            hold=f"{prefix}{stem}hold",
        )


class ConfigError(ValueError):
    """A setting has a value qrlogin cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured. Field names are the variables without ``QRLOGIN_``."""

    data_dir: Path = Path(".qrlogin")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "qrlogin"  # keys and channels; lets deployments share one Redis
    events: Literal["memory", "redis", "postgres"] | None = None  # None: redis if configured
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    smtp_url: str | None = None
    smtp_from: str = "qrlogin <no-reply@localhost>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    confirm: ConfirmPolicy = "code"
    user_code_format: Literal["digits", "base20"] = "digits"
    trusted_proxies: tuple[str, ...] = ()
    ipv6_prefix: int = 64  # per-address limits count an IPv6 client's network of this size
    # `qrlogin serve`, per process (web/serving.py): seconds, and open connections
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    max_connections: int = 4096
    session_lifetime: int = 30 * 24 * 3600
    session_idle_timeout: int = 14 * 24 * 3600
    dev: bool = False
    rate_limits: bool = True
    site_name: str = "qrlogin"
    # embedded mode: where an approver who is not signed in is sent, "{next}" standing for
    # the page to come back to (unset: the built-in /signin)
    signin_url: str | None = None
    cookie_stem: str = "qrl_"  # cookie names start with it (after __Host-/__Secure-)
    # the OpenID Provider: seconds a device grant's client waits between token polls
    device_poll_interval: float = 5.0
    # approving a sign-in asks the approver for its second factor first: every time, unless
    # it did within the last 5 minutes, or never (accounts/factors.py)
    approve_step_up: StepUpPolicy = "recent"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.confirm not in CONFIRM_POLICIES:
            allowed = ", ".join(CONFIRM_POLICIES)
            raise ConfigError(f"QRLOGIN_CONFIRM must be one of {allowed}, not {self.confirm!r}")
        if not self.public_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"QRLOGIN_PUBLIC_URL must start with http:// or https://, not {self.public_url!r}"
            )
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        if self.approve_step_up not in STEP_UP_POLICIES:
            allowed = ", ".join(STEP_UP_POLICIES)
            raise ConfigError(
                f"QRLOGIN_APPROVE_STEP_UP must be one of {allowed}, not {self.approve_step_up!r}"
            )
        if self.event_bus == "redis" and not self.redis_url:
            raise ConfigError("QRLOGIN_EVENTS=redis needs QRLOGIN_REDIS_URL")
        if self.event_bus == "postgres" and not self.resolved_database_url.startswith("postgres"):
            raise ConfigError("QRLOGIN_EVENTS=postgres needs a PostgreSQL QRLOGIN_DATABASE_URL")
        if self.smtp_url:
            from qrlogin.mail import parse_smtp_url

            try:
                parse_smtp_url(self.smtp_url)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.event_bus not in ("memory", "redis", "postgres"):
            raise ConfigError("QRLOGIN_EVENTS must be one of memory, redis, postgres")
        for name in ("header_timeout", "body_timeout", "keepalive_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"QRLOGIN_{name.upper()} must be a positive number of seconds")
        if not self.device_poll_interval >= 0:
            raise ConfigError(
                "QRLOGIN_DEVICE_POLL_INTERVAL must be a number of seconds (0 or more)"
            )
        if self.max_connections < 1:
            raise ConfigError("QRLOGIN_MAX_CONNECTIONS must be at least 1")
        if not 1 <= self.ipv6_prefix <= 128:
            raise ConfigError("QRLOGIN_IPV6_PREFIX must be a prefix length from 1 to 128")
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def event_bus(self) -> str:
        return self.events or ("redis" if self.redis_url else "memory")

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def base_path(self) -> str:
        """The path qrlogin is served under: ``""`` at a site's root, ``"/qr"`` when a host
        mounts it there (taken from the public URL, like every link)."""
        return urlsplit(self.public_url).path.rstrip("/")

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying party id: the public URL's host."""
        return urlsplit(self.public_url).hostname or "localhost"

    @property
    def origin(self) -> str:
        """The public URL's origin (scheme, host, port): what WebAuthn checks."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def cookie_names(self) -> CookieNames:
        return CookieNames.for_https(self.https, self.base_path or "/", self.cookie_stem)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'qrlogin.db').resolve()}"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def key_bytes(self) -> bytes:
        """The server key: configured, or generated once into the data dir and kept."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


_BOOL_TRUE = {"1", "true", "yes", "on"}  # anything else ("0", "off", "false") is false


def _coerce(name: str, raw: Any) -> Any:
    if name in {"dev", "rate_limits"}:
        return raw if isinstance(raw, bool) else str(raw).lower() in _BOOL_TRUE
    if name in {"header_timeout", "body_timeout", "keepalive_timeout", "device_poll_interval"}:
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"QRLOGIN_{name.upper()} must be a number of seconds") from exc
    if name in {"session_lifetime", "session_idle_timeout", "ipv6_prefix", "max_connections"}:
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"QRLOGIN_{name.upper()} must be a whole number") from exc
    if name == "trusted_proxies":
        if isinstance(raw, list | tuple):
            return tuple(str(x) for x in raw)
        return tuple(p.strip() for p in str(raw).split(",") if p.strip())
    if name == "data_dir":
        return Path(raw)
    return raw


def load_settings(
    config_file: Path | None = None, env: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from a TOML file, then ``QRLOGIN_*`` variables, then explicit overrides."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    names = {f.name for f in fields(Settings)} - {"extra"}
    if config_file is not None:
        with open(config_file, "rb") as f:
            data = tomllib.load(f)
        for key, raw in data.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[key] = _coerce(key, raw)
    for name in names:
        raw = env.get(f"QRLOGIN_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw)
    for key, raw in overrides.items():
        if raw is not None:
            values[key] = raw
    return Settings(**values)
