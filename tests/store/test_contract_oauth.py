"""The contract of ``OAuthStore`` (store/ports.py) on SQLite and PostgreSQL: clients read back
as registered, a code is redeemed once (with its grant's session in the same transaction),
rotated signing keys stay published until they expire, consents are one per user and client,
and a refresh token names its session."""

from __future__ import annotations

from qrlogin.store.records import (
    AuthorizationCode,
    Consent,
    NewSessionRows,
    OAuthClient,
    SigningKey,
)
from qrlogin.store.sql import SqlStore

from .contract_support import (
    NOW,
    RACERS,
    entry,
    hash64,
    login_request,
    race,
    refresh_token,
    session,
    uid,
)


def client(**fields: object) -> OAuthClient:
    values: dict[str, object] = {
        "id": uid(),
        "name": "Photo Shop",
        "redirect_uris": ("https://shop.example/cb", "http://127.0.0.1/cb"),
        "post_logout_redirect_uris": ("https://shop.example/",),
        "public": False,
        "first_party": True,
        "created_at": NOW,
        "secret_hash": hash64(),
    }
    values.update(fields)
    return OAuthClient(**values)  # type: ignore[arg-type]


def code(**fields: object) -> AuthorizationCode:
    values: dict[str, object] = {
        "code_hash": hash64(),
        "client_id": uid(),
        "user_id": uid(),
        "browser_session_id": uid(),
        "redirect_uri": "https://shop.example/cb",
        "scope": "openid email",
        "auth_time": NOW - 10,
        "amr": "qr",
        "created_at": NOW,
        "expires_at": NOW + 60,
        "nonce": "n-1",
        "code_challenge": "x" * 43,
    }
    values.update(fields)
    return AuthorizationCode(**values)  # type: ignore[arg-type]


def grant_rows(user_id: str) -> NewSessionRows:
    new = session(user_id, client_id=uid(), scope="openid", access_expires_at=NOW + 600)
    return NewSessionRows(new, refresh_token(new.id), entry("session.created", user_id))


async def test_a_client_reads_back_as_registered_and_is_removed_once(store: SqlStore) -> None:
    made = client()
    public = client(public=True, first_party=False, secret_hash=None)
    await store.insert_client(made)
    await store.insert_client(public)
    assert await store.get_client(made.id) == made
    assert await store.get_client(public.id) == public
    assert {c.id for c in await store.list_clients()} >= {made.id, public.id}
    assert await store.delete_client(made.id) is True
    assert await store.delete_client(made.id) is False
    assert await store.get_client(made.id) is None


async def test_a_code_is_redeemed_by_exactly_one_of_many_racers(store: SqlStore) -> None:
    issued = code()
    await store.insert_code(issued)
    rows = [grant_rows(issued.user_id) for _ in range(RACERS)]
    won = await race(RACERS, lambda i: store.redeem_code(issued.code_hash, NOW + 1, rows[i]))
    assert won.count(True) == 1
    winner = rows[won.index(True)].session
    used = await store.get_code(issued.code_hash)
    assert used is not None and used.used_at == NOW + 1 and used.session_id == winner.id
    # only the winner's session was written, in the same transaction
    written = [await store.get_session(r.session.id) for r in rows]
    assert [s.id for s in written if s is not None] == [winner.id]


async def test_an_expired_code_is_not_redeemed_and_writes_no_session(store: SqlStore) -> None:
    issued = code(expires_at=NOW + 60)
    await store.insert_code(issued)
    rows = grant_rows(issued.user_id)
    assert await store.redeem_code(issued.code_hash, NOW + 60, rows) is False
    assert await store.get_session(rows.session.id) is None
    assert (await store.get_code(issued.code_hash)).used_at is None  # type: ignore[union-attr]


async def test_a_rotated_key_stays_published_until_it_expires(store: SqlStore) -> None:
    def key(alg: str, at: float) -> SigningKey:
        return SigningKey(kid=uid(), alg=alg, private_jwk="sealed", public_jwk="{}", created_at=at)

    first, other_alg = key("RS256", NOW), key("ES256", NOW)
    await store.add_signing_key(first, None)
    await store.add_signing_key(other_alg, None)
    second = key("RS256", NOW + 10)
    await store.add_signing_key(second, retire_keep=100.0)
    keys = {k.kid: k for k in await store.signing_keys(NOW + 20)}
    assert keys[first.kid].retired_at == NOW + 10 and keys[first.kid].expires_at == NOW + 110
    assert keys[second.kid].retired_at is None
    assert keys[other_alg.kid].retired_at is None  # another algorithm's key is untouched
    later = {k.kid for k in await store.signing_keys(NOW + 111)}
    assert first.kid not in later and {second.kid, other_alg.kid} <= later


async def test_a_consent_is_one_per_user_and_client(store: SqlStore) -> None:
    user_id, client_id = uid(), uid()
    assert await store.get_consent(user_id, client_id) is None
    await store.save_consent(Consent(user_id, client_id, "openid", NOW))
    await store.save_consent(Consent(user_id, client_id, "openid email", NOW + 1))
    assert await store.get_consent(user_id, client_id) == Consent(
        user_id, client_id, "openid email", NOW + 1
    )


async def test_a_device_code_and_an_unused_refresh_token_find_theirs(store: SqlStore) -> None:
    rec = login_request(client_id=uid(), scope="openid")
    await store.insert_login_request(rec, None)
    assert await store.login_request_by_secret(rec.secret_hash) == rec
    assert await store.login_request_by_secret(hash64()) is None
    rows = grant_rows(uid())
    await store.insert_session(rows.session, rows.audit, rows.refresh)
    assert rows.refresh is not None
    found = await store.session_by_refresh_token(rows.refresh.token_hash)
    assert found is not None and found.id == rows.session.id
    assert found.client_id == rows.session.client_id and found.scope == "openid"
    assert await store.session_by_refresh_token(hash64()) is None


async def test_only_the_sessions_own_client_refreshes_it(store: SqlStore) -> None:
    rows = grant_rows(uid())
    await store.insert_session(rows.session, rows.audit, rows.refresh)
    assert rows.refresh is not None

    async def rotate(client_id: str | None) -> object:
        result = await store.rotate_refresh_token(
            rows.refresh.token_hash,  # type: ignore[union-attr]
            refresh_token(""),
            hash64(),
            NOW + 600,
            NOW + 1,
            30.0,
            lambda s: None,
            client_id=client_id,
        )
        return result.outcome.value

    assert await rotate(None) == "invalid"  # qrlogin's own refresh endpoint
    assert await rotate(uid()) == "invalid"  # another client
    assert await rotate(rows.session.client_id) == "rotated"
