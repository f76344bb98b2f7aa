"""A real qrlogin on SQLite for handshake tests: services, migrations, signed-in approvers.

Every world runs the handshake on one of two adapters of the identity ports (DESIGN.md
"Two ways to use it"): ``"builtin"``, qrlogin's own accounts and sessions, or ``"host"``, the
example host app's own users and cookie sessions (examples/fastapi_host), as when embedded.
``People`` is what a test needs of either: sign someone in on a phone, read back the
sessions the exchange started, end a session with or without telling qrlogin.

Plain functions (not fixtures) so the hypothesis state machine can use them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import pytest
from sqlalchemy import insert, select

from examples.fastapi_host.passwords import hash_password
from examples.fastapi_host.qr import HostApprovers, HostSessions
from examples.fastapi_host.store import HostStore
from examples.fastapi_host.store import sessions as host_sessions
from examples.fastapi_host.store import users as host_users
from qrlogin.config import Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.tokens import new_id, sha256_hex
from qrlogin.handshake.service import LoginRequests
from qrlogin.identity.device import Device
from qrlogin.identity.ports import Approver, StartedSession
from qrlogin.services import Services, build_services
from qrlogin.store.migrate import upgrade
from qrlogin.store.records import LoginRequest, Session, User
from qrlogin.store.tables import sessions

CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
REQUESTER_IP = "203.0.113.5"
APPROVER_IP = "198.51.100.7"
DESKTOP = Device("Work laptop", CHROME_LINUX, REQUESTER_IP)

PW_HASH = hash_password("a password nobody types here")
IdentityKind = Literal["builtin", "host"]
IDENTITIES: tuple[IdentityKind, ...] = ("builtin", "host")
# for a test about the built-in accounts or sessions themselves (mail, their own tables)
builtin_only = pytest.mark.parametrize("identity", ["builtin"])


@dataclass(frozen=True)
class Person:
    id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class SessionFacts:
    """What either adapter records of a session, in the built-in tables' words."""

    id: str
    user_id: str
    token_hash: str
    device_name: str
    ip: str
    linked_from_session_id: str | None
    login_request_id: str | None


@dataclass(frozen=True)
class SignedIn:
    """A person signed in on an approving device: their user, session, token and Approver."""

    user: Person
    session: SessionFacts
    token: str
    approver: Approver


@dataclass(frozen=True)
class Issued:
    """A session the exchange started, read back from the adapter's own tables."""

    token: str
    session: SessionFacts
    user: Person


class People(Protocol):
    """The identity adapter a world runs on, as the tests drive and inspect it."""

    async def sign_in(self, name: str, ip: str) -> tuple[Person, SessionFacts, str]: ...

    async def person(self, user_id: str) -> Person | None: ...

    async def sessions(self, request_id: str | None = None) -> list[SessionFacts]:
        """Every session, or those a login request started."""
        ...

    async def user_of(self, token: str) -> str | None:
        """Whose live session ``token`` is."""
        ...

    async def end(self, session_id: str, *, announce: bool) -> None:
        """Sign that session out; ``announce``: as the adapter's owner should, telling
        qrlogin (the built-in revocation hook; a host's ``qr.session_ended``)."""
        ...

    async def close(self) -> None: ...


def _facts(s: Session) -> SessionFacts:
    return SessionFacts(
        s.id,
        s.user_id,
        s.token_hash,
        s.device_name,
        s.ip,
        s.linked_from_session_id,
        s.login_request_id,
    )


class BuiltinPeople:
    """qrlogin's own accounts and sessions (standalone mode)."""

    def __init__(self, services: Services, clock: FrozenClock) -> None:
        self.services, self.clock = services, clock

    async def sign_in(self, name: str, ip: str) -> tuple[Person, SessionFacts, str]:
        store = self.services.store
        user = await store.ensure_user(
            User(
                id=new_id("usr"),
                email=f"{name.lower()}@example.org",
                display_name=name,
                created_at=self.clock.now(),
            )
        )
        token, session = self.services.sessions.new_session(
            user, Device("Phone", SAFARI_IOS, ip), "email"
        )
        await store.insert_session(session, None)
        return Person(user.id, user.email, user.display_name), _facts(session), token

    async def person(self, user_id: str) -> Person | None:
        user = await self.services.store.get_user(user_id)
        return Person(user.id, user.email, user.display_name) if user else None

    async def sessions(self, request_id: str | None = None) -> list[SessionFacts]:
        query = select(sessions)
        if request_id is not None:
            query = query.where(sessions.c.login_request_id == request_id)
        async with self.services.store.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_facts(Session.from_mapping(r)) for r in rows]

    async def user_of(self, token: str) -> str | None:
        found = await self.services.sessions.authenticate(token)
        return found.user.id if found else None

    async def end(self, session_id: str, *, announce: bool) -> None:
        if announce:
            session = await self.services.store.get_session(session_id)
            assert session is not None
            assert await self.services.sessions.revoke(session, "signed_out", None)
        else:  # straight to the store: the revocation hook does not run
            now = self.clock.now()
            store = self.services.store
            assert await store.revoke_session(session_id, now, "test", lambda s: None)

    async def close(self) -> None:
        await self.services.sessions.drain()  # new sign-in notices still being mailed


