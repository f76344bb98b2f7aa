"""The host app's own users and sessions: two tables in its own SQLite file (SQLAlchemy 2).

Nothing here knows about qrlogin. A session is an opaque token in an HttpOnly cookie; the
table keeps only its SHA-256, so a copy of the database signs nobody in.

The statements run on the event loop's thread: SQLite answers these in microseconds. A host
on PostgreSQL would use SQLAlchemy's asyncio engine instead.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, RowMapping

from examples.fastapi_host.passwords import hash_password, verify_password

SESSION_LIFETIME = 30 * 24 * 3600

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String, primary_key=True),
    Column("username", String, nullable=False, unique=True),
    Column("display_name", String, nullable=False),
    Column("password_hash", String, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String, primary_key=True),
    Column("token_hash", String, nullable=False, unique=True),
    Column("user_id", String, ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("device_name", String, nullable=False),  # what the device calls itself (a claim)
    Column("user_agent", String, nullable=False),
    Column("ip", String, nullable=False, default=""),
    # how it began: "password", or "qr" from another of the user's sessions
    Column("signed_in_with", String, nullable=False),
    Column("linked_from", String),  # the approving session, for a QR sign-in
    Column("login_request_id", String),  # qrlogin's login request, for the audit trail
)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str


@dataclass(frozen=True)
class HostSession:
    id: str
    user_id: str
    token_hash: str
    expires_at: float
    device_name: str
    user_agent: str
    ip: str
    signed_in_with: str
    linked_from: str | None
    login_request_id: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: RowMapping) -> User:
    return User(row["id"], row["username"], row["display_name"])


def _session(row: RowMapping) -> HostSession:
    return HostSession(
        row["id"],
        row["user_id"],
        row["token_hash"],
        row["expires_at"],
        row["device_name"],
        row["user_agent"],
        row["ip"],
        row["signed_in_with"],
        row["linked_from"],
        row["login_request_id"],
    )


class HostStore:
    """Users with passwords, and cookie sessions that can end."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(f"sqlite:///{path}")
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- users ---------------------------------------------------------------------------

    def add_user(self, username: str, display_name: str, password: str) -> User:
        user = User(f"u_{secrets.token_hex(8)}", username, display_name)
        with self.engine.begin() as conn:
            conn.execute(
                insert(users).values(
                    id=user.id,
                    username=username,
                    display_name=display_name,
                    password_hash=hash_password(password),
                )
            )
        return user

    def set_password(self, username: str, display_name: str, password: str) -> User:
        """Create the user, or give an existing one this password."""
        with self.engine.begin() as conn:
            found = conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(password_hash=hash_password(password))
            )
        if found.rowcount == 0:
            return self.add_user(username, display_name, password)
        user = self.user_named(username)
        assert user is not None
        return user

    def user_named(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        return _user(row) if row else None

    def user(self, user_id: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
        return _user(row) if row else None

    def check_password(self, username: str, password: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        if row is None:
            verify_password(password, _DUMMY_HASH)  # the same work whether or not it exists
            return None
        return _user(row) if verify_password(password, row["password_hash"]) else None

    # -- sessions ------------------------------------------------------------------------

    def start_session(
        self,
        user_id: str,
        *,
        device_name: str,
        user_agent: str,
        ip: str,
        signed_in_with: str,
        linked_from: str | None = None,
        login_request_id: str | None = None,
    ) -> tuple[str, HostSession]:
        """A new session: its token (for the cookie, never stored) and its row."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        values = {
            "id": f"s_{secrets.token_hex(8)}",
            "token_hash": token_hash(token),
            "user_id": user_id,
            "created_at": now,
            "expires_at": now + SESSION_LIFETIME,
            "ended_at": None,
            "device_name": device_name[:100],
            "user_agent": user_agent[:500],
            "ip": ip,
            "signed_in_with": signed_in_with,
            "linked_from": linked_from,
            "login_request_id": login_request_id,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(sessions).values(**values))
        return token, _session(values)  # type: ignore[arg-type]

    def session_of(self, token: str | None) -> tuple[HostSession, User] | None:
        """The live session a cookie's token names, and its user."""
        if not token:
            return None
        query = (
            select(sessions, users.c.username, users.c.display_name)
            .join(users, users.c.id == sessions.c.user_id)
            .where(
                sessions.c.token_hash == token_hash(token),
                sessions.c.ended_at.is_(None),
                sessions.c.expires_at > time.time(),
            )
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return _session(row), User(row["user_id"], row["username"], row["display_name"])

    def is_live(self, session_id: str, user_id: str) -> bool:
        query = select(sessions.c.id).where(
            sessions.c.id == session_id,
            sessions.c.user_id == user_id,
            sessions.c.ended_at.is_(None),
            sessions.c.expires_at > time.time(),
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def end_session(self, session_id: str) -> bool:
        """Sign one session out; whether it was still live."""
        with self.engine.begin() as conn:
            ended = conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
                .values(ended_at=time.time())
            )
        return ended.rowcount == 1


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
