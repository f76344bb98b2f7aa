"""Registered clients: registration, redirect URI matching and client authentication."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from qrlogin.core.tokens import constant_time_equal, new_id, new_secret, sha256_hex
from qrlogin.oauth.errors import InvalidClient
from qrlogin.store.ports import OAuthStore
from qrlogin.store.records import OAuthClient

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def check_redirect_uri(uri: str) -> str:
    """A redirect URI a client may register: absolute, no fragment (RFC 6749 §3.1.2), https
    or http (loopback and development), or a private-use scheme of a native app (RFC 8252
    §7.1, which has a dot in it). Raises ``ValueError`` saying what is wrong."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise ValueError(f"a redirect URI may not have a fragment: {uri!r}")
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"a redirect URI needs a host: {uri!r}")
        return uri
    if parts.scheme and "." in parts.scheme:  # com.example.app:/callback
        return uri
    raise ValueError(
        f"a redirect URI must be an absolute http(s) URL or a reverse-domain app scheme: {uri!r}"
    )


def _loopback(uri: str) -> tuple[str, str, str] | None:
    parts = urlsplit(uri)
    host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    if parts.scheme != "http" or host not in LOOPBACK_HOSTS:
        return None
    return host, parts.path or "/", parts.query


def redirect_uri_allowed(client: OAuthClient, uri: str) -> bool:
    """Exact string match against the registered URIs, except for a public (native) client's
    loopback URIs, where any port is allowed (RFC 8252 §7.3)."""
    if uri in client.redirect_uris:
        return True
    if not client.public:
        return False
    asked = _loopback(uri)
    if asked is None:
        return False
    try:
        urlsplit(uri).port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return any(_loopback(registered) == asked for registered in client.redirect_uris)


@dataclass(frozen=True)
class NewClient:
    client: OAuthClient
    secret: str | None  # the only copy; None for a public client


class Clients:
    """Registered clients, read through a short cache: the token endpoint authenticates its
    client on every poll of a device grant. A client removed with ``qrlogin clients remove``
    (another process) stops working within ``cache_seconds``."""

    def __init__(
        self,
        store: OAuthStore,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, OAuthClient | None]] = {}

    async def get(self, client_id: str) -> OAuthClient | None:
        now = self._monotonic()
        hit = self._cache.get(client_id)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        client = await self.store.get_client(client_id)
        if len(self._cache) > 1000:  # unknown ids must not grow it without bound
            self._cache.clear()
        self._cache[client_id] = (now, client)
        return client

    async def add(
        self,
        name: str,
        redirect_uris: Iterable[str],
        post_logout_redirect_uris: Iterable[str],
        *,
        public: bool,
        first_party: bool,
        now: float,
    ) -> NewClient:
        name = name.strip()
        if not name or len(name) > 100:
            raise ValueError("a client needs a name of 1 to 100 characters")
        uris = tuple(check_redirect_uri(u) for u in redirect_uris)
        logout = tuple(check_redirect_uri(u) for u in post_logout_redirect_uris)
        secret = None if public else new_secret()
        client = OAuthClient(
            id=new_id("cl"),
            name=name,
            redirect_uris=uris,
            post_logout_redirect_uris=logout,
            public=public,
            first_party=first_party,
            created_at=now,
            secret_hash=sha256_hex(secret) if secret else None,
        )
        await self.store.insert_client(client)
        return NewClient(client, secret)

    async def authenticate(self, form: Mapping[str, str], authorization: str | None) -> OAuthClient:
        """The client a token-style request comes from: ``client_secret_basic`` (the
        Authorization header), ``client_secret_post`` (``client_id`` and ``client_secret``
        in the form) or ``none`` (a public client's ``client_id`` alone). One reply for an
        unknown client and a wrong secret."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                raw = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidClient("The Authorization header is malformed.") from None
            basic_id, sep, basic_secret = raw.partition(":")
            if not sep:
                raise InvalidClient("The Authorization header is malformed.")
            # RFC 6749 §2.3.1: both parts are form-urlencoded before base64
            basic_id, basic_secret = (
                unquote(basic_id.replace("+", " ")),
                unquote(basic_secret.replace("+", " ")),
            )
            if (client_id and client_id != basic_id) or secret:
                raise InvalidClient("Use one way of client authentication, not two.")
            client_id, secret = basic_id, basic_secret
        if not client_id:
            raise InvalidClient("Say which client you are (client_id).")
        client = await self.get(client_id)
        if client is None:
            raise InvalidClient()
        if client.secret_hash is None:  # a public client: no secret to check
            if secret:
                raise InvalidClient("This is a public client: it has no secret to send.")
            return client
        if not secret or not constant_time_equal(client.secret_hash, sha256_hex(secret)):
            raise InvalidClient()
        return client
