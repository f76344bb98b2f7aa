"""TOTP and recovery codes (accounts/totp.py) on a real SQLite database: ±1 time step of
skew, each time step once per account (also under 50 parallel uses), recovery codes once
each, the failure window's lock, and the secret sealed at rest.

The services are built as the app builds them, with a FrozenClock; codes come from pyotp
with the secret ``begin`` returned, as an authenticator app would compute them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest

from qrlogin.accounts.totp import WRONG_CODE
from qrlogin.config import Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.errors import InvalidCode, InvalidState
from qrlogin.core.tokens import new_id
from qrlogin.identity.device import Device
from qrlogin.identity.ports import SessionGrant
from qrlogin.services import Services, build_services
from qrlogin.store.migrate import upgrade
from qrlogin.store.records import User

DEVICE = Device(name="Firefox on Linux", user_agent="Mozilla/5.0 (X11; Linux)", ip="192.0.2.7")
STEP = 30


@dataclass
class Enrolled:
    user: User
    secret: str
    recovery_codes: list[str]


@dataclass
class World:
    services: Services
    clock: FrozenClock
    data_dir: Path

    async def new_user(self) -> User:
        user = User(
            id=new_id("usr"),
            email=f"{new_id('p').lower()}@example.com",
            display_name="p",
            created_at=self.clock.now(),
        )
        return await self.services.store.ensure_user(user)

    def code(self, secret: str, steps: int = 0) -> str:
        """The app's code ``steps`` time steps from now."""
        return pyotp.TOTP(secret).at(self.clock.now() + steps * STEP)

    async def enrolled(self) -> Enrolled:
        """An account with TOTP on; the clock moved on past the enrolment's time step."""
        user = await self.new_user()
        secret, _ = await self.services.totp.begin(user)
        codes = await self.services.totp.enable(user, self.code(secret), DEVICE)
        self.clock.advance(10 * STEP)
        return Enrolled(user, secret, codes)

    async def check(self, user: User, code: str) -> str:
        return await self.services.totp.check(user, code, DEVICE)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FrozenClock()
    settings = Settings(data_dir=tmp_path, public_url="http://testserver")
    services = build_services(settings, clock=clock)
    await upgrade(services.store.writer)
    try:
        yield World(services, clock, tmp_path)
    finally:
        await services.factors.drain()
        await services.store.close()


async def test_enrolment_gives_a_working_uri_and_ten_distinct_recovery_codes(world: World) -> None:
    user = await world.new_user()
    secret, uri = await world.services.totp.begin(user)
    assert pyotp.parse_uri(uri).secret == secret
    assert user.email.replace("@", "%40") in uri and "issuer=qrlogin" in uri

    codes = await world.services.totp.enable(user, world.code(secret), DEVICE)

    assert len(codes) == len(set(codes)) == 10
    assert all(len(c) == 11 and c[5] == "-" for c in codes)
    factor = await world.services.store.get_totp(user.id)
    assert factor is not None and factor.enabled_at is not None
    events = [e.event for e in await world.services.store.activity(user.id)]
    assert "factor.added" in events


async def test_a_wrong_first_code_leaves_totp_off(world: World) -> None:
    user = await world.new_user()
    secret, _ = await world.services.totp.begin(user)
    with pytest.raises(InvalidCode):
        await world.services.totp.enable(user, world.code(secret, 5), DEVICE)
    factor = await world.services.store.get_totp(user.id)
    assert factor is not None and factor.enabled_at is None
    assert await world.services.factors.methods(user.id) == []


async def test_setting_up_again_while_totp_is_on_is_refused(world: World) -> None:
    account = await world.enrolled()
    with pytest.raises(InvalidState):
        await world.services.totp.begin(account.user)
    assert await world.check(account.user, world.code(account.secret)) == "otp"


@pytest.mark.parametrize("skew", [-1, 0, 1])
async def test_a_code_one_step_off_is_accepted(world: World, skew: int) -> None:
    account = await world.enrolled()
    assert await world.check(account.user, world.code(account.secret, skew)) == "otp"


@pytest.mark.parametrize("skew", [-2, 2])
async def test_a_code_two_steps_off_is_refused(world: World, skew: int) -> None:
    account = await world.enrolled()
    with pytest.raises(InvalidCode):
        await world.check(account.user, world.code(account.secret, skew))


async def test_the_same_code_twice_the_second_is_refused(world: World) -> None:
    account = await world.enrolled()
    code = world.code(account.secret)
    assert await world.check(account.user, code) == "otp"
    with pytest.raises(InvalidCode):
        await world.check(account.user, code)
    world.clock.advance(STEP)  # the next step's code works
    assert await world.check(account.user, world.code(account.secret)) == "otp"


