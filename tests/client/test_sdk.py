"""The SDK (``Client`` and ``AsyncClient``, through the ``side`` fixture) against a real
qrlogin server on 127.0.0.1: the whole handshake under both confirm policies, its endings,
a stream cut mid-wait, streaming refused on the way, refresh, and the stored session."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from client_support import CuttingProxy, Side, handle_of, sign_in
from keyring.backend import KeyringBackend

from qrlogin.client import (
    ExpiredToken,
    FileStore,
    InvalidCode,
    InvalidGrant,
    LoginCancelled,
    LoginDenied,
    NotSignedIn,
    default_store,
)
from qrlogin.core.policy import Policy
from support import LiveServer


def test_whole_flow_under_code_asks_for_the_confirm_code_then_signs_in(
    live_server: Callable[..., LiveServer], side: Side, store: FileStore
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    client = side.client(server.url)
    flow = side.call(client.login, "Ann's desk")
    assert flow.qr_url.startswith(f"{server.url}/q/")
    assert flow.user_code and flow.link_url == f"{server.url}/link"
    assert "<svg" in flow.qr_svg() and flow.qr_png().startswith(b"\x89PNG")

    handle = handle_of(flow.qr_url)
    details = phone.scan(handle)
    assert details["request"]["device_name"] == "Ann's desk"
    assert details["request"]["browser"] == "Python" and details["request"]["os"] == "Linux"
    seen = []
    for state in side.updates(flow):
        seen.append(state)
        if state.status == "scanned":
            assert state.approver_device == "Safari on iOS"
            confirm_code = phone.approve(handle)
    assert [s.status for s in seen] == ["scanned", "approved"]
    assert flow.state.confirm_code_required

    with pytest.raises(InvalidCode) as wrong:
        side.call(flow.exchange, "000000" if confirm_code != "000000" else "111111")
    assert wrong.value.error == "invalid_code"
    session = side.call(flow.exchange, confirm_code)
    assert session.user.display_name == "ann"
    assert store.load(server.url) == session
    me = side.call(client.me)
    assert me["user"]["id"] == session.user.id
    phone.close()


def test_whole_flow_under_tap_needs_no_code(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(confirm="tap")
    phone = sign_in(server)
    client = side.client(server.url)
    flow = side.call(client.login)
    handle = handle_of(flow.qr_url)
    phone.scan(handle)
    assert phone.approve(handle) is None
    session = side.call(flow.wait)
    assert session.user.display_name == "ann"
    assert side.call(client.me)["user"]["display_name"] == "ann"
    phone.close()


def test_wait_retries_a_wrong_confirm_code(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    client = side.client(server.url)
    flow = side.call(client.login)
    handle = handle_of(flow.qr_url)
    phone.scan(handle)
    code = phone.approve(handle)
    assert code is not None
    tries: list[int] = []

    def typed(state: object, attempt: int) -> str:
        tries.append(attempt)
        return code if attempt == 3 else "999999" if code != "999999" else "888888"

    async def typed_async(state: object, attempt: int) -> str:
        return typed(state, attempt)

    session = side.call(flow.wait, typed if side.kind == "sync" else typed_async)
    assert tries == [1, 2, 3]
    assert session.user.display_name == "ann"
    phone.close()


def test_a_denial_ends_the_wait_with_access_denied(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    flow = side.call(side.client(server.url).login)
    handle = handle_of(flow.qr_url)
    phone.scan(handle)
    phone.deny(handle)
    with pytest.raises(LoginDenied) as denied:
        side.call(flow.wait)
    assert denied.value.error == "access_denied"
    assert flow.state.status == "denied"
    phone.close()


def test_an_expired_request_ends_the_wait_with_expired_token(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(confirm="code", app_kwargs={"policy": Policy(request_lifetime=2)})
    flow = side.call(side.client(server.url).login)
    with pytest.raises(ExpiredToken) as expired:
        side.call(flow.wait)
    assert expired.value.error == "expired_token"
    assert flow.state.status == "expired"


def test_cancel_ends_the_request_on_the_server(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(confirm="code")
    flow = side.call(side.client(server.url).login)
    assert side.call(flow.cancel).status == "cancelled"
    with pytest.raises(LoginCancelled):
        side.call(flow.wait)
    seen = httpx.get(
        f"{server.url}/api/v1/login-requests/{flow.id}",
        headers={"authorization": f"Bearer {flow.machine._secret}"},
    )
    assert seen.json()["status"] == "cancelled"


def test_the_qr_rotation_arrives_as_an_update_with_a_new_url(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(app_kwargs={"policy": Policy(handle_rotation=1, handle_grace=1)})
    flow = side.call(side.client(server.url).login)
    first = flow.qr_url
    updates = side.updates(flow)
    rotated = next(updates)
    updates.close()
    assert rotated.status == "pending"
    assert rotated.qr_url != first and flow.qr_url == rotated.qr_url
    side.call(flow.cancel)


def test_a_stream_cut_mid_wait_reconnects_and_still_signs_in(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(confirm="tap")
    proxy = CuttingProxy(server.port)
    phone = sign_in(server)
    try:
        flow = side.call(side.client(proxy.url).login)
        handle = handle_of(flow.qr_url)
        phone.scan(handle)
        for state in side.updates(flow):
            if state.status == "scanned":
                proxy.cut()  # the stream dies while the phone has not approved yet
                phone.approve(handle)
        assert flow.state.status == "approved"
        assert proxy.stream_requests >= 2
        assert not flow.machine.polling
        assert side.call(flow.exchange).user.display_name == "ann"
    finally:
        proxy.close()
        phone.close()


def test_streams_refused_on_the_way_fall_back_to_long_polling(
    live_server: Callable[..., LiveServer], side: Side
) -> None:
    server = live_server(confirm="tap")
    proxy = CuttingProxy(server.port, refuse_streams=True)
    phone = sign_in(server)
    try:
        flow = side.call(side.client(proxy.url).login)
        handle = handle_of(flow.qr_url)
        phone.scan(handle)
        phone.approve(handle)
        session = side.call(flow.wait)
        assert flow.machine.polling
        assert proxy.stream_requests >= 3
        assert session.user.display_name == "ann"
    finally:
        proxy.close()
        phone.close()


def test_a_session_near_expiry_is_refreshed_and_the_rotation_is_stored(
    live_server: Callable[..., LiveServer], side: Side, store: FileStore
) -> None:
    # tokens that live 30 s are always within the SDK's 60 s refresh margin
    server = live_server(confirm="tap", app_kwargs={"policy": Policy(access_token_lifetime=30)})
    phone = sign_in(server)
    client = side.client(server.url)
    flow = side.call(client.login)
    handle = handle_of(flow.qr_url)
    phone.scan(handle)
    phone.approve(handle)
    first = side.call(flow.wait)

    refreshed = side.call(client.session)
    assert refreshed.access_token != first.access_token
    assert refreshed.refresh_token != first.refresh_token
    assert store.load(server.url) == refreshed
    assert side.call(client.me)["user"]["id"] == first.user.id

    side.call(client.logout)
    assert store.load(server.url) is None
    with pytest.raises(NotSignedIn):
        side.call(client.me)
    phone.close()


def test_the_stored_session_file_is_private_and_keyring_less_machines_use_files(
    live_server: Callable[..., LiveServer], config_home: Path
) -> None:
    assert isinstance(default_store(), FileStore)  # keyring has no backend in this test
    server = live_server(confirm="tap")
    phone = sign_in(server)
    from qrlogin.client import Client

    with Client(server.url) as client:
        flow = client.login()
        handle = handle_of(flow.qr_url)
        phone.scan(handle)
        phone.approve(handle)
        flow.wait()
    path = FileStore(config_home / "qrlogin").path_for(server.url)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    phone.close()


def test_importing_the_sdk_loads_no_server_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, qrlogin.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('qrlogin', 'fastapi', 'starlette', 'sqlalchemy', 'uvicorn')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    names = eval(loaded)  # a list literal printed just above
    assert all(n == "qrlogin" or n.startswith(("qrlogin.client", "qrlogin.core")) for n in names)


def test_the_desktop_example_in_docs_client_md_compiles() -> None:
    from support import REPO_ROOT

    text = (REPO_ROOT / "docs" / "client.md").read_text(encoding="utf-8")
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) <= 17
    compile(example, "docs/client.md", "exec")


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in a dict: stands in for the OS keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.passwords.pop((service, username))


def test_a_usable_keyring_holds_the_session_and_no_file_is_written(
    live_server: Callable[..., LiveServer], config_home: Path
) -> None:
    import keyring

    from qrlogin.client import Client, KeyringStore

    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        assert isinstance(default_store(), KeyringStore)
        server = live_server(confirm="tap")
        phone = sign_in(server)
        with Client(server.url) as client:
            flow = client.login()
            phone.scan(handle_of(flow.qr_url))
            phone.approve(handle_of(flow.qr_url))
            session = flow.wait()
            assert list(backend.passwords) == [("qrlogin", server.url)]
            assert client.session() == session
            client.logout()
        assert backend.passwords == {}
        assert not (config_home / "qrlogin" / "sessions").exists()
        phone.close()
    finally:
        keyring.set_keyring(previous)


def test_a_refresh_token_reused_after_the_retry_window_is_refused_and_forgotten(
    live_server: Callable[..., LiveServer], side: Side, store: FileStore
) -> None:
    policy = Policy(access_token_lifetime=30, refresh_retry_window=0)
    server = live_server(confirm="tap", app_kwargs={"policy": policy})
    phone = sign_in(server)
    client = side.client(server.url)
    flow = side.call(client.login)
    phone.scan(handle_of(flow.qr_url))
    phone.approve(handle_of(flow.qr_url))
    first = side.call(flow.wait)
    side.call(client.session)  # refreshed: ``first``'s refresh token is used up

    store.save(first)  # e.g. a stale copy of the session comes back
    with pytest.raises(InvalidGrant) as refused:
        side.call(client.session)
    assert refused.value.error == "invalid_grant"
    assert store.load(server.url) is None  # forgotten: the next step is to sign in again
    phone.close()
