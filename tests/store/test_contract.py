"""The storage ports' contract (store/ports.py), held against ``SqlStore`` on SQLite and on
PostgreSQL alike (the ``store`` fixture): that ``SqlStore`` has every method of every port
with the port's signature, and how the login-request methods behave. Every state change is
one conditional write, so of many racing callers exactly one wins and the rest get ``None``.

Users, email sign-ins and the activity log: test_contract_accounts.py; sessions and refresh
tokens: test_contract_sessions.py.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable

import pytest

from qrlogin.core.machine import LIVE, TERMINAL, TRANSITIONS, Action, Status
from qrlogin.store import ports
from qrlogin.store.ports import UserCodeTaken
from qrlogin.store.records import AuditEntry, LoginRequest, NewSessionRows
from qrlogin.store.sql import SqlStore

from .contract_support import (
    LIFETIME,
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

PORTS = [
    ports.LoginRequestStore,
    ports.UserStore,
    ports.AuditStore,
    ports.AccountStore,
    ports.SessionStore,
    ports.OAuthStore,
]

# ---------------------------------------------------------------- SqlStore implements the ports


def port_methods(port: type) -> dict[str, Callable[..., object]]:
    """The methods a Protocol asks for, its own and its Protocol bases'."""
    methods: dict[str, Callable[..., object]] = {}
    for klass in reversed(port.__mro__):
        if klass in (typing.Protocol, typing.Generic, object):
            continue
        methods.update(
            {n: v for n, v in vars(klass).items() if inspect.isfunction(v) and n[0] != "_"}
        )
    return methods


def test_every_port_asks_for_something() -> None:
    assert all(port_methods(port) for port in PORTS)
    assert set(port_methods(ports.AccountStore)) > set(port_methods(ports.UserStore))
    assert set(port_methods(ports.SessionStore)) > set(port_methods(ports.UserStore))


@pytest.mark.parametrize("port", PORTS, ids=lambda port: port.__name__)
def test_sql_store_has_each_method_of_the_port_with_its_signature(port: type) -> None:
    for name, wanted in port_methods(port).items():
        implemented = getattr(SqlStore, name, None)
        assert implemented is not None, f"SqlStore has no {name} ({port.__name__})"
        assert inspect.iscoroutinefunction(implemented), f"SqlStore.{name} is not async"
        have, want = inspect.signature(implemented), inspect.signature(wanted)
        assert [(p.name, p.kind, p.default) for p in have.parameters.values()] == [
            (p.name, p.kind, p.default) for p in want.parameters.values()
        ], f"SqlStore.{name}{have} differs from {port.__name__}.{name}{want}"
        assert typing.get_type_hints(implemented) == typing.get_type_hints(wanted), name


# ---------------------------------------------------------------- reads


def audited(auditor: str, event: str = "request.changed") -> Callable[[LoginRequest], AuditEntry]:
    """An audit callback whose rows ``store.activity(auditor)`` finds."""
    return lambda rec: entry(event, auditor, request_id=rec.id)


async def test_an_inserted_request_reads_back_by_id_handle_and_user_code(store: SqlStore) -> None:
    auditor = uid()
    rec = login_request(user_code_hmac=hash64())
    await store.insert_login_request(rec, entry("request.created", auditor, request_id=rec.id))
    assert await store.get_login_request(rec.id) == rec
    assert await store.login_request_by_handle(rec.handle_hash) == rec
    assert rec.user_code_hmac is not None
    assert await store.login_request_by_user_code(rec.user_code_hmac, NOW) == rec
    assert [(e.event, e.request_id) for e in await store.activity(auditor)] == [
        ("request.created", rec.id)
    ]


async def test_unknown_ids_handles_and_codes_read_as_none(store: SqlStore) -> None:
    await store.insert_login_request(login_request(user_code_hmac=hash64()), None)
    assert await store.get_login_request(uid()) is None
    assert await store.login_request_by_handle(hash64()) is None
    assert await store.login_request_by_user_code(hash64(), NOW) is None