async def test_a_code_older_than_one_already_used_is_refused(world: World) -> None:
    account = await world.enrolled()
    assert await world.check(account.user, world.code(account.secret, 1)) == "otp"
    with pytest.raises(InvalidCode):
        await world.check(account.user, world.code(account.secret, 0))


async def test_fifty_parallel_uses_of_one_code_give_exactly_one_success(world: World) -> None:
    account = await world.enrolled()
    code = world.code(account.secret)
    results = await asyncio.gather(
        *(world.check(account.user, code) for _ in range(50)), return_exceptions=True
    )
    assert results.count("otp") == 1
    assert all(isinstance(r, InvalidCode) for r in results if r != "otp")
    # the losers were replays, not guesses: the account is not locked
    world.clock.advance(STEP)
    assert await world.check(account.user, world.code(account.secret)) == "otp"


async def test_a_recovery_code_works_once_typed_as_people_type(world: World) -> None:
    account = await world.enrolled()
    first, second = account.recovery_codes[:2]
    assert await world.check(account.user, first) == "recovery"
    with pytest.raises(InvalidCode):
        await world.check(account.user, first)
    # upper case, spaces for the dash, and an O read as a zero
    typed = second.upper().replace("-", " ").replace("0", "O")
    assert await world.check(account.user, typed) == "recovery"
    assert (await world.services.store.factor_summary(account.user.id))[2] == 8


async def test_a_recovery_code_of_another_account_is_refused(world: World) -> None:
    mine = await world.enrolled()
    theirs = await world.enrolled()
    with pytest.raises(InvalidCode):
        await world.check(mine.user, theirs.recovery_codes[0])
    assert await world.check(theirs.user, theirs.recovery_codes[0]) == "recovery"


async def test_new_recovery_codes_replace_the_old_ones(world: World) -> None:
    account = await world.enrolled()
    store = world.services.store
    session_id = await _verified_session(world, account)
    session = await store.get_session(session_id)
    assert session is not None
    fresh = await world.services.totp.new_recovery_codes(account.user, session, None, DEVICE)
    assert set(fresh).isdisjoint(account.recovery_codes)
    with pytest.raises(InvalidCode):
        await world.check(account.user, account.recovery_codes[0])
    assert await world.check(account.user, fresh[0]) == "recovery"


async def _verified_session(world: World, account: Enrolled) -> str:
    """A session of the account that proved its TOTP just now."""
    grant = SessionGrant(
        user_id=account.user.id,
        device=DEVICE,
        linked_by="email",
        api=True,
        amr=("email", "otp"),
    )
    started = await world.services.identity.start_session(grant)
    session = await world.services.store.get_session(started.session_id)
    assert session is not None and session.verified_at == world.clock.now()
    return session.id


async def test_five_wrong_codes_lock_totp_and_recovery_codes_for_fifteen_minutes(
    world: World,
) -> None:
    account = await world.enrolled()
    wrong = f"{(int(world.code(account.secret)) + 1) % 1_000_000:06d}"
    for _ in range(5):
        with pytest.raises(InvalidCode) as failed:
            await world.check(account.user, wrong)
        assert failed.value.to_dict() == InvalidCode(WRONG_CODE).to_dict()
    # locked: the right code and a recovery code get the very same refusal
    for right in (world.code(account.secret), account.recovery_codes[0]):
        with pytest.raises(InvalidCode) as refused:
            await world.check(account.user, right)
        assert refused.value.to_dict() == InvalidCode(WRONG_CODE).to_dict()
    events = [e.event for e in await world.services.store.activity(account.user.id)]
    assert events.count("factor.failed") == 5
    assert events.count("factor.locked") == 1

    world.clock.advance(15 * 60)
    assert await world.check(account.user, world.code(account.secret)) == "otp"
    assert await world.check(account.user, account.recovery_codes[0]) == "recovery"


async def test_wrong_codes_spread_over_more_than_fifteen_minutes_do_not_lock(
    world: World,
) -> None:
    account = await world.enrolled()
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(InvalidCode):
                await world.check(account.user, "000000")
        world.clock.advance(15 * 60 + 1)
    assert await world.check(account.user, world.code(account.secret)) == "otp"


async def test_the_secret_is_stored_sealed(world: World) -> None:
    account = await world.enrolled()
    stored = b"".join(
        p.read_bytes() for p in world.data_dir.iterdir() if p.name.startswith("qrlogin.db")
    )
    factor = await world.services.store.get_totp(account.user.id)
    assert factor is not None and factor.secret_sealed.encode() in stored  # the row is there
    assert account.secret.encode() not in stored
    assert account.secret.lower().encode() not in stored
    for code in account.recovery_codes:
        assert code.encode() not in stored and code.upper().replace("-", "").encode() not in stored
