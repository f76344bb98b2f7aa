"""The OpenID Provider's tables in SQL: clients, signing keys, authorization codes, consents."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from qrlogin.store.base import SqlBase, insert_rows, shielded
from qrlogin.store.records import (
    AuthorizationCode,
    Consent,
    LoginRequest,
    NewSessionRows,
    OAuthClient,
    Session,
    SigningKey,
)
from qrlogin.store.tables import (
    login_requests,
    oauth_clients,
    oauth_codes,
    oauth_consents,
    refresh_tokens,
    sessions,
    signing_keys,
)

_C = oauth_clients.c
_K = signing_keys.c
_A = oauth_codes.c
_BY_SECRET = select(login_requests).where(login_requests.c.secret_hash == bindparam("h"))


def _client(row: Mapping[Any, Any]) -> OAuthClient:
    values = dict(row)
    values["redirect_uris"] = tuple(json.loads(values["redirect_uris"]))
    values["post_logout_redirect_uris"] = tuple(json.loads(values["post_logout_redirect_uris"]))
    values["public"] = bool(values["public"])
    values["first_party"] = bool(values["first_party"])
    return OAuthClient.from_mapping(values)


class SqlOAuth(SqlBase):
    """``store.ports.OAuthStore`` in SQL."""

    # -- clients ---------------------------------------------------------------------------

    @shielded
    async def insert_client(self, client: OAuthClient) -> None:
        row = client.to_row()
        row["redirect_uris"] = json.dumps(list(client.redirect_uris))
        row["post_logout_redirect_uris"] = json.dumps(list(client.post_logout_redirect_uris))
        async with self._write() as conn:
            await insert_rows(conn, oauth_clients, row)

    @shielded
    async def get_client(self, client_id: str) -> OAuthClient | None:
        row = await self._one(oauth_clients, _C.id == client_id)  # booleans: not _first
        return _client(row) if row else None

    @shielded
    async def list_clients(self) -> list[OAuthClient]:
        async with self.engine.connect() as conn:
            rows = (
                (await conn.execute(select(oauth_clients).order_by(_C.created_at))).mappings().all()
            )
        return [_client(r) for r in rows]

    @shielded
    async def delete_client(self, client_id: str) -> bool:
        """Remove a client and its consents. Its codes stop working (the client is gone)."""
        async with self._write() as conn:
            result = await conn.execute(delete(oauth_clients).where(_C.id == client_id))
            await conn.execute(
                delete(oauth_consents).where(oauth_consents.c.client_id == client_id)
            )
        return bool(result.rowcount)

    # -- signing keys ----------------------------------------------------------------------

    @shielded
    async def add_signing_key(self, key: SigningKey, retire_keep: float | None) -> None:
        """Store ``key``; with ``retire_keep``, it replaces the signing key of its algorithm,
        which is kept (published, never signing) for ``retire_keep`` more seconds."""
        async with self._write() as conn:
            if retire_keep is not None:
                await conn.execute(
                    update(signing_keys)
                    .where(_K.alg == key.alg, _K.retired_at.is_(None))
                    .values(retired_at=key.created_at, expires_at=key.created_at + retire_keep)
                )
            await insert_rows(conn, signing_keys, key.to_row())

    @shielded
    async def signing_keys(self, now: float) -> list[SigningKey]:
        """Every key still published (unretired, or retired but not expired), newest first."""
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(signing_keys)
                        .where(_K.expires_at.is_(None) | (_K.expires_at > now))
                        .order_by(_K.created_at.desc())
                    )
                )
                .mappings()
                .all()
            )
        return [SigningKey.from_mapping(r) for r in rows]

    # -- authorization codes ---------------------------------------------------------------

    @shielded
    async def insert_code(self, code: AuthorizationCode) -> None:
        async with self._write() as conn:
            await insert_rows(conn, oauth_codes, code.to_row())

    @shielded
    async def get_code(self, code_hash: str) -> AuthorizationCode | None:
        row = await self._one(oauth_codes, _A.code_hash == code_hash)
        return AuthorizationCode.from_mapping(row) if row else None

    @shielded
    async def redeem_code(self, code_hash: str, now: float, rows: NewSessionRows) -> bool:
        """Use the code once, and start its tokens' session in the same transaction. False
        when it was used already or has expired (another caller won, or a replay)."""
        async with self._write() as conn:
            used = await self._update(
                conn,
                oauth_codes,
                (_A.code_hash == code_hash) & _A.used_at.is_(None) & (_A.expires_at > now),
                {"used_at": now, "session_id": rows.session.id},
            )
            if used is None:
                return False
            await self._insert_session_rows(conn, rows)
        return True

    # -- consents --------------------------------------------------------------------------

    @shielded
    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        c = oauth_consents.c
        row = await self._one(oauth_consents, c.user_id == user_id, c.client_id == client_id)
        return Consent.from_mapping(row) if row else None

    @shielded
    async def save_consent(self, consent: Consent) -> None:
        c = oauth_consents.c
        async with self._write() as conn:
            await conn.execute(
                delete(oauth_consents).where(
                    c.user_id == consent.user_id, c.client_id == consent.client_id
                )
            )
            await insert_rows(conn, oauth_consents, consent.to_row())

    # -- device grant ----------------------------------------------------------------------

    @shielded
    async def login_request_by_secret(self, secret_hash: str) -> LoginRequest | None:
        """The login request whose requester secret (a device grant's device code) hashes
        to ``secret_hash``."""
        row = await self._first(_BY_SECRET, {"h": secret_hash})
        return LoginRequest.from_mapping(row) if row else None

    @shielded
    async def session_by_refresh_token(self, token_hash: str) -> Session | None:
        """The session an unused refresh token belongs to."""
        stmt = (
            select(sessions)
            .join(refresh_tokens, refresh_tokens.c.session_id == sessions.c.id)
            .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return Session.from_mapping(row) if row else None

    async def _delete_old_codes(self, before: float, batch: int) -> int:
        ids = select(_A.code_hash).where(_A.expires_at < before).limit(batch)
        async with self._write() as conn:
            result = await conn.execute(delete(oauth_codes).where(_A.code_hash.in_(ids)))
        return int(result.rowcount or 0)
