"""docs/embedding.md's "Add QR login to your FastAPI app", run as the page prints it: its
adapters and mount over the example host's store (examples/fastapi_host/store.py), then a
whole sign-in through it, and its sign-out lines ending an approval."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.fastapi_host.store import HostStore
from support import REPO_ROOT

GUIDE = REPO_ROOT / "docs" / "embedding.md"
BROWSER = {"qrlogin-client": "browser"}


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of one ``## section`` of the guide, in order."""
    text = GUIDE.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


@pytest.fixture
def guide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The guide's example, executed with ``store`` standing for the host's own."""
    monkeypatch.chdir(tmp_path)  # its data_dir is the relative var/qrlogin
    namespace: dict[str, Any] = {"store": HostStore(tmp_path / "host.db")}
    exec(
        compile(python_blocks("Add QR login to your FastAPI app")[0], str(GUIDE), "exec"), namespace
    )
    yield namespace
    namespace["store"].close()


async def run_block(code: str, namespace: dict[str, Any]) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    result = eval(compile(code, str(GUIDE), "exec", flags=flags), namespace)
    if result is not None:
        await result


async def test_the_guides_example_signs_the_new_device_in_with_the_hosts_own_cookie(
    guide: dict[str, Any], tmp_path: Path
) -> None:
    store, qr, app = guide["store"], guide["qr"], guide["app"]
    user = store.add_user("ann", "Ann", "pw")
    phone_token, phone_session = store.start_session(
        user.id, device_name="", user_agent="phone", ip="198.51.100.7", signed_in_with="password"
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 5000))
    async with (
        qr.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="https://app.example") as desktop,
        httpx.AsyncClient(transport=transport, base_url="https://app.example") as phone,
    ):
        created = await desktop.post("/qr/api/v1/login-requests", headers=BROWSER)
        assert created.status_code == 201, created.text
        request_id, qr_url = created.json()["id"], created.json()["qr_url"]
        assert qr_url.startswith("https://app.example/qr/q/")
        handle = qr_url.rsplit("/", 1)[1]
        phone.cookies.set("host_session", phone_token)
        assert (await phone.get(f"/qr/api/v1/scan/{handle}")).status_code == 200
        approved = await phone.post(f"/qr/api/v1/scan/{handle}/approve", headers=BROWSER)
        assert approved.status_code == 200, approved.text
        exchanged = await desktop.post(
            f"/qr/api/v1/login-requests/{request_id}/session",
            json={"confirm_code": approved.json()["confirm_code"]},
            headers=BROWSER,
        )
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.json()["user"] == {"id": user.id, "display_name": "Ann"}
        token = exchanged.cookies["host_session"]
        session, signed_in = store.session_of(token)
        assert signed_in.id == user.id and session.id != phone_session.id
        assert session.linked_from == phone_session.id
        assert "httponly" in exchanged.headers["set-cookie"].lower()
    assert (tmp_path / "var" / "qrlogin" / "qrlogin.db").is_file()


async def test_the_guides_sign_out_lines_end_an_approval_not_yet_exchanged(
    guide: dict[str, Any],
) -> None:
    store, qr, app = guide["store"], guide["qr"], guide["app"]
    user = store.add_user("ann", "Ann", "pw")
    phone_token, session = store.start_session(
        user.id, device_name="", user_agent="phone", ip="198.51.100.7", signed_in_with="password"
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 5000))
    async with (
        qr.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="https://app.example") as desktop,
        httpx.AsyncClient(transport=transport, base_url="https://app.example") as phone,
    ):
        created = (await desktop.post("/qr/api/v1/login-requests", headers=BROWSER)).json()
        handle = created["qr_url"].rsplit("/", 1)[1]
        phone.cookies.set("host_session", phone_token)
        await phone.get(f"/qr/api/v1/scan/{handle}")
        approved = await phone.post(f"/qr/api/v1/scan/{handle}/approve", headers=BROWSER)
        sign_out = python_blocks("Add QR login to your FastAPI app")[1]
        await run_block(sign_out, {**guide, "session": session})
        state = (await desktop.get(f"/qr/api/v1/login-requests/{created['id']}")).json()
        assert (state["status"], state["reason"]) == ("denied", "approver_signed_out")
        exchanged = await desktop.post(
            f"/qr/api/v1/login-requests/{created['id']}/session",
            json={"confirm_code": approved.json()["confirm_code"]},
            headers=BROWSER,
        )
        assert (exchanged.status_code, exchanged.json()["error"]) == (403, "access_denied")
        assert "host_session" not in exchanged.cookies