async def test_a_user_code_finds_only_a_pending_request_within_its_lifetime(
    store: SqlStore,
) -> None:
    pending, scanned = (
        login_request(user_code_hmac=hash64()),
        login_request(user_code_hmac=hash64()),
    )
    await store.insert_login_request(pending, None)
    await store.insert_login_request(scanned, None)
    await store.transition(scanned.id, Action.SCAN, NOW)
    assert pending.user_code_hmac and scanned.user_code_hmac
    assert await store.login_request_by_user_code(scanned.user_code_hmac, NOW) is None
    assert await store.login_request_by_user_code(pending.user_code_hmac, NOW + LIFETIME) is None


async def test_a_user_code_held_by_a_pending_request_cannot_be_inserted_again(
    store: SqlStore,
) -> None:
    """Two pending requests never share a user code: the second insert raises
    ``UserCodeTaken`` and writes nothing, its audit row included. Once the holder is no
    longer pending (scanned here), the code is free again."""
    auditor = uid()
    code = hash64()
    holder = login_request(user_code_hmac=code)
    await store.insert_login_request(holder, None)
    second = login_request(user_code_hmac=code)
    with pytest.raises(UserCodeTaken):
        await store.insert_login_request(second, entry("request.created", auditor))
    assert await store.get_login_request(second.id) is None
    assert await store.activity(auditor) == []
    assert await store.login_request_by_user_code(code, NOW) == holder
    await store.transition(holder.id, Action.SCAN, NOW)
    await store.insert_login_request(second, None)
    assert await store.login_request_by_user_code(code, NOW) == second


async def test_racing_inserts_of_one_user_code_leave_exactly_one_holder(store: SqlStore) -> None:
    """Twenty concurrent inserts of pending requests with the same code: one wins, the
    other nineteen are told the code is taken."""
    code = hash64()

    async def insert(_: int) -> bool:
        try:
            await store.insert_login_request(login_request(user_code_hmac=code), None)
        except UserCodeTaken:
            return False
        return True

    assert sorted(await race(20, insert)) == [False] * 19 + [True]


async def test_count_pending_by_ip_counts_live_pending_requests_of_that_ip_up_to_the_bound(
    store: SqlStore,
) -> None:
    ip = "192.0.2.9"
    for _ in range(4):
        await store.insert_login_request(login_request(ip=ip), None)
    await store.insert_login_request(login_request(ip=ip, status="scanned"), None)
    await store.insert_login_request(login_request(ip=ip, expires_at=NOW), None)
    await store.insert_login_request(login_request(ip="192.0.2.10"), None)
    assert await store.count_pending_by_ip(ip, NOW, up_to=10) == 4
    assert await store.count_pending_by_ip(ip, NOW, up_to=3) == 3
    assert await store.count_pending_by_ip("192.0.2.11", NOW, up_to=10) == 0


async def test_claimed_by_session_lists_the_live_scanned_and_approved_requests_of_that_session(
    store: SqlStore,
) -> None:
    approver = uid()
    claimed = [
        login_request(status=status, approver_session_id=approver)
        for status in ("scanned", "approved")
    ]
    others = [
        login_request(status="pending"),
        login_request(status="approved", approver_session_id=uid()),
        login_request(status="approved", approver_session_id=approver, expires_at=NOW),
        *(login_request(status=status.value, approver_session_id=approver) for status in TERMINAL),
    ]
    for rec in claimed + others:
        await store.insert_login_request(rec, None)
    found = await store.claimed_by_session(approver, NOW)
    assert sorted(r.id for r in found) == sorted(r.id for r in claimed)
    assert await store.claimed_by_session(uid(), NOW) == []


# ---------------------------------------------------------------- transitions