class HostPeople:
    """The example host app's users and cookie sessions (embedded mode)."""

    def __init__(self, store: HostStore, login_requests: LoginRequests) -> None:
        self.store, self.login_requests = store, login_requests

    async def sign_in(self, name: str, ip: str) -> tuple[Person, SessionFacts, str]:
        username = f"{name.lower()}@example.org"
        user = self.store.user_named(username)
        if user is None:  # a stored hash of one password: no scrypt per person (~0.1 s each)
            with self.store.engine.begin() as conn:
                conn.execute(
                    insert(host_users).values(
                        id=new_id("u"), username=username, display_name=name, password_hash=PW_HASH
                    )
                )
            user = self.store.user_named(username)
            assert user is not None
        token, session = self.store.start_session(
            user.id, device_name="Phone", user_agent=SAFARI_IOS, ip=ip, signed_in_with="password"
        )
        facts = (await self.sessions_where(host_sessions.c.id == session.id))[0]
        return Person(user.id, user.username, user.display_name), facts, token

    async def person(self, user_id: str) -> Person | None:
        user = self.store.user(user_id)
        return Person(user.id, user.username, user.display_name) if user else None

    async def sessions(self, request_id: str | None = None) -> list[SessionFacts]:
        if request_id is None:
            return await self.sessions_where()
        return await self.sessions_where(host_sessions.c.login_request_id == request_id)

    async def sessions_where(self, *conditions: object) -> list[SessionFacts]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(host_sessions).where(*conditions)).mappings().all()  # type: ignore[arg-type]
        return [
            SessionFacts(
                r["id"],
                r["user_id"],
                r["token_hash"],
                r["device_name"],
                r["ip"],
                r["linked_from"],
                r["login_request_id"],
            )
            for r in rows
        ]

    async def user_of(self, token: str) -> str | None:
        found = self.store.session_of(token)
        return found[1].id if found else None

    async def end(self, session_id: str, *, announce: bool) -> None:
        assert self.store.end_session(session_id)
        if announce:  # what QRLogin.session_ended does
            await self.login_requests.end_approvals_of(session_id)

    async def close(self) -> None:
        self.store.close()


@dataclass
class World:
    services: Services
    clock: FrozenClock
    people: People
    identity: IdentityKind

    @property
    def lr(self) -> LoginRequests:
        return self.services.login_requests

    async def close(self) -> None:
        await self.people.close()
        await self.services.store.close()

    async def row(self, request_id: str) -> LoginRequest:
        rec = await self.services.store.get_login_request(request_id)
        assert rec is not None
        return rec

    async def sessions_of_request(self, request_id: str) -> list[SessionFacts]:
        return await self.people.sessions(request_id)

    async def session_count(self) -> int:
        return len(await self.people.sessions())

    async def end_session(self, who: SignedIn, *, announce: bool = True) -> None:
        await self.people.end(who.session.id, announce=announce)


async def issued(world: World, started: StartedSession) -> Issued:
    """What ``started`` (the identity port's reply) stands for in the adapter's tables."""
    token = started.cookie.value if started.cookie else started.access_token
    assert token is not None
    [session] = [s for s in await world.people.sessions() if s.id == started.session_id]
    user = await world.people.person(started.user_id)
    assert user is not None and session.token_hash == sha256_hex(token)
    return Issued(token, session, user)


async def open_world(
    data_dir: Path, *, confirm: str = "code", identity: IdentityKind = "builtin"
) -> World:
    clock = FrozenClock()
    settings = Settings(data_dir=data_dir, confirm=confirm)  # type: ignore[arg-type]
    people: People
    if identity == "builtin":
        services = build_services(settings, clock=clock)
        people = BuiltinPeople(services, clock)
    else:
        store = HostStore(data_dir / "host.db")
        approvers, starter = HostApprovers(store), HostSessions(store, https=False)
        services = build_services(settings, clock=clock, approvers=approvers, sessions=starter)
        people = HostPeople(store, services.login_requests)
    await upgrade(services.store.engine)
    return World(services, clock, people, identity)


async def sign_in(world: World, name: str, *, ip: str = APPROVER_IP) -> SignedIn:
    """A user called ``name`` (the same user for the same name) with one new session on a
    phone at ``ip``, signed in through the world's identity adapter."""
    user, session, token = await world.people.sign_in(name, ip)
    return SignedIn(
        user,
        session,
        token,
        Approver(user.id, user.display_name, session.id, ip, SAFARI_IOS, "Phone"),
    )
