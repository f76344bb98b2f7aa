"""ID token signing keys: generated into the store (their private half encrypted under the
server key, so a database dump cannot sign), published at ``/oauth/jwks`` by ``kid``, rotated
with the old key kept for verification until the last token it signed has expired. Every
JOSE operation is joserfc's."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters, KeySet, OctKey, RSAKey

from qrlogin.core.clock import Clock
from qrlogin.core.tokens import new_id
from qrlogin.store.ports import OAuthStore
from qrlogin.store.records import SigningKey

ALGORITHMS = ("RS256", "ES256")  # RS256 signs by default (OpenID Connect Core §15.1)
CACHE_SECONDS = 60.0  # a key rotated by another process is picked up within this


def _generate(alg: str, kid: str) -> RSAKey | ECKey:
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")


class SigningKeys:
    def __init__(
        self, store: OAuthStore, clock: Clock, server_key: bytes, *, token_lifetime: float
    ) -> None:
        self.store = store
        self.clock = clock
        # the private JWKs are stored as JWE (dir, A256GCM) under a key derived from the
        # server key, which never goes into the database
        wrap = hashlib.sha256(b"qrlogin signing keys\x00" + server_key).digest()
        self._wrap = OctKey.import_key(wrap)
        self.token_lifetime = token_lifetime
        self._cache: tuple[float, list[SigningKey]] | None = None

    def _seal(self, key: RSAKey | ECKey) -> str:
        plain = json.dumps(key.as_dict(private=True)).encode()
        return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, plain, self._wrap)

    def _open(self, record: SigningKey) -> RSAKey | ECKey:
        plain = jwe.decrypt_compact(record.private_jwk, self._wrap).plaintext or b""
        data = json.loads(plain)
        return RSAKey.import_key(data) if record.alg == "RS256" else ECKey.import_key(data)

    async def create(self, alg: str, *, rotate: bool) -> SigningKey:
        """A new key for ``alg``. With ``rotate`` it replaces the current one, which stays
        published (verifying, not signing) until the tokens it signed have expired."""
        now = self.clock.now()
        kid = new_id(alg.lower())
        key = _generate(alg, kid)
        record = SigningKey(
            kid=kid,
            alg=alg,
            private_jwk=self._seal(key),
            public_jwk=json.dumps(key.as_dict(private=False)),
            created_at=now,
        )
        # a margin over the tokens' lifetime for clocks and caches (CACHE_SECONDS)
        keep = self.token_lifetime + 2 * CACHE_SECONDS if rotate else None
        await self.store.add_signing_key(record, keep)
        self._cache = None
        return record

    async def _keys(self) -> list[SigningKey]:
        now = self.clock.now()
        if self._cache is not None and now - self._cache[0] < CACHE_SECONDS:
            return self._cache[1]
        keys = await self.store.signing_keys(now)
        for alg in ALGORITHMS:  # the first use generates what is missing
            if not any(k.alg == alg and k.retired_at is None for k in keys):
                await self.create(alg, rotate=False)
                keys = await self.store.signing_keys(now)
        self._cache = (now, keys)
        return keys

    async def jwks(self) -> dict[str, Any]:
        """The public keys, current and retired-but-live (RFC 7517 JWK Set)."""
        return {"keys": [json.loads(k.public_jwk) for k in await self._keys()]}

    async def sign(self, claims: dict[str, Any], alg: str = "RS256") -> str:
        """A JWT of ``claims`` signed with the current key of ``alg``."""
        record = next(k for k in await self._keys() if k.alg == alg and k.retired_at is None)
        return jwt.encode({"alg": alg, "kid": record.kid, "typ": "JWT"}, claims, self._open(record))

    async def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a JWT this provider signed (any published key), or ``None`` when its
        signature does not verify. Expiry is not checked: callers decide (an
        ``id_token_hint`` may have expired, OIDC RP-Initiated Logout §2)."""
        keyset = KeySet.import_key_set(await self.jwks())  # type: ignore[arg-type]
        try:
            decoded = jwt.decode(token, keyset, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError, TypeError, KeyError):
            return None
        return dict(decoded.claims)
