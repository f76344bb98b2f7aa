"""Identity ports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Approver:
    """The signed-in person on the approving device, taken only from its own session
    (DESIGN.md requirement 3): never from a request body."""

    user_id: str
    display_name: str
    session_id: str
    ip: str
    user_agent: str = ""
    device_name: str = ""
