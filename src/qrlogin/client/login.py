"""The requester's side of a login request, sans-I/O: create it, watch it (SSE, reconnecting
with back-off, long-poll when streaming keeps breaking), exchange it, cancel it.

``LoginMachine``'s methods are flows (see ``steps``): generators that ``Client`` and
``AsyncClient`` drive alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from qrlogin.client.calls import backoff, bearer, body_of, request
from qrlogin.client.errors import (
    AlreadyUsed,
    ExpiredToken,
    InvalidCode,
    LoginCancelled,
    LoginDenied,
    QrLoginError,
    error_from,
)
from qrlogin.client.sse import EventParser
from qrlogin.client.state import (
    APPROVED,
    CANCELLED,
    CONSUMED,
    DENIED,
    EXPIRED,
    LoginState,
    Session,
)
from qrlogin.client.steps import (
    AskCode,
    Call,
    CloseStream,
    Emit,
    Failure,
    Flow,
    OpenStream,
    ReadLine,
    Sleep,
)

API = "/api/v1/login-requests"
#: A stream that sends nothing for this long is dead: the server sends a heartbeat every 15 s.
STREAM_READ_TIMEOUT = 45.0
#: Streams that break this many times in a row, each before bringing a change, mean something
#: on the way (a proxy) does not let streams through: wait by long-polling instead.
STREAM_FAILURES_BEFORE_POLLING = 3
LONG_POLL_WAIT = 25.0
#: How long after its ``expires_at`` a request is taken as expired without the server saying
#: so (clocks differ a little; the server's word usually arrives first).
EXPIRY_GRACE = 10.0
#: Wrong confirm codes the server takes before it burns the request (``Policy``'s default).
CONFIRM_ATTEMPTS = 5
#: A bound on the rounds of one watch (connections and polls), far above a 5-minute request's
#: need, so no fault of the network or server can make it loop for ever.
MAX_ROUNDS = 1000


def create(device_name: str | None) -> Flow[dict[str, Any]]:
    """``POST /api/v1/login-requests``: the created request, its secret included."""
    body = {} if device_name is None else {"device_name": device_name}
    response = yield from request(Call("POST", API, json=body))
    created = body_of(response)
    if not created.get("secret"):
        raise QrLoginError("The server did not return a requester secret.")
    return created


def ending(state: LoginState) -> QrLoginError | None:
    """The exception for a request that has ended without being signed in here."""
    if state.status == DENIED:
        return LoginDenied()
    if state.status == CANCELLED:
        return LoginCancelled()
    if state.status == EXPIRED:
        return ExpiredToken()
    if state.status == CONSUMED:
        return AlreadyUsed()
    return None


class LoginMachine:
    """One login request, seen by its requester."""

    def __init__(self, created: dict[str, Any], clock: Callable[[], float] = time.time) -> None:
        self.id: str = created["id"]
        self._secret: str = created["secret"]
        self._clock = clock
        self.state = LoginState.from_json(created)
        self.polling = False  # True once streams proved unusable

    def __repr__(self) -> str:  # never show the secret
        return f"LoginMachine({self.id!r}, status={self.state.status!r})"

    @property
    def _auth(self) -> dict[str, str]:
        return bearer(self._secret)

    def _take(self, body: dict[str, Any]) -> Emit | None:
        """Keep a newer reading; an ``Emit`` when it changed something a watcher shows."""
        new = LoginState.from_json(body)
        if new.version < self.state.version:
            return None  # an older reading arriving late
        changed = (new.version, new.qr_url) != (self.state.version, self.state.qr_url)
        self.state = new
        return Emit(new) if changed else None

    # -- watching ------------------------------------------------------------------------

    def watch(self) -> Flow[LoginState]:
        """Until the request is approved (returns that state); raises its ending if it is
        denied, cancelled, expired or used elsewhere. Emits every change, rotations included."""
        failures = 0
        for _ in range(MAX_ROUNDS):
            if self.state.status == APPROVED:
                return self.state
            ended = ending(self.state)
            if ended is not None:
                raise ended
            if self._clock() > self.state.expires_at + EXPIRY_GRACE:
                raise ExpiredToken()
            if self.polling:
                changed = yield from self._poll_once()
            else:
                changed = yield from self._stream_once()
            if changed:  # a stream that brought a change, or a poll that answered
                failures = 0
                continue
            failures += 1
            if failures >= STREAM_FAILURES_BEFORE_POLLING and not self.polling:
                self.polling = True
                failures = 0
            yield Sleep(backoff(failures))
        raise ExpiredToken("Gave up waiting for this login request. Start a new one.")

    def _stream_once(self) -> Flow[bool]:
        """One SSE connection, until the request is approved or ended, or the stream breaks.
        True if it brought a change."""
        call = Call("GET", f"{API}/{self.id}/events", headers=self._auth)
        answer = yield OpenStream(call, STREAM_READ_TIMEOUT)
        if isinstance(answer, Failure):
            return False
        if not isinstance(answer, httpx.Response):
            raise TypeError(f"a driver answered OpenStream with {answer!r}")
        if answer.status_code != 200:
            if answer.status_code >= 500:
                return False
            raise error_from(answer)
        if not answer.headers.get("content-type", "").startswith("text/event-stream"):
            self.polling = True  # something in between rewrote the stream: do not retry it
            return False
        parser = EventParser()
        changed = False
        while True:
            line = yield ReadLine()
            if not isinstance(line, str):
                break  # ended or broken: the caller reconnects if need be
            if self._clock() > self.state.expires_at + EXPIRY_GRACE:
                break  # heartbeats alone do not keep a wait going past the request's life
            event = parser.feed(line)
            if event is None or event.event != "state":
                continue
            emit = self._take(json.loads(event.data))
            if emit is not None:
                changed = True
                yield emit
            if self.state.status == APPROVED or self.state.final:
                changed = True
                break
        # not in a ``finally``: a flow closed early must not yield; its driver closes the
        # stream then
        yield CloseStream()
        return changed

    def _poll_once(self) -> Flow[bool]:
        """One long-poll: the server answers when the version changes or the QR rotates, or
        after ``LONG_POLL_WAIT``. False if it failed."""
        call = Call(
            "GET",
            f"{API}/{self.id}",
            params={"version": self.state.version, "wait": LONG_POLL_WAIT},
            headers=self._auth,
            timeout=LONG_POLL_WAIT + 20,
        )
        response = yield from request(call, retries=0)
        if response.status_code >= 500:
            return False
        emit = self._take(body_of(response))
        if emit is not None:
            yield emit
        else:
            yield Sleep(1.0)  # a server that answers at once, unchanged, is not polled flat out
        return True  # a poll that answered, changed or not, is a healthy one

    # -- ending --------------------------------------------------------------------------

    def exchange(self, server_url: str, confirm_code: str | None = None) -> Flow[Session]:
        """Trade the approved request for a new session. ``InvalidCode`` for a wrong confirm
        code (try again; the fifth wrong one burns the request: ``AccessDenied``)."""
        body = {} if confirm_code is None else {"confirm_code": confirm_code.strip()}
        call = Call("POST", f"{API}/{self.id}/session", json=body, headers=self._auth)
        # never repeated: an exchange that went through but whose reply was lost would be
        # refused as already used, and a repeated wrong code would spend a second try
        response = yield from request(call, retries=0)
        return Session.from_reply(server_url, body_of(response), self._clock())

    def sign_in(self, server_url: str) -> Flow[Session]:
        """``watch``, then ``exchange``; asks for the confirm code (``AskCode``) when the
        server wants one, again after each wrong one, ``CONFIRM_ATTEMPTS`` times at most."""
        yield from self.watch()
        if not self.state.confirm_code_required:
            return (yield from self.exchange(server_url))
        for attempt in range(1, CONFIRM_ATTEMPTS):
            code = yield from self._ask(attempt)
            try:
                return (yield from self.exchange(server_url, code))
            except InvalidCode:
                continue
        # the last try: a wrong code now burns the request (``AccessDenied``)
        code = yield from self._ask(CONFIRM_ATTEMPTS)
        return (yield from self.exchange(server_url, code))

    def _ask(self, attempt: int) -> Flow[str]:
        code = yield AskCode(self.state, attempt)
        if not isinstance(code, str):
            raise TypeError(f"a driver answered AskCode with {code!r}")
        return code

    def cancel(self) -> Flow[LoginState]:
        """``DELETE``: the request ends as cancelled (already ended: its state as it is)."""
        response = yield from request(Call("DELETE", f"{API}/{self.id}", headers=self._auth))
        if response.status_code == 403 or response.status_code == 410:
            return self.state
        self._take(body_of(response))
        return self.state
