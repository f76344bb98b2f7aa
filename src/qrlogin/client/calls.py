"""Requests with retries, and replies turned into data or typed exceptions: the small pieces
every flow builds on."""

from __future__ import annotations

import random
from typing import Any

import httpx

from qrlogin.client.errors import ServerUnreachable, error_from
from qrlogin.client.steps import Call, Failure, Flow, Send, Sleep

MAX_BACKOFF = 8.0


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0, 1, …): doubling from 0.5 s up to 8 s, with
    ±20 % jitter so many clients cut off together do not come back together."""
    base: float = min(0.5 * 2**attempt, MAX_BACKOFF)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def request(call: Call, *, retries: int = 2) -> Flow[httpx.Response]:
    """Send ``call``; on a transport failure or a 503, wait and try again up to ``retries``
    times. Give ``retries=0`` to calls that must not repeat (the exchange)."""
    for attempt in range(retries + 1):
        answer = yield Send(call)
        if isinstance(answer, httpx.Response):
            if answer.status_code != 503 or attempt == retries:
                return answer
        elif not isinstance(answer, Failure):
            raise TypeError(f"a driver answered Send with {answer!r}")
        if attempt < retries:
            yield Sleep(backoff(attempt))
    raise ServerUnreachable()


def body_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx reply (``{}`` for 204); the typed error otherwise."""
    if not response.is_success:
        raise error_from(response)
    if response.status_code == 204 or not response.content:
        return {}
    body = response.json()
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON object from {response.url}, got {body!r}")
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
