"""``Client``: the blocking driver of the SDK's flows."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from qrlogin.client import login
from qrlogin.client.base import ClientBase, LoginFlowBase, build, http_options, is_event_stream
from qrlogin.client.errors import InvalidCode
from qrlogin.client.login import LoginMachine
from qrlogin.client.state import LoginState, Session
from qrlogin.client.steps import (
    Answer,
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

    def updates(self, flow: Flow[T]) -> Generator[LoginState, None, T]:
        """Run ``flow``, yielding what it emits; return what it returns."""
        answer: Answer = None
        try:
            while True:
                try:
                    step = flow.send(answer)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                if isinstance(step, Emit):
                    answer = None
                    yield step.state
                else:
                    answer = self.perform(step)
        finally:
            flow.close()
            self.close_stream()

    def run(self, flow: Flow[T]) -> T:
        updates = self.updates(flow)
        while True:
            try:
                next(updates)
            except StopIteration as stop:
                result: T = stop.value
                return result


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
        yield from self._driver.updates(self.machine.watch())

    def exchange(self, confirm_code: str | None = None) -> Session:
        """The new session for this device (stored). ``InvalidCode``: wrong code, try again."""
        session = self._driver.run(self.machine.exchange(self.server_url, confirm_code))
        return self.account.saved(session)

    def wait(
        self,
        confirm_code: ConfirmCode | None = None,
        on_update: Callable[[LoginState], Any] | None = None,
    ) -> Session:
        """Watch until approved, then exchange. When the server asks for a confirm code,
        ``confirm_code(state, attempt)`` is called for it (attempt 1 to 5)."""
        for state in self.updates():
            if on_update is not None:
                on_update(state)
        if not self.state.confirm_code_required:
            return self.exchange()
        if confirm_code is None:
            raise ValueError("This server asks for the confirm code: pass confirm_code=")
        for attempt in range(1, login.CONFIRM_ATTEMPTS):
            try:
                return self.exchange(confirm_code(self.state, attempt))
            except InvalidCode:
                continue
        return self.exchange(confirm_code(self.state, login.CONFIRM_ATTEMPTS))

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
        created = self._driver.run(login.create(device_name))
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