async def test_of_racing_scans_exactly_one_wins_and_is_audited_once(store: SqlStore) -> None:
    auditor = uid()
    rec = login_request()
    await store.insert_login_request(rec, None)
    results = await race(
        RACERS,
        lambda i: store.transition(
            rec.id, Action.SCAN, NOW, {"approver_session_id": f"s{i}"}, audit=audited(auditor)
        ),
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].status == Status.SCANNED.value and winners[0].version == rec.version + 1
    assert await store.get_login_request(rec.id) == winners[0]
    assert len(await store.activity(auditor)) == 1


async def test_a_transition_from_a_state_it_does_not_start_from_returns_none(
    store: SqlStore,
) -> None:
    rec = login_request()
    await store.insert_login_request(rec, None)
    for action in (Action.APPROVE, Action.EXCHANGE, Action.BURN):
        assert await store.transition(rec.id, action, NOW) is None
    assert await store.get_login_request(rec.id) == rec
    assert await store.transition(uid(), Action.SCAN, NOW) is None


async def test_a_transition_whose_expect_columns_differ_returns_none_and_changes_nothing(
    store: SqlStore,
) -> None:
    approver = uid()
    rec = login_request(status="scanned", approver_session_id=approver)
    await store.insert_login_request(rec, None)
    for expect in ({"approver_session_id": uid()}, {"approver_session_id": None}):
        assert await store.transition(rec.id, Action.APPROVE, NOW, expect=expect) is None
    assert await store.get_login_request(rec.id) == rec
    # ``None`` expects the column to be NULL
    approved = await store.transition(
        rec.id, Action.APPROVE, NOW, expect={"approver_session_id": approver, "reason": None}
    )
    assert approved is not None and approved.status == Status.APPROVED.value


@pytest.mark.parametrize("action", list(Action), ids=str)
async def test_an_expired_request_cannot_transition(store: SqlStore, action: Action) -> None:
    source = min(s for s in LIVE if s in TRANSITIONS[action].sources)
    rec = login_request(status=source.value)
    await store.insert_login_request(rec, None)
    assert await store.transition(rec.id, action, rec.expires_at) is None
    assert await store.transition(rec.id, action, rec.expires_at + 1) is None
    assert await store.get_login_request(rec.id) == rec
    assert await store.transition(rec.id, action, rec.expires_at - 1) is not None


@pytest.mark.parametrize("status", sorted(TERMINAL), ids=str)
async def test_a_request_in_a_terminal_state_never_changes(store: SqlStore, status: Status) -> None:
    rec = login_request(status=status.value)
    await store.insert_login_request(rec, None)
    for action in Action:
        assert await store.transition(rec.id, action, NOW) is None
    assert await store.fail_confirm_code(rec.id, NOW, 5, audited(uid())) is None
    assert await store.get_login_request(rec.id) == rec


def _rows_for(request_id: str) -> NewSessionRows:
    new = session(uid(), login_request_id=request_id, linked_by="qr")
    return NewSessionRows(new, refresh_token(new.id), entry("session.created", new.user_id))


async def test_of_racing_exchanges_exactly_one_consumes_and_writes_its_session(
    store: SqlStore,
) -> None:
    auditor = uid()
    code = hash64()
    rec = login_request(status="approved", confirm_code_hmac=code)
    await store.insert_login_request(rec, None)
    rows = [_rows_for(rec.id) for _ in range(RACERS)]
    results = await race(
        RACERS,
        lambda i: store.exchange(
            rec.id, NOW, {"finished_at": NOW}, {"confirm_code_hmac": code}, audited(auditor),
            rows[i],
        ),
    )  # fmt: skip
    won = [i for i, r in enumerate(results) if r is not None]
    assert len(won) == 1
    consumed = results[won[0]]
    assert consumed is not None and consumed.status == Status.CONSUMED.value
    assert consumed.finished_at == NOW and consumed.version == rec.version + 1
    for i, written in enumerate(rows):
        stored = await store.get_session(written.session.id)
        assert stored == (written.session if i == won[0] else None)
    assert len(await store.activity(auditor)) == 1
    assert len(await store.activity(rows[won[0]].session.user_id)) == 1


