"""``AsyncClient``: the asyncio driver of the same flows ``Client`` drives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx

from qrlogin.client.base import (
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
AsyncConfirmCode = Callable[[LoginState, int], Awaitable[str]]


class _AsyncDriver:
    """Does a flow's I/O with one ``httpx.AsyncClient``; holds at most one open stream."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self._stream: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None

    async def close_stream(self) -> None:
        stream, self._stream, self._lines = self._stream, None, None
        if stream is not None:
            await stream.aclose()

    async def perform(self, step: Step) -> Answer:
        try:
            return await self._perform(step)
        except httpx.TransportError as exc:
            await self.close_stream()
            return Failure(exc)

    async def _perform(self, step: Step) -> Answer:
        if isinstance(step, Send):
            return await self.http.send(build(self.http, step.call, None))
        if isinstance(step, OpenStream):
            await self.close_stream()
            request = build(self.http, step.call, step.read_timeout)
            response = await self.http.send(request, stream=True)
            if not is_event_stream(response):
                await response.aread()
                await response.aclose()
                return response
            self._stream, self._lines = response, response.aiter_lines()
            return response
        if isinstance(step, ReadLine):
            if self._lines is None:
                return None
            return await anext(self._lines, None)
        if isinstance(step, CloseStream):
            await self.close_stream()
        elif isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        return None

    async def run(
        self,
        flow: Flow[T],
        on_update: Callable[[LoginState], Awaitable[None]] | None = None,
        confirm_code: AsyncConfirmCode | None = None,
    ) -> T:
        """Run ``flow``: its I/O here, its ``Emit`` to ``on_update``, its ``AskCode`` to
        ``confirm_code``; return what it returns."""
        answer: Answer = None
        try:
            while True:
                try:
                    step = flow.send(answer)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                answer = None
                if isinstance(step, Emit):
                    if on_update is not None:
                        await on_update(step.state)
                elif isinstance(step, AskCode):
                    if confirm_code is None:
                        raise ValueError(
                            "This server asks for the confirm code: pass confirm_code="
                        )
                    answer = await confirm_code(step.state, step.attempt)
                else:
                    answer = await self.perform(step)
        finally:
            flow.close()
            await self.close_stream()


class AsyncLoginFlow(LoginFlowBase):
    """A login request started by ``AsyncClient.login``."""

    def __init__(
        self, driver: _AsyncDriver, server_url: str, machine: LoginMachine, client: AsyncClient
    ) -> None:
        super().__init__(server_url, machine, client.account)
        self._driver = driver

    async def updates(self) -> AsyncIterator[LoginState]:
        """As ``LoginFlow.updates``: every change until approval, or the ending raised."""
        flow = self.machine.watch()
        answer: Answer = None
        try:
            while True:
                try:
                    step = flow.send(answer)
                except StopIteration:
                    return
                if isinstance(step, Emit):
                    answer = None
                    yield step.state
                elif isinstance(step, AskCode):
                    raise TypeError("watching asks nothing")
                else:
                    answer = await self._driver.perform(step)
        finally:
            flow.close()
            await self._driver.close_stream()

    async def exchange(self, confirm_code: str | None = None) -> Session:
        session = await self._driver.run(self.machine.exchange(self.server_url, confirm_code))
        return self.account.saved(session)

    async def wait(
        self,
        confirm_code: AsyncConfirmCode | None = None,
        on_update: Callable[[LoginState], Awaitable[None]] | None = None,
    ) -> Session:
        """As ``LoginFlow.wait``, with coroutine callbacks."""
        flow = self.machine.sign_in(self.server_url)
        return self.account.saved(await self._driver.run(flow, on_update, confirm_code))

    async def cancel(self) -> LoginState:
        return await self._driver.run(self.machine.cancel())


class AsyncClient(ClientBase):
    """The asyncio twin of ``Client``: the same calls, awaited."""

    def __init__(
        self,
        server_url: str,
        *,
        store: TokenStore | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(server_url, store)
        self._own_http = http is None
        self.http = http if http is not None else httpx.AsyncClient(**http_options(self.server_url))
        self._driver = _AsyncDriver(self.http)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._driver.close_stream()
        if self._own_http:
            await self.http.aclose()

    async def login(self, device_name: str | None = None) -> AsyncLoginFlow:
        created = await self._driver.run(create(device_name))
        return AsyncLoginFlow(self._driver, self.server_url, LoginMachine(created), self)

    async def session(self) -> Session:
        return await self._driver.run(self.account.session())

    async def refresh(self) -> Session:
        return await self._driver.run(self.account.refresh(await self.session()))

    async def me(self) -> dict[str, Any]:
        return await self._driver.run(self.account.me())

    async def logout(self) -> None:
        await self._driver.run(self.account.logout())

    async def scan(self, handle: str) -> dict[str, Any]:
        return await self._driver.run(self.account.scan(handle))

    async def link(self, user_code: str) -> dict[str, Any]:
        return await self._driver.run(self.account.link(user_code))

    async def approve(self, handle: str) -> dict[str, Any]:
        return await self._driver.run(self.account.approve(handle))

    async def deny(self, handle: str) -> dict[str, Any]:
        return await self._driver.run(self.account.deny(handle))
