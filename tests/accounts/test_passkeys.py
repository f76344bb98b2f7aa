"""Passkeys (accounts/passkeys.py) checked by py_webauthn against a software authenticator
(tests/webauthn_support.py): registration, sign-in, and every way a ceremony is refused —
wrong origin or RP ID, a replayed, foreign or expired challenge, a cloned authenticator
(counter going back), and two assertions racing on one counter. Real SQLite, no browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select

from qrlogin.accounts.factors import binding
from qrlogin.accounts.passkeys import VERIFY
from qrlogin.config import Settings
from qrlogin.core.clock import FrozenClock
from qrlogin.core.errors import FactorRequired, PasskeyRefused
from qrlogin.core.tokens import new_id
from qrlogin.identity.device import Device
from qrlogin.identity.ports import SessionGrant
from qrlogin.services import Services
from qrlogin.store.records import AuditEntry, Passkey, Session, User
from qrlogin.store.tables import audit_events
from qrlogin.web.app import create_app
from webauthn_support import SoftAuthenticator

ORIGIN = "http://localhost:8000"
RP_ID = "localhost"
HERE = binding("this-browsers-cookie", "127.0.0.1")
ELSEWHERE = binding("another-browsers-cookie", "127.0.0.1")
DEVICE = Device(name="Chrome on Linux", user_agent="test", ip="127.0.0.1")


@dataclass
class Account:
    user: User
    session: Session


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(data_dir=tmp_path, public_url=ORIGIN, dev=True, confirm="code")
    app = create_app(settings, clock=FrozenClock())
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        yield services
        await services.factors.drain()


async def account(svc: Services, name: str = "ann") -> Account:
    user = await svc.store.ensure_user(
        User(id=new_id("usr"), email=f"{name}@example.com", display_name=name, created_at=0.0)
    )
    started = await svc.identity.start_session(
        SessionGrant(user_id=user.id, device=DEVICE, linked_by="email", api=True)
    )
    auth = await svc.sessions.authenticate(started.access_token)
    assert auth is not None
    return Account(auth.user, auth.session)


def authenticator(**kw: Any) -> SoftAuthenticator:
    return SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, **kw)


async def registered(svc: Services, who: Account, key: SoftAuthenticator) -> Passkey:
    options, token = await svc.passkeys.registration_options(who.user, who.session, HERE)
    return await svc.passkeys.register(
        who.user, who.session, token, HERE, key.create(options), "Laptop", DEVICE
    )


async def sign_in(svc: Services, key: SoftAuthenticator, **get: Any) -> Passkey:
    options, token = await svc.passkeys.authentication_options(HERE)
    return await svc.passkeys.authenticate(token, HERE, key.get(options, **get))


# -- registration --------------------------------------------------------------------------


async def test_a_registered_passkey_is_kept_with_its_key_flags_and_name(svc: Services) -> None:
    ann = await account(svc)
    key = authenticator(synced=True)

    passkey = await registered(svc, ann, key)

    assert passkey.credential_id == key.id
    assert passkey.user_id == ann.user.id
    assert passkey.name == "Laptop"
    assert passkey.backup_eligible == 1 and passkey.backup_state == 1
    assert passkey.transports == "internal"
    assert [p.id for p in await svc.passkeys.list(ann.user.id)] == [passkey.id]
    assert await svc.factors.methods(ann.user.id) == ["passkey"]
    events = [(r["event"], r["detail"]) for r in await rows(svc, audit_events)]
    assert ("factor.added", "passkey") in events


async def test_creation_options_ask_for_a_discoverable_credential_and_exclude_existing(
    svc: Services,
) -> None:
    ann = await account(svc)
    first = authenticator()
    await registered(svc, ann, first)

    options, _ = await svc.passkeys.registration_options(ann.user, ann.session, HERE)

    assert options["rp"] == {"name": svc.settings.site_name, "id": RP_ID}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    assert [c["id"] for c in options["excludeCredentials"]] == [first.id]


@pytest.mark.parametrize(
    "made", [{"origin": "http://evil.example"}, {"rp_id": "evil.example"}], ids=["origin", "rp"]
)
async def test_a_credential_made_for_another_origin_or_rp_id_is_not_registered(
    svc: Services, made: dict[str, str]
) -> None:
    ann = await account(svc)
    options, token = await svc.passkeys.registration_options(ann.user, ann.session, HERE)
    credential = authenticator().create(options, **made)

    with pytest.raises(PasskeyRefused):
        await svc.passkeys.register(ann.user, ann.session, token, HERE, credential, None, DEVICE)
    assert await svc.passkeys.list(ann.user.id) == []


async def test_a_registration_challenge_works_only_in_the_browser_that_asked(
    svc: Services,
) -> None:
    ann = await account(svc)
    key = authenticator()
    options, token = await svc.passkeys.registration_options(ann.user, ann.session, HERE)
    credential = key.create(options)

    with pytest.raises(PasskeyRefused):
        await svc.passkeys.register(
            ann.user, ann.session, token, ELSEWHERE, credential, None, DEVICE
        )
    # the foreign try did not burn it: the browser that asked still can
    kept = await svc.passkeys.register(ann.user, ann.session, token, HERE, credential, None, DEVICE)
    assert kept.name == "Passkey"


# -- sign-in -------------------------------------------------------------------------------


async def test_a_passkey_signs_in_and_its_counter_and_last_use_move(svc: Services) -> None:
    ann = await account(svc)
    key = authenticator()
    passkey = await registered(svc, ann, key)
    svc.clock.advance(60)

    used = await sign_in(svc, key)

    assert used.id == passkey.id and used.user_id == ann.user.id
    now = await svc.store.passkeys_of(ann.user.id)
    assert now[0].sign_count == key.sign_count == 1
    assert now[0].last_used_at == svc.clock.now()


async def test_request_options_for_anyone_are_empty_and_for_an_account_list_its_keys(
    svc: Services,
) -> None:
    ann = await account(svc)
    key = authenticator()
    await registered(svc, ann, key)

    anyone, _ = await svc.passkeys.authentication_options(HERE)
    ann_only, _ = await svc.passkeys.authentication_options(HERE, ann.user.id)
    step_up, _ = await svc.passkeys.authentication_options(HERE, ann.user.id, kind=VERIFY)

    assert anyone["allowCredentials"] == []
    assert anyone["userVerification"] == "preferred"
    assert anyone["rpId"] == RP_ID
    assert [c["id"] for c in ann_only["allowCredentials"]] == [key.id]
    assert step_up["userVerification"] == "required"


@pytest.mark.parametrize(
    "used", [{"origin": "http://evil.example"}, {"rp_id": "evil.example"}], ids=["origin", "rp"]
)
async def test_an_assertion_for_another_origin_or_rp_id_is_refused(
    svc: Services, used: dict[str, str]
) -> None:
    ann = await account(svc)
    key = authenticator()
    await registered(svc, ann, key)

    with pytest.raises(PasskeyRefused):
        await sign_in(svc, key, **used)


async def test_a_replayed_challenge_is_refused(svc: Services) -> None:
    ann = await account(svc)
    key = authenticator(counting=False)  # the counter alone would not stop a replay
    await registered(svc, ann, key)
    options, token = await svc.passkeys.authentication_options(HERE)
    assertion = key.get(options)
    await svc.passkeys.authenticate(token, HERE, assertion)

    with pytest.raises(PasskeyRefused):
        await svc.passkeys.authenticate(token, HERE, assertion)


async def test_a_challenge_from_another_browser_is_refused(svc: Services) -> None:
    ann = await account(svc)
    key = authenticator()
    await registered(svc, ann, key)
    options, token = await svc.passkeys.authentication_options(HERE)

    with pytest.raises(PasskeyRefused):
        await svc.passkeys.authenticate(token, ELSEWHERE, key.get(options))


async def test_a_challenge_older_than_five_minutes_is_refused(svc: Services) -> None:
    ann = await account(svc)
    key = authenticator()
    await registered(svc, ann, key)
    options, token = await svc.passkeys.authentication_options(HERE)
    svc.clock.advance(301)

    with pytest.raises(PasskeyRefused):
        await svc.passkeys.authenticate(token, HERE, key.get(options))


async def test_a_cloned_authenticator_whose_counter_went_back_is_refused(
    svc: Services,
) -> None:
    ann = await account(svc)
    key = authenticator()
    passkey = await registered(svc, ann, key)
    for _ in range(3):
        await sign_in(svc, key)
    key.sign_count = 1  # the clone's counter is behind the original's

    with pytest.raises(PasskeyRefused):
        await sign_in(svc, key)
    assert (await svc.store.passkeys_of(ann.user.id))[0].sign_count == 3
    assert passkey.sign_count == 0


async def test_of_two_assertions_against_one_counter_exactly_one_wins(svc: Services) -> None:
    ann = await account(svc)
    key = authenticator()
    await registered(svc, ann, key)
    attempts = []
    for _ in range(2):  # two copies of one key, each sending counter 1
        options, token = await svc.passkeys.authentication_options(HERE)
        attempts.append((token, key.get(options, bump=False) if attempts else key.get(options)))

    results = await asyncio.gather(
        *(svc.passkeys.authenticate(t, HERE, a) for t, a in attempts), return_exceptions=True
    )

    assert sorted(type(r).__name__ for r in results) == ["Passkey", "PasskeyRefused"]
    assert (await svc.store.passkeys_of(ann.user.id))[0].sign_count == 1


async def test_a_passkey_of_another_account_does_not_count_for_this_one(
    svc: Services,
) -> None:
    ann, bob = await account(svc, "ann"), await account(svc, "bob")
    bobs_key = authenticator()
    await registered(svc, bob, bobs_key)
    options, token = await svc.passkeys.authentication_options(HERE, ann.user.id)

    with pytest.raises(PasskeyRefused):
        await svc.passkeys.authenticate(token, HERE, bobs_key.get(options), user_id=ann.user.id)


async def test_a_step_up_without_user_verification_is_refused(svc: Services) -> None:
    ann = await account(svc)
    key = authenticator()
    await registered(svc, ann, key)
    key.user_verified = False
    options, token = await svc.passkeys.authentication_options(
        HERE, ann.user.id, kind=VERIFY, session_id=ann.session.id
    )

    with pytest.raises(PasskeyRefused):
        await svc.passkeys.authenticate(
            token,
            HERE,
            key.get(options),
            kind=VERIFY,
            user_id=ann.user.id,
            session_id=ann.session.id,
            require_uv=True,
        )


async def test_an_unknown_or_malformed_credential_gets_the_one_refusal(svc: Services) -> None:
    ann = await account(svc)
    await registered(svc, ann, authenticator())
    for credential in ({}, {"id": "nope"}, {"id": authenticator().id, "response": []}):
        _, token = await svc.passkeys.authentication_options(HERE)
        with pytest.raises(PasskeyRefused):
            await svc.passkeys.authenticate(token, HERE, credential)


# -- the account's passkeys ----------------------------------------------------------------


async def test_the_last_passkey_of_an_account_requiring_a_factor_stays(svc: Services) -> None:
    ann = await account(svc)
    first = await registered(svc, ann, authenticator())
    second = await registered(svc, ann, authenticator())
    entry = AuditEntry(event="factor.required", created_at=0.0, user_id=ann.user.id)
    assert await svc.store.set_mfa_required(ann.user.id, True, entry)

    await svc.passkeys.delete(ann.user, first.id, DEVICE)
    with pytest.raises(FactorRequired):
        await svc.passkeys.delete(ann.user, second.id, DEVICE)

    assert [p.id for p in await svc.passkeys.list(ann.user.id)] == [second.id]


async def test_removing_and_renaming_a_passkey_are_recorded_and_the_owner_is_mailed(
    svc: Services,
) -> None:
    ann = await account(svc)
    passkey = await registered(svc, ann, authenticator())

    renamed = await svc.passkeys.rename(ann.user.id, passkey.id, "  Work\x07 phone ", DEVICE)
    await svc.passkeys.delete(ann.user, passkey.id, DEVICE)
    await svc.factors.drain()

    assert renamed.name == "Work phone"
    assert await svc.passkeys.list(ann.user.id) == []
    events = [(r["event"], r["detail"]) for r in await rows(svc, audit_events)]
    assert {("factor.renamed", "passkey"), ("factor.removed", "passkey")} <= set(events)
    assert svc.outbox is not None
    subjects = [m.subject for m in svc.outbox.outbox if m.to == "ann@example.com"]
    assert any("added to" in s for s in subjects) and any("removed from" in s for s in subjects)


async def rows(svc: Services, table: Table) -> list[dict[str, Any]]:
    async with svc.store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(table))).mappings()]
