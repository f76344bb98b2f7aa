"""A hypothesis state machine driving the real LoginRequests on SQLite.

Rules are what people do (create, scan, approve, deny, cancel, exchange with the right, a wrong
or no confirm code, poll) and what time does (advance past rotation, grace and expiry). A small
model predicts every reply; the invariants read the database after every step. Each machine
runs on both adapters of the identity ports (qrlogin's own sessions, the example host's).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import select

from qrlogin.core.codes import derive_confirm_code
from qrlogin.core.errors import (
    AccessDenied,
    AlreadyUsed,
    AuthorizationPending,
    ConfirmCodeRequired,
    ExpiredToken,
    InvalidCode,
    InvalidHandle,
    QrLoginError,
)
from qrlogin.core.machine import Status
from qrlogin.core.tokens import derive_handle
from qrlogin.handshake.service import Created
from qrlogin.store.records import LoginRequest
from qrlogin.store.tables import login_requests

from .world import (
    DESKTOP,
    REQUESTER_IP,
    IdentityKind,
    SessionFacts,
    SignedIn,
    World,
    issued,
    open_world,
    sign_in,
)

T = TypeVar("T")

LIVE = (Status.PENDING, Status.SCANNED, Status.APPROVED)
TERMINAL = (Status.CONSUMED, Status.DENIED, Status.CANCELLED, Status.EXPIRED)
LIFETIME, ROTATION, GRACE, ATTEMPTS = 300.0, 30.0, 10.0, 5
PEOPLE = {"A": ("Alice", REQUESTER_IP), "B": ("Bob", "192.0.2.44")}  # A shares the network


@dataclass
class Model:
    """What the service should hold for one login request."""

    created: Created
    expires_at: float
    created_at: float
    status: Status = Status.PENDING
    reason: str | None = None
    last_slot: int = 0  # the slot the requester last saw (to count rotations)
    approver: str | None = None  # "A" or "B" once scanned
    scanned_seq: int | None = None
    approved: bool = False
    code_required: bool = False
    attempts: int = 0

    @property
    def id(self) -> str:
        return self.created.request.id

    def effective(self, now: float) -> Status:
        return Status.EXPIRED if self.status in LIVE and now >= self.expires_at else self.status

    def slot(self, now: float) -> int:
        return int((now - self.created_at) // ROTATION)

    def seq_at(self, now: float) -> int:
        """The slot of the handle the request has now: the clock's while it waits for a
        scan, then the scanned one for good (0 if it ended unscanned)."""
        if self.status is Status.PENDING:
            return self.slot(now)
        return self.scanned_seq if self.scanned_seq is not None else 0

    def resolves(self, seq: int, now: float) -> bool:
        """Whether the handle of slot ``seq`` still finds this request: while pending, the
        current slot's, and the previous one's for the grace after the rotation (whether or
        not anyone asked for the new QR); once scanned, only the scanned one."""
        if self.status is not Status.PENDING:
            return seq == self.seq_at(now)
        slot = self.slot(now)
        return seq == slot or (
            seq == slot - 1 >= 0 and now < self.created_at + slot * ROTATION + GRACE
        )


class HandshakeMachine(RuleBasedStateMachine):
    confirm: ClassVar[str] = "code"
    identity: ClassVar[IdentityKind] = "builtin"

    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="qrlogin-props-"))
        self.loop = asyncio.new_event_loop()
        self.world: World = self.run(
            open_world(self.tmp, confirm=self.confirm, identity=self.identity)
        )
        self.people: dict[str, SignedIn] = {
            who: self.run(sign_in(self.world, name, ip=ip)) for who, (name, ip) in PEOPLE.items()
        }
        self.models: dict[str, Model] = {}
        self.terminal: dict[str, Status] = {}  # first terminal status seen per request

    # -- plumbing ------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def outcome(self, coro: Coroutine[Any, Any, T]) -> T | QrLoginError:
        try:
            return self.run(coro)
        except QrLoginError as exc:
            return exc

    def teardown(self) -> None:
        try:
            self.run(self.world.close())
        finally:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.run(asyncio.gather(*pending, return_exceptions=True))
            self.run(self.loop.shutdown_asyncgens())
            self.run(self.loop.shutdown_default_executor())
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def now(self) -> float:
        return self.world.clock.now()

    @property
    def lr(self):  # type: ignore[no-untyped-def]
        return self.world.lr

    def needs_code(self, who: str) -> bool:
        if self.confirm == "code":
            return True
        if self.confirm == "auto":
            return PEOPLE[who][1] != REQUESTER_IP
        return False

    def handle(self, m: Model, seq: int) -> str:
        return derive_handle(self.world.services.key, m.id, seq)

    def requester_read(self, m: Model) -> Any:
        """The requester's status call: authenticates; a rotation on the way writes nothing."""
        rec = self.run(self.lr.for_requester(m.id, m.created.secret))
        if m.effective(self.now) is Status.PENDING and m.slot(self.now) != m.last_slot:
            m.last_slot = m.slot(self.now)
            event("rotated")
        assert rec.handle_seq == (m.scanned_seq if m.scanned_seq is not None else 0)
        return rec

    # -- the requester ---------------------------------------------------------------------------

    @initialize(target=requests)
    def first_request(self) -> str:
        return self.create()

    @rule(target=requests)
    def create(self) -> str:
        created = self.run(self.lr.create(DESKTOP))
        now = self.now
        assert created.request.created_at == now
        m = Model(created, expires_at=now + LIFETIME, created_at=now)
        self.models[m.id] = m
        return m.id

    @rule(request_id=requests)
    def poll(self, request_id: str) -> None:
        m = self.models[request_id]
        rec = self.requester_read(m)
        view = self.lr.requester_view(rec).model_dump()
        status = m.effective(self.now)
        assert view["status"] == status.value
        if status is Status.PENDING:
            assert view["qr_url"].endswith("/q/" + self.handle(m, m.seq_at(self.now)))
        else:
            assert view["qr_url"] is None
        assert view["confirm_code_required"] is (status is Status.APPROVED and m.code_required)
        text = json.dumps(view)
        for person in self.people.values():  # nothing personal about any approver, ever
            for value in (person.user.id, person.user.email, person.user.display_name):
                assert value not in text
            assert person.session.id not in text

    @rule(request_id=requests)
    def cancel(self, request_id: str) -> None:
        m = self.models[request_id]
        rec = self.requester_read(m)
        after = self.run(self.lr.cancel(rec, DESKTOP))
        if m.effective(self.now) in LIVE:
            m.status, m.reason = Status.CANCELLED, "cancelled_by_requester"
            event("cancelled")
        assert after.status_at(self.now) is m.effective(self.now)

    @rule(
        request_id=requests,
        code=st.sampled_from(["right", "right spaced", "wrong", "missing"]),
    )
    def exchange(self, request_id: str, code: str) -> None:
        m = self.models[request_id]
        rec = self.requester_read(m)
        right = derive_confirm_code(self.world.services.key, m.id)
        typed = {
            "right": right,
            "right spaced": f"{right[:3]} {right[3:]}",
            "wrong": f"{(int(right) + 1) % 1_000_000:06d}",
            "missing": None,
        }[code]
        got = self.outcome(self.lr.exchange(rec, typed, DESKTOP))
        self.check_exchange(m, code, got)

    def check_exchange(self, m: Model, code: str, got: Any) -> None:
        status = m.effective(self.now)
        refusal = {
            Status.PENDING: AuthorizationPending,
            Status.SCANNED: AuthorizationPending,
            Status.DENIED: AccessDenied,
            Status.CANCELLED: AccessDenied,
            Status.EXPIRED: ExpiredToken,
            Status.CONSUMED: AlreadyUsed,
        }.get(status)
        if refusal is not None:
            assert type(got) is refusal, (status, got)
            event(f"exchange refused: {got.error}")
            return
        if m.code_required and code == "missing":
            assert isinstance(got, ConfirmCodeRequired), got
            return
        if m.code_required and code == "wrong":
            m.attempts += 1
            if m.attempts >= ATTEMPTS:
                assert isinstance(got, AccessDenied), got
                assert "Too many wrong confirm codes" in got.message
                m.status, m.reason = Status.DENIED, "too_many_attempts"
                event("burned")
            else:
                assert isinstance(got, InvalidCode), got
            return
        assert not isinstance(got, QrLoginError), got
        assert m.approver is not None and m.approved
        approver = self.people[m.approver]
        new = self.run(issued(self.world, got))
        assert new.user.id == approver.user.id
        assert new.session.user_id == approver.user.id
        assert new.session.linked_from_session_id == approver.session.id
        assert new.token != approver.token
        m.status = Status.CONSUMED
        event("consumed")

    # -- the approvers --------------------------------------------------------------------------

    @rule(
        request_id=requests,
        who=st.sampled_from(sorted(PEOPLE)),
        which=st.sampled_from(["current", "previous", "first"]),
    )
    def scan(self, request_id: str, who: str, which: str) -> None:
        m = self.models[request_id]
        current = m.seq_at(self.now)
        seq = {"current": current, "previous": current - 1, "first": 0}[which]
        handle = self.handle(m, seq) if seq >= 0 else self.handle(m, 10_000)
        got = self.outcome(self.lr.scan(handle, self.people[who].approver))
        now, status = self.now, m.effective(self.now)
        if seq >= 0 and m.resolves(seq, now) and status is Status.PENDING:
            assert not isinstance(got, QrLoginError), got
            assert got.status is Status.SCANNED
            m.status, m.approver, m.scanned_seq = Status.SCANNED, who, seq
            event(f"scanned with {which} handle")
        elif m.approver == who and not status.terminal and seq != m.scanned_seq:
            # the bound approver with another of the request's handles: either reply is fine
            assert isinstance(got, InvalidHandle) or got.status is status
        elif seq >= 0 and m.resolves(seq, now) and m.approver == who and not status.terminal:
            assert not isinstance(got, QrLoginError), got
            assert got.status is status  # scanning again changes nothing
        else:
            assert isinstance(got, InvalidHandle), got
            assert got.to_dict() == InvalidHandle().to_dict()

    @rule(request_id=requests, who=st.sampled_from(sorted(PEOPLE)))
    def scan_unknown_handle(self, request_id: str, who: str) -> None:
        m = self.models[request_id]
        handle = derive_handle(b"not the server key", m.id, m.seq_at(self.now))
        got = self.outcome(self.lr.scan(handle, self.people[who].approver))
        assert isinstance(got, InvalidHandle), got

    def decide(self, m: Model, who: str, approve: bool) -> Any:
        seq = (
            m.scanned_seq if m.approver == who and m.scanned_seq is not None else m.seq_at(self.now)
        )
        approver = self.people[who].approver
        action = self.lr.approve if approve else self.lr.deny
        got = self.outcome(action(self.handle(m, seq), approver))
        status = m.effective(self.now)
        bound = m.approver == who and m.resolves(seq, self.now)
        if bound and status is Status.SCANNED:
            assert not isinstance(got, QrLoginError), got
            if approve:
                m.status, m.approved = Status.APPROVED, True
                m.code_required = self.needs_code(who)
                event("approved")
            else:
                m.status, m.reason = Status.DENIED, "denied_by_approver"
                event("denied")
        elif bound and status is Status.APPROVED and not approve:
            assert not isinstance(got, QrLoginError), got  # withdrawn before the exchange
            m.status, m.reason = Status.DENIED, "denied_by_approver"
            event("approval withdrawn")
        elif bound and status is (Status.APPROVED if approve else Status.DENIED):
            assert not isinstance(got, QrLoginError), got  # a repeated click
        else:
            assert isinstance(got, InvalidHandle), got
            return got
        assert got.status is m.effective(self.now)
        expected_code = None
        if got.status is Status.APPROVED and m.code_required:
            expected_code = derive_confirm_code(self.world.services.key, m.id)
        assert got.confirm_code == expected_code
        return got

    @rule(request_id=requests, who=st.sampled_from(sorted(PEOPLE)))
    def approve(self, request_id: str, who: str) -> None:
        self.decide(self.models[request_id], who, approve=True)

    @rule(request_id=requests, who=st.sampled_from(sorted(PEOPLE)))
    def deny(self, request_id: str, who: str) -> None:
        self.decide(self.models[request_id], who, approve=False)

    @rule(request_id=requests, who=st.sampled_from(sorted(PEOPLE)))
    def scan_and_approve(self, request_id: str, who: str) -> None:
        """The usual path in one step, so runs get far enough to exchange."""
        self.scan(request_id, who, "current")
        self.approve(request_id, who)

    @rule(request_id=requests)
    def five_wrong_codes(self, request_id: str) -> None:
        for _ in range(ATTEMPTS):
            self.exchange(request_id, "wrong")

    # -- steering: act on a request already in the state where the action matters -----------

    def in_state(self, *states: Status) -> list[Model]:
        return [m for m in self.models.values() if m.effective(self.now) in states]

    @precondition(lambda self: self.in_state(Status.APPROVED))
    @rule(data=st.data(), code=st.sampled_from(["right", "right spaced", "wrong", "missing"]))
    def exchange_an_approved_request(self, data: st.DataObject, code: str) -> None:
        m = data.draw(st.sampled_from(self.in_state(Status.APPROVED)), label="request")
        self.exchange(m.id, code)

    @precondition(lambda self: self.in_state(Status.APPROVED))
    @rule(data=st.data())
    def five_wrong_codes_on_an_approved_request(self, data: st.DataObject) -> None:
        m = data.draw(st.sampled_from(self.in_state(Status.APPROVED)), label="request")
        self.five_wrong_codes(m.id)

    @precondition(lambda self: self.in_state(Status.SCANNED))
    @rule(data=st.data(), who=st.sampled_from(sorted(PEOPLE)), approve=st.booleans())
    def decide_a_scanned_request(self, data: st.DataObject, who: str, approve: bool) -> None:
        m = data.draw(st.sampled_from(self.in_state(Status.SCANNED)), label="request")
        self.decide(m, who, approve)

    @precondition(lambda self: self.in_state(Status.CONSUMED))
    @rule(data=st.data(), code=st.sampled_from(["right", "wrong", "missing"]))
    def exchange_a_consumed_request_again(self, data: st.DataObject, code: str) -> None:
        m = data.draw(st.sampled_from(self.in_state(Status.CONSUMED)), label="request")
        self.exchange(m.id, code)

    @precondition(lambda self: self.in_state(Status.PENDING))
    @rule(data=st.data(), who=st.sampled_from(sorted(PEOPLE)))
    def sign_in_with_a_pending_request(self, data: st.DataObject, who: str) -> None:
        """Scan, approve and exchange with the right code: the whole happy path."""
        m = data.draw(st.sampled_from(self.in_state(Status.PENDING)), label="request")
        self.scan(m.id, who, "current")
        self.approve(m.id, who)
        self.exchange(m.id, "right")

    @precondition(lambda self: self.in_state(*TERMINAL))
    @rule(
        data=st.data(),
        who=st.sampled_from(sorted(PEOPLE)),
        poke=st.sampled_from(["cancel", "scan", "approve", "deny", "exchange", "poll"]),
    )
    def poke_a_finished_request(self, data: st.DataObject, who: str, poke: str) -> None:
        """Everything anyone can do to a finished request must leave it as it is."""
        m = data.draw(st.sampled_from(self.in_state(*TERMINAL)), label="request")
        if poke == "cancel":
            self.cancel(m.id)
        elif poke == "scan":
            self.scan(m.id, who, "current")
        elif poke in ("approve", "deny"):
            self.decide(m, who, approve=poke == "approve")
        elif poke == "exchange":
            self.exchange(m.id, "right")
        else:
            self.poll(m.id)

    # -- time ------------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1.0, 9.5, 10.0, 29.0, 30.0, 31.0, 61.0, 150.0, 301.0]))
    def advance_clock(self, seconds: float) -> None:
        self.world.clock.advance(seconds)

    # -- invariants ------------------------------------------------------------------------------

    def snapshot(self) -> tuple[dict[str, LoginRequest], list[SessionFacts]]:
        """Every login request and session row (the identity adapter's own), read in one go."""

        async def read() -> tuple[dict[str, LoginRequest], list[SessionFacts]]:
            async with self.world.services.store.engine.connect() as conn:
                reqs = (await conn.execute(select(login_requests))).mappings().all()
            rows = [LoginRequest.from_mapping(r) for r in reqs]
            return {r.id: r for r in rows}, await self.world.people.sessions()

        return self.run(read())

    @invariant()
    def database_agrees_with_the_model(self) -> None:
        now = self.now
        rows, session_rows = self.snapshot()
        assert set(rows) == set(self.models)
        for m in self.models.values():
            row = rows[m.id]
            status = row.status_at(now)
            assert status is m.effective(now), (m, row)
            assert row.confirm_attempts == m.attempts
            if status in (Status.DENIED, Status.CANCELLED):
                assert row.reason == m.reason
            if m.approver is not None:
                assert row.approver_session_id == self.people[m.approver].session.id
            # terminal states never change
            if status.terminal:
                assert self.terminal.setdefault(m.id, status) is status
            assert m.id not in self.terminal or status is self.terminal[m.id]
        self.check_sessions(rows, session_rows)

    def check_sessions(
        self, rows: dict[str, LoginRequest], session_rows: list[SessionFacts]
    ) -> None:
        """At most one session per request, only for approved requests, always of the user who
        approved from their own signed-in session, never the approver's own token."""
        approver_sessions = {p.session.id for p in self.people.values()}
        by_request: dict[str, list[SessionFacts]] = {}
        for s in session_rows:
            if s.id in approver_sessions:
                continue
            assert s.login_request_id is not None, s  # nothing else creates sessions here
            by_request.setdefault(s.login_request_id, []).append(s)
        consumed = {m.id for m in self.models.values() if m.status is Status.CONSUMED}
        assert set(by_request) == consumed
        for request_id, made in by_request.items():
            assert len(made) == 1, made
            m = self.models[request_id]
            assert m.approved and m.approver is not None
            approver = self.people[m.approver]
            session = made[0]
            assert session.user_id == approver.user.id
            assert session.linked_from_session_id == approver.session.id
            assert session.token_hash != approver.session.token_hash
            row = rows[request_id]
            assert row.approver_user_id == approver.user.id
            assert row.approved_at is not None


# slow: each state machine runs 40 examples of 20 steps on a real SQLite (10-15 s here)
pytestmark = pytest.mark.slow
FAST = settings(max_examples=40, stateful_step_count=20, deadline=None)


class ConfirmByCode(HandshakeMachine):
    confirm = "code"


class ConfirmByTap(HandshakeMachine):
    confirm = "tap"


class ConfirmByCodeOnHostSessions(HandshakeMachine):
    confirm, identity = "code", "host"


class ConfirmByTapOnHostSessions(HandshakeMachine):
    confirm, identity = "tap", "host"


TestConfirmByCode = ConfirmByCode.TestCase
TestConfirmByCode.settings = FAST
TestConfirmByTap = ConfirmByTap.TestCase
TestConfirmByTap.settings = FAST
TestConfirmByCodeOnHostSessions = ConfirmByCodeOnHostSessions.TestCase
TestConfirmByCodeOnHostSessions.settings = FAST
TestConfirmByTapOnHostSessions = ConfirmByTapOnHostSessions.TestCase
TestConfirmByTapOnHostSessions.settings = FAST