async def test_a_refused_exchange_writes_no_session_and_no_audit(store: SqlStore) -> None:
    auditor = uid()
    rec = login_request(status="approved", confirm_code_hmac=hash64())
    scanned = login_request(status="scanned")
    for r in (rec, scanned):
        await store.insert_login_request(r, None)
    refused = [
        (rec.id, {"confirm_code_hmac": hash64()}),  # expect mismatch
        (scanned.id, {}),  # not approved
    ]
    for request_id, expect in refused:
        rows = _rows_for(request_id)
        assert await store.exchange(request_id, NOW, {}, expect, audited(auditor), rows) is None
        assert await store.get_session(rows.session.id) is None
        assert await store.activity(rows.session.user_id) == []
    assert await store.activity(auditor) == []


async def test_confirm_code_failures_burn_the_request_at_the_limit_exactly_under_concurrency(
    store: SqlStore,
) -> None:
    auditor, limit = uid(), 5
    rec = login_request(status="approved")
    await store.insert_login_request(rec, None)
    results = await race(
        RACERS,
        lambda i: store.fail_confirm_code(rec.id, NOW, limit, audited(auditor, "code.failed")),
    )
    counted = [r for r in results if r is not None]
    assert sorted(r.confirm_attempts for r in counted) == list(range(1, limit + 1))
    assert [r.status for r in counted if r.confirm_attempts < limit] == ["approved"] * (limit - 1)
    (burned,) = [r for r in counted if r.confirm_attempts == limit]
    assert (burned.status, burned.reason, burned.finished_at) == (
        "denied",
        "too_many_attempts",
        NOW,
    )
    assert burned.version == rec.version + 1
    assert await store.get_login_request(rec.id) == burned
    events = sorted(e.event for e in await store.activity(auditor))
    assert events == ["code.failed"] * limit + ["request.denied"]


async def test_one_failure_short_of_the_limit_leaves_the_request_approved(store: SqlStore) -> None:
    rec = login_request(status="approved")
    await store.insert_login_request(rec, None)
    for attempt in range(1, 5):
        failed = await store.fail_confirm_code(rec.id, NOW, 5, audited(uid()))
        assert failed is not None
        assert (failed.confirm_attempts, failed.status, failed.version) == (attempt, "approved", 1)


async def test_expire_due_writes_expired_on_live_requests_past_their_lifetime_in_batches(
    store: SqlStore,
) -> None:
    auditor = uid()
    due = [login_request(status=s, expires_at=NOW - 1) for s in ("pending", "scanned", "approved")]
    due += [login_request(expires_at=NOW) for _ in range(4)]
    alive = login_request(expires_at=NOW + 1)
    ended = login_request(status="consumed", expires_at=NOW - 1)
    for rec in [*due, alive, ended]:
        await store.insert_login_request(rec, None)
    sweep = audited(auditor, "request.expired")
    batches = [await store.expire_due(NOW, sweep, batch=3) for _ in range(4)]
    assert [len(b) for b in batches] == [3, 3, 1, 0]
    expired = [r for b in batches for r in b]
    assert sorted(r.id for r in expired) == sorted(r.id for r in due)
    for rec in expired:
        assert (rec.status, rec.finished_at) == ("expired", NOW)
        assert rec.version == 2
        assert await store.get_login_request(rec.id) == rec
    assert await store.get_login_request(alive.id) == alive
    assert await store.get_login_request(ended.id) == ended
    assert len(await store.activity(auditor)) == len(due)


async def test_racing_sweeps_expire_each_request_once(store: SqlStore) -> None:
    due = [login_request(expires_at=NOW - 1) for _ in range(10)]
    for rec in due:
        await store.insert_login_request(rec, None)
    auditor = uid()
    batches = await race(4, lambda i: store.expire_due(NOW, audited(auditor), batch=500))
    assert sorted(r.id for b in batches for r in b) == sorted(r.id for r in due)
    assert len(await store.activity(auditor)) == len(due)
