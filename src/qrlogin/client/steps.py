"""The steps a sans-I/O flow asks its driver for, and what the driver answers.

A flow is a generator (httpx's ``Auth.auth_flow`` trick): it yields a step, the driver does the
I/O — blocking in ``Client``, awaiting in ``AsyncClient`` — and sends the answer back in. So
both clients share every decision: what to request, when to reconnect, when to give up.

=================  ===============================================================
step               the driver answers
=================  ===============================================================
``Send``           the ``httpx.Response`` with its body read, or a ``Failure``
``OpenStream``     the response; a 200 ``text/event-stream`` is left open, anything
                   else has its body read; or a ``Failure``
``ReadLine``       the next line of the open stream, ``None`` at its end, or a ``Failure``
``CloseStream``    ``None`` (closing a stream that is not open is fine)
``Sleep``          ``None``, after that many seconds
``Emit``           ``None``: the driver hands the state to whoever is watching
``AskCode``        the confirm code the caller's callback gives (a ``str``)
=================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import httpx

if TYPE_CHECKING:
    from qrlogin.client.state import LoginState

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One HTTP request, relative to the server URL; the driver builds it with its client (so
    the client's base URL, User-Agent and timeouts apply)."""

    method: str
    path: str
    json: Any = None
    params: dict[str, str | int | float] | None = None
    headers: dict[str, str] | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Send:
    call: Call


@dataclass(frozen=True)
class OpenStream:
    call: Call
    read_timeout: float


@dataclass(frozen=True)
class ReadLine:
    pass


@dataclass(frozen=True)
class CloseStream:
    pass


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    state: LoginState


@dataclass(frozen=True)
class AskCode:
    """The server wants the confirm code the approver shows; ``attempt`` counts from 1."""

    state: LoginState
    attempt: int


@dataclass(frozen=True)
class Failure:
    """The transport failed (refused, reset, timed out); ``error`` is httpx's exception."""

    error: httpx.TransportError


Step: TypeAlias = Send | OpenStream | ReadLine | CloseStream | Sleep | Emit | AskCode
Answer: TypeAlias = httpx.Response | str | Failure | None
Flow: TypeAlias = Generator[Step, Answer, T]
