"""The login request state machine of DESIGN.md.

```
pending ──scan──▶ scanned ──approve──▶ approved ──exchange(+confirm code)──▶ consumed
   │                 │                    │
   └────────deny / cancel / expire / too many wrong codes──────▶ denied | cancelled | expired
```

The table below is the single source of truth: the store turns each entry into one
conditional ``UPDATE … WHERE status IN (…) AND expires_at > now`` so a race has one winner,
and the property tests drive the same table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    PENDING = "pending"
    SCANNED = "scanned"
    APPROVED = "approved"
    CONSUMED = "consumed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.CONSUMED, Status.DENIED, Status.CANCELLED, Status.EXPIRED})
LIVE = frozenset(Status) - TERMINAL


class Action(enum.StrEnum):
    SCAN = "scan"
    APPROVE = "approve"
    DENY = "deny"
    CANCEL = "cancel"
    EXCHANGE = "exchange"
    BURN = "burn"  # too many wrong confirm codes


@dataclass(frozen=True)
class Transition:
    sources: frozenset[Status]
    target: Status


TRANSITIONS: dict[Action, Transition] = {
    Action.SCAN: Transition(frozenset({Status.PENDING}), Status.SCANNED),
    Action.APPROVE: Transition(frozenset({Status.SCANNED}), Status.APPROVED),
    # an approval may be withdrawn until the exchange (DESIGN.md requirement 11)
    Action.DENY: Transition(
        frozenset({Status.PENDING, Status.SCANNED, Status.APPROVED}), Status.DENIED
    ),
    Action.CANCEL: Transition(
        frozenset({Status.PENDING, Status.SCANNED, Status.APPROVED}), Status.CANCELLED
    ),
    Action.EXCHANGE: Transition(frozenset({Status.APPROVED}), Status.CONSUMED),
    Action.BURN: Transition(frozenset({Status.APPROVED}), Status.DENIED),
}


def can(action: Action, status: Status) -> bool:
    return status in TRANSITIONS[action].sources


def effective_status(status: Status, expires_at: float, now: float) -> Status:
    """A live request past its lifetime is expired, whether or not a sweep has written it."""
    if status in LIVE and now >= expires_at:
        return Status.EXPIRED
    return status
