"""A real qrlogin on SQLite for handshake tests: services, migrations, signed-in approvers.

Plain functions (not fixtures) so the hypothesis state machine can use them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from qrlogin.config import Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.tokens import new_id
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


@dataclass
class World:
    services: Services
    clock: FrozenClock

    @property
    def lr(self) -> LoginRequests:
        return self.services.login_requests

    async def close(self) -> None:
        await self.services.sessions.drain()  # new sign-in notices still being mailed
        await self.services.store.close()

    async def row(self, request_id: str) -> LoginRequest:
        rec = await self.services.store.get_login_request(request_id)
        assert rec is not None
        return rec

    async def sessions_of_request(self, request_id: str) -> list[Session]:
        async with self.services.store.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(sessions).where(sessions.c.login_request_id == request_id)
                    )
                )
                .mappings()
                .all()
            )
        return [Session.from_mapping(r) for r in rows]

    async def session_count(self) -> int:
        async with self.services.store.engine.connect() as conn:
            return len((await conn.execute(select(sessions.c.id))).all())


@dataclass(frozen=True)
class Issued:
    """A session the exchange started, read back from the built-in store."""

    token: str
    session: Session
    user: User


async def issued(world: World, started: StartedSession) -> Issued:
    """What ``started`` (the identity port's reply) stands for in the built-in tables."""
    token = started.cookie.value if started.cookie else started.access_token
    assert token is not None
    session = await world.services.store.get_session(started.session_id)
    user = await world.services.store.get_user(started.user_id)
    assert session is not None and user is not None
    return Issued(token, session, user)


@dataclass(frozen=True)
class SignedIn:
    """A person signed in on an approving device: their user, session, token and Approver."""

    user: User
    session: Session
    token: str
    approver: Approver


async def open_world(data_dir: Path, *, confirm: str = "code") -> World:
    clock = FrozenClock()
    services = build_services(Settings(data_dir=data_dir, confirm=confirm), clock=clock)  # type: ignore[arg-type]
    await upgrade(services.store.engine)
    return World(services, clock)


async def sign_in(world: World, name: str, *, ip: str = APPROVER_IP) -> SignedIn:
    """A user called ``name`` with one new session on a phone at ``ip``."""
    store, clock = world.services.store, world.clock
    user = await store.ensure_user(
        User(
            id=new_id("usr"),
            email=f"{name.lower()}@example.org",
            display_name=name,
            created_at=clock.now(),
        )
    )
    token, session = world.services.sessions.new_session(
        user, Device("Phone", SAFARI_IOS, ip), "email"
    )
    await store.insert_session(session, None)
    return SignedIn(
        user,
        session,
        token,
        Approver(user.id, user.display_name, session.id, ip, SAFARI_IOS, "Phone"),
    )
