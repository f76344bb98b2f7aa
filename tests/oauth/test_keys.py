"""Signing keys (oauth/keys.py): generated on first use, the private half sealed under the
server key (a database dump cannot sign), signatures verified against the published set."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from qrlogin.core.clock import FrozenClock
from qrlogin.oauth.keys import SigningKeys
from qrlogin.store.records import SigningKey


class Keys:
    """The two store methods SigningKeys uses, in memory (this tests the keys, not SQL)."""

    def __init__(self) -> None:
        self.rows: list[SigningKey] = []

    async def add_signing_key(self, key: SigningKey, retire_keep: float | None) -> None:
        if retire_keep is not None:
            self.rows = [
                SigningKey(
                    **{
                        **r.to_row(),
                        "retired_at": key.created_at,
                        "expires_at": key.created_at + retire_keep,
                    }
                )
                if r.alg == key.alg and r.retired_at is None
                else r
                for r in self.rows
            ]
        self.rows.append(key)

    async def signing_keys(self, now: float) -> list[SigningKey]:
        live = [r for r in self.rows if r.expires_at is None or r.expires_at > now]
        return sorted(live, key=lambda r: r.created_at, reverse=True)


def keys(store: Keys, clock: FrozenClock, server_key: bytes = b"k" * 32) -> SigningKeys:
    return SigningKeys(store, clock, server_key, token_lifetime=3600)  # type: ignore[arg-type]


async def test_first_use_makes_an_rs256_and_an_es256_key_and_signs_verifiably() -> None:
    store, clock = Keys(), FrozenClock()
    k = keys(store, clock)
    jwks = await k.jwks()
    assert sorted(j["alg"] for j in jwks["keys"]) == ["ES256", "RS256"]
    token = await k.sign({"sub": "u1"})
    claims: dict[str, Any] = dict(
        jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"]).claims
    )
    assert claims == {"sub": "u1"}
    es = await k.sign({"sub": "u2"}, "ES256")
    assert (await k.verify(es)) == {"sub": "u2"}


async def test_the_stored_private_key_is_sealed_and_needs_the_server_key() -> None:
    store, clock = Keys(), FrozenClock()
    k = keys(store, clock)
    token = await k.sign({"sub": "u1"})
    for row in store.rows:
        assert '"d"' not in row.private_jwk and "d" not in json.loads(row.public_jwk)
    # another server key cannot open what is stored (a dump alone cannot sign)
    thief = keys(store, clock, b"x" * 32)
    with pytest.raises(JoseError):  # joserfc cannot open the sealed key
        await thief.sign({"sub": "forged"})
    assert await k.verify(token) == {"sub": "u1"}


async def test_a_forged_or_foreign_token_does_not_verify() -> None:
    store, clock = Keys(), FrozenClock()
    k = keys(store, clock)
    token = await k.sign({"sub": "u1"})
    head, body, sig = token.split(".")
    assert await k.verify(f"{head}.{body}.{sig[:-4]}AAAA") is None
    other = keys(Keys(), clock, b"o" * 32)
    assert await k.verify(await other.sign({"sub": "u1"})) is None
    assert await k.verify("not a jwt") is None


async def test_rotation_signs_with_the_new_key_and_keeps_the_old_until_expiry() -> None:
    store, clock = Keys(), FrozenClock()
    k = keys(store, clock)
    old = await k.sign({"sub": "u1"})
    clock.advance(10)
    new_key = await k.create("RS256", rotate=True)
    new = await k.sign({"sub": "u1"})
    assert (
        json.loads(__import__("base64").urlsafe_b64decode(new.split(".")[0] + "=="))["kid"]
        == new_key.kid
    )
    assert await k.verify(old) == {"sub": "u1"}  # the old key is still published
    clock.advance(3600 + 2 * 60 + 1)  # past the old tokens' lifetime and the caches
    k._cache = None
    assert await k.verify(old) is None
    assert await k.verify(new) == {"sub": "u1"}
