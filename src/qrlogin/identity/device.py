"""What the server knows of a device from its own request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    """A device as its request shows it: the name it gives itself (a claim, never a fact:
    DESIGN.md requirement 13), its User-Agent and the address it comes from."""

    name: str
    user_agent: str
    ip: str
