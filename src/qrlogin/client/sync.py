"""``Client``: the blocking driver of the SDK's flows."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from qrlogin.client.base import (
    NO_CONFIRM_CODE,
    ClientBase,
    LoginFlowBase,
    build,
    http_options,
    is_event_stream,
)
from qrlogin.client.login import LoginMachine, create
from qrlogin.client.state import LoginState, Session
from qrlogin.client.steps import (
    Answer,
    AskCode,
    CloseStream,
    Emit,
    Failure,
    Flow,
    OpenStream,
    ReadLine,
    Send,
    Sleep,
    Step,
)
from qrlogin.client.storage import TokenStore

T = TypeVar("T")
ConfirmCode = Callable[[LoginState, int], str]


class _Driver:
    """Does a flow's I/O with one ``httpx.Client``; holds at most one open stream."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self._stream: httpx.Response | None = None
        self._lines: Iterator[str] | None = None

    def close_stream(self) -> None:
        stream, self._stream, self._lines = self._stream, None, None
        if stream is not None:
            stream.close()

    def perform(self, step: Step) -> Answer:
        try:
            return self._perform(step)
        except httpx.TransportError as exc:
            self.close_stream()
            return Failure(exc)

    def _perform(self, step: Step) -> Answer:
        if isinstance(step, Send):
            return self.http.send(build(self.http, step.call, None))
        if isinstance(step, OpenStream):
            self.close_stream()
            response = self.http.send(build(self.http, step.call, step.read_timeout), stream=True)
            if not is_event_stream(response):
                response.read()
                response.close()
                return response
            self._stream, self._lines = response, response.iter_lines()
            return response
        if isinstance(step, ReadLine):
            if self._lines is None:
                return None
            return next(self._lines, None)
        if isinstance(step, CloseStream):
            self.close_stream()
        elif isinstance(step, Sleep):
            time.sleep(step.seconds)
        return None

    def steps(self, flow: Flow[T]) -> Generator[Emit | AskCode, Answer, T]:
        """Run ``flow``, doing its I/O; what is for the caller (``Emit``, ``AskCode``) is
        yielded up, with the answer sent back in. Returns what ``flow`` returns."""
        answer: Answer = None
        try:
            while True:
                try:
                    step = flow.send(answer)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                if isinstance(step, Emit | AskCode):
                    answer = yield step
                else:
                    answer = self.perform(step)
        finally:
            flow.close()
            self.close_stream()

    def run(
        self,
        flow: Flow[T],
        on_update: Callable[[LoginState], Any] | None = None,
        confirm_code: ConfirmCode | None = None,
    ) -> T:
        steps = self.steps(flow)
        answer: Answer = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as stop:
                result: T = stop.value
                return result
            answer = None
            if isinstance(step, Emit) and on_update is not None:
                on_update(step.state)
            elif isinstance(step, AskCode):
                if confirm_code is None:
                    steps.close()
                    raise ValueError(NO_CONFIRM_CODE)
                answer = confirm_code(step.state, step.attempt)


class LoginFlow(LoginFlowBase):
    """A login request started by ``Client.login``."""

    def __init__(
        self, driver: _Driver, server_url: str, machine: LoginMachine, client: Client
    ) -> None:
        super().__init__(server_url, machine, client.account)
        self._driver = driver

    def updates(self) -> Iterator[LoginState]:
        """Every change until approval: rotations (a new ``qr_url``), ``scanned`` (with
        ``approver_device``), ``approved``. Raises ``LoginDenied``, ``LoginCancelled``,
        ``ExpiredToken`` … if the request ends instead."""
        for step in self._driver.steps(self.machine.watch()):
            assert isinstance(step, Emit), "watching asks nothing"
            yield step.state

    def exchange(self, confirm_code: str | None = None) -> Session:
        """The new session for this device (stored). ``InvalidCode``: wrong code, try again."""
        session = self._driver.run(self.machine.exchange(self.server_url, confirm_code))
        return self.account.saved(session)

    def wait(
        self,
        confirm_code: ConfirmCode | None = None,
        on_update: Callable[[LoginState], Any] | None = None,
    ) -> Session:
        """Watch until approved, then exchange (the session is stored). When the server asks
        for a confirm code, ``confirm_code(state, attempt)`` gives it (attempts 1 to 5)."""
        flow = self.machine.sign_in(self.server_url)
        return self.account.saved(self._driver.run(flow, on_update, confirm_code))

    def cancel(self) -> LoginState:
        return self._driver.run(self.machine.cancel())


class Client(ClientBase):
    """Blocking client of a qrlogin server.

    >>> with Client("https://login.example.com") as client:
    ...     flow = client.login("my-app on ann's laptop")
    ...     print("\\n".join(flow.qr_text()))
    ...     session = flow.wait(confirm_code=lambda state, attempt: input("Code: "))
    """

    def __init__(
        self,
        server_url: str,
        *,
        store: TokenStore | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        super().__init__(server_url, store)
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client(**http_options(self.server_url))
        self._driver = _Driver(self.http)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._driver.close_stream()
        if self._own_http:
            self.http.close()

    def login(self, device_name: str | None = None) -> LoginFlow:
        """Start a login request: show its ``qr_text()``/``qr_png()`` or ``user_code``."""
        created = self._driver.run(create(device_name))
        return LoginFlow(self._driver, self.server_url, LoginMachine(created), self)

    def session(self) -> Session:
        """The stored session, refreshed if it is about to expire (``NotSignedIn`` if none)."""
        return self._driver.run(self.account.session())

    def refresh(self) -> Session:
        return self._driver.run(self.account.refresh(self.session()))

    def me(self) -> dict[str, Any]:
        return self._driver.run(self.account.me())

    def logout(self) -> None:
        self._driver.run(self.account.logout())

    def scan(self, handle: str) -> dict[str, Any]:
        return self._driver.run(self.account.scan(handle))

    def link(self, user_code: str) -> dict[str, Any]:
        return self._driver.run(self.account.link(user_code))

    def approve(self, handle: str) -> dict[str, Any]:
        return self._driver.run(self.account.approve(handle))

    def deny(self, handle: str) -> dict[str, Any]:
        return self._driver.run(self.account.deny(handle))
