"""The login request state machine table and effective status."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrlogin.core.machine import (
    LIVE,
    TERMINAL,
    TRANSITIONS,
    Action,
    Status,
    can,
    effective_status,
)

P, S, A = Status.PENDING, Status.SCANNED, Status.APPROVED
C, D, X, E = Status.CONSUMED, Status.DENIED, Status.CANCELLED, Status.EXPIRED


def test_terminal_and_live_states_partition_all_states() -> None:
    assert frozenset({C, D, X, E}) == TERMINAL
    assert frozenset({P, S, A}) == LIVE
    assert TERMINAL | LIVE == frozenset(Status)
    assert not TERMINAL & LIVE
    assert [s for s in Status if s.terminal] == [C, D, X, E]


def test_every_action_has_a_transition() -> None:
    assert set(TRANSITIONS) == set(Action)


def test_terminal_states_have_no_outgoing_transitions() -> None:
    for action, transition in TRANSITIONS.items():
        assert not transition.sources & TERMINAL, action
    for status in TERMINAL:
        assert not any(can(action, status) for action in Action), status


def test_expired_is_never_a_target_nor_a_source() -> None:
    # expiry happens by time (effective_status), never by an action
    assert all(t.target is not E and E not in t.sources for t in TRANSITIONS.values())


@pytest.mark.parametrize(
    ("action", "sources", "target"),
    [
        (Action.SCAN, {P}, S),
        (Action.APPROVE, {S}, A),
        (Action.DENY, {P, S, A}, D),
        (Action.CANCEL, {P, S, A}, X),
        (Action.EXCHANGE, {A}, C),
        (Action.BURN, {A}, D),
    ],
)
def test_each_action_starts_only_from_its_sources(
    action: Action, sources: set[Status], target: Status
) -> None:
    assert TRANSITIONS[action].sources == sources
    assert TRANSITIONS[action].target is target
    assert {s for s in Status if can(action, s)} == sources


def test_scanning_cannot_approve_and_approval_needs_a_scan() -> None:
    assert TRANSITIONS[Action.SCAN].target is S
    assert not can(Action.APPROVE, P)
    assert not can(Action.EXCHANGE, S)
    assert not can(Action.EXCHANGE, P)


def test_consumed_is_reached_only_by_exchange() -> None:
    assert [a for a, t in TRANSITIONS.items() if t.target is C] == [Action.EXCHANGE]


def test_a_live_request_past_its_lifetime_is_expired() -> None:
    for status in LIVE:
        assert effective_status(status, expires_at=100.0, now=100.0) is E
        assert effective_status(status, expires_at=100.0, now=250.0) is E


def test_a_live_request_before_its_lifetime_keeps_its_status() -> None:
    for status in LIVE:
        assert effective_status(status, expires_at=100.0, now=99.999) is status


def test_terminal_requests_never_turn_into_expired() -> None:
    for status in TERMINAL:
        assert effective_status(status, expires_at=100.0, now=10_000.0) is status
        assert effective_status(status, expires_at=100.0, now=0.0) is status


@given(
    status=st.sampled_from(list(Status)),
    expires_at=st.floats(0, 1e10, allow_nan=False),
    now=st.floats(0, 1e10, allow_nan=False),
)
def test_effective_status_is_expired_exactly_for_live_requests_past_their_lifetime(
    status: Status, expires_at: float, now: float
) -> None:
    got = effective_status(status, expires_at, now)
    if status in LIVE and now >= expires_at:
        assert got is E
    else:
        assert got is status
    later = max(now, expires_at) + 1.0
    if got.terminal:  # once terminal, more time changes nothing
        assert effective_status(got, expires_at, later) is got
    else:  # and every live request ends up expired
        assert effective_status(got, expires_at, later) is E
