"""``qrlogin login | whoami | logout | approve`` as a person meets them: the console script in a
real pseudo-terminal (pexpect), its screen rendered by a terminal emulator (pyte), the QR read
off that screen by a QR decoder (zxing-cpp), and a phone approving over the real API."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pyte
import pytest
from client_support import handle_of, sign_in
from PIL import Image

from qrlogin.client import LoginDenied
from support import LiveServer, decode_qr

QRLOGIN = str(Path(sys.executable).with_name("qrlogin"))
COLUMNS, ROWS = 80, 40
SCREEN_TIMEOUT = 20.0


@pytest.fixture
def env(config_home: Path) -> dict[str, str]:
    """The console script's environment: its own config dir, no keyring, a plain xterm."""
    made = {k: v for k, v in os.environ.items() if not k.startswith("QRLOGIN_")}
    made.update(
        XDG_CONFIG_HOME=str(config_home),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        TERM="xterm",
    )
    return made


@dataclass
class Pty:
    """A console script in a pseudo-terminal, with the screen it has drawn so far."""

    child: pexpect.spawn
    screen: pyte.Screen
    stream: pyte.ByteStream

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, wanted: str, timeout: float = SCREEN_TIMEOUT) -> str:
        """Read output until ``wanted`` is on the screen (or fail, showing the screen)."""
        deadline = time.monotonic() + timeout
        while wanted not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted!r} never appeared; the screen:\n{self.text()}")
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                if wanted not in self.text():
                    raise AssertionError(
                        f"exited before {wanted!r} appeared; the screen:\n{self.text()}"
                    ) from None
        return self.text()

    def finish(self) -> int:
        """Read to the end; the exit status."""
        while True:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=SCREEN_TIMEOUT))
            except pexpect.EOF:
                break
        self.child.wait()
        status: int = self.child.exitstatus
        return status

    def qr_image(self) -> tuple[bytes, int]:
        """The half-block QR on the screen as a PNG (6 px a module), and its width in
        columns. Every QR cell must be black on white: that is what makes it scan on any
        theme."""
        cells = [row for y in range(self.screen.lines) if (row := self._qr_cells(y))]
        assert cells, f"no QR on the screen:\n{self.text()}"
        width = len(cells[0])
        image = Image.new("L", (width * 6, len(cells) * 12), 255)
        for y, row in enumerate(cells):
            assert len(row) == width
            for x, char in enumerate(row):
                for half, dark in ((0, char in "▀█"), (1, char in "▄█")):
                    if dark:
                        image.paste(0, (x * 6, y * 12 + half * 6, x * 6 + 6, y * 12 + half * 6 + 6))
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue(), width

    def _qr_cells(self, y: int) -> str:
        row = self.screen.buffer[y]
        chars = []
        for x in range(self.screen.columns):
            cell = row[x]
            if cell.bg != "white":
                break  # the QR ends here (text may follow beside it)
            assert cell.fg == "black" and cell.data in "▀▄█ ", (x, y, cell)
            chars.append(cell.data)
        return "".join(chars)


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[Callable[..., Pty]]:
    made: list[Pty] = []

    def start(*args: str, rows: int = ROWS) -> Pty:
        child = pexpect.spawn(QRLOGIN, list(args), env=env, dimensions=(rows, COLUMNS))
        screen = pyte.Screen(COLUMNS, rows)
        pty = Pty(child, screen, pyte.ByteStream(screen))
        made.append(pty)
        return pty

    yield start
    for pty in made:
        if pty.child.isalive():
            pty.child.terminate(force=True)


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QRLOGIN, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def status_in_db(server: LiveServer, request_id: str) -> str:
    db = Path(server.settings.data_dir) / "qrlogin.db"
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute(
            "SELECT status FROM login_requests WHERE id = ?", (request_id,)
        ).fetchone()
    return str(status)


def test_login_in_a_terminal_scans_confirms_and_signs_in(
    live_server: Callable[..., LiveServer], spawn: Callable[..., Pty], env: dict[str, str]
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    pty = spawn("login", "--server", server.url, "--device-name", "Build box")
    screen = pty.wait_for("Waiting for a scan")
    assert f"{server.url}/link" in screen

    png, width = pty.qr_image()
    assert width <= COLUMNS
    (url,) = decode_qr(png)
    assert url.startswith(f"{server.url}/q/")
    details = phone.scan(handle_of(url))
    assert details["request"]["device_name"] == "Build box"
    pty.wait_for("Scanned on Safari on iOS — confirm on your phone")

    code = phone.approve(handle_of(url))
    assert code is not None
    pty.wait_for("Confirm code:")
    pty.child.sendline("000000" if code != "000000" else "111111")
    pty.wait_for("That code is not right: 4 tries left.")
    pty.child.sendline(code)
    pty.wait_for("Signed in as ann")
    assert pty.finish() == 0

    whoami = run(env, "whoami")  # the server signed in to last
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == f"ann <ann@example.com> on {server.url}"

    logout = run(env, "logout")
    assert logout.returncode == 0, logout.stderr
    again = run(env, "whoami")
    assert again.returncode == 1
    assert "Not signed in" in again.stderr and "qrlogin login" in again.stderr
    phone.close()


def test_five_wrong_confirm_codes_end_with_a_clear_message(
    live_server: Callable[..., LiveServer], spawn: Callable[..., Pty]
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    pty = spawn("login", "--server", server.url)
    pty.wait_for("Waiting for a scan")
    (url,) = decode_qr(pty.qr_image()[0])
    phone.scan(handle_of(url))
    code = phone.approve(handle_of(url))
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        pty.wait_for("Confirm code:")
        pty.child.sendline(wrong)
        pty.wait_for(f"{left} {'try' if left == 1 else 'tries'} left.")
    pty.child.sendline(wrong)
    pty.wait_for("Too many wrong confirm codes: this sign-in was blocked.")
    assert pty.finish() == 1
    phone.close()


def test_on_an_80x24_terminal_the_code_to_type_goes_beside_the_qr(
    live_server: Callable[..., LiveServer], spawn: Callable[..., Pty]
) -> None:
    server = live_server()
    pty = spawn("login", "--server", server.url, rows=24)
    screen = pty.wait_for("Waiting for a scan")
    (url,) = decode_qr(pty.qr_image()[0])
    assert url.startswith(f"{server.url}/q/")
    assert f"open {server.url}/link" in screen and "and type the code" in screen
    assert pty.screen.buffer[0][0].bg == "white"  # nothing scrolled off the top
    pty.child.sendintr()
    assert pty.finish() == 130


def test_the_qr_is_redrawn_in_place_when_it_rotates(
    live_server: Callable[..., LiveServer], spawn: Callable[..., Pty]
) -> None:
    from qrlogin.core.policy import Policy

    server = live_server(app_kwargs={"policy": Policy(handle_rotation=1, handle_grace=1)})
    pty = spawn("login", "--server", server.url)
    pty.wait_for("Waiting for a scan")
    first = decode_qr(pty.qr_image()[0])
    deadline = time.monotonic() + SCREEN_TIMEOUT
    while True:
        try:
            pty.stream.feed(pty.child.read_nonblocking(65536, timeout=0.2))
        except pexpect.TIMEOUT:
            pass
        # each frame clears the screen first, so the status line means a whole frame
        if "Waiting for a scan" in pty.text() and decode_qr(pty.qr_image()[0]) != first:
            break
        assert time.monotonic() < deadline, "the QR never changed"
    # drawn over the old one: one QR, at the top, no scrolling
    assert pty.screen.buffer[0][0].bg == "white"
    assert pty.text().count("Waiting for a scan") == 1
    pty.child.sendintr()
    assert pty.finish() == 130


def test_ctrl_c_cancels_the_request_on_the_server_and_exits_130(
    live_server: Callable[..., LiveServer], spawn: Callable[..., Pty]
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    pty = spawn("login", "--server", server.url)
    pty.wait_for("Waiting for a scan")
    (url,) = decode_qr(pty.qr_image()[0])
    request_id = phone.scan(handle_of(url))["request"]["id"]
    pty.wait_for("confirm on your phone")

    pty.child.sendintr()
    pty.wait_for("Cancelled")
    assert pty.finish() == 130
    assert status_in_db(server, request_id) == "cancelled"
    phone.close()


def test_json_lines_from_creation_to_signed_in(
    live_server: Callable[..., LiveServer], env: dict[str, str]
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    child = subprocess.Popen(
        [QRLOGIN, "login", "--server", server.url],  # stdout is a pipe: JSON lines
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        first = json.loads(child.stdout.readline())
        assert set(first) == {"qr_url", "user_code", "expires_at", "link_url"}
        handle = handle_of(first["qr_url"])
        phone.scan(handle)
        assert json.loads(child.stdout.readline()) == {
            "status": "scanned",
            "approver_device": "Safari on iOS",
        }
        code = phone.approve(handle)
        assert code is not None
        approved = json.loads(child.stdout.readline())
        assert approved["status"] == "approved" and approved["confirm_code_required"] is True
        asked = json.loads(child.stdout.readline())
        assert asked == {"status": "confirm_code_needed", "attempt": 1}
        child.stdin.write(("000000" if code != "000000" else "111111") + "\n")
        child.stdin.flush()
        wrong = json.loads(child.stdout.readline())
        assert wrong["error"] == "invalid_code" and wrong["tries_left"] == 4
        assert json.loads(child.stdout.readline())["attempt"] == 2
        child.stdin.write(code + "\n")
        child.stdin.flush()
        last = json.loads(child.stdout.readline())
        assert last["status"] == "signed_in"
        assert last["user"]["display_name"] == "ann"
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    phone.close()


def test_json_lines_end_with_an_error_line_and_a_nonzero_exit(
    live_server: Callable[..., LiveServer], env: dict[str, str]
) -> None:
    server = live_server(confirm="code")
    phone = sign_in(server)
    child = subprocess.Popen(
        [QRLOGIN, "login", "--server", server.url, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        handle = handle_of(json.loads(child.stdout.readline())["qr_url"])
        phone.scan(handle)
        assert json.loads(child.stdout.readline())["status"] == "scanned"
        phone.deny(handle)
        assert json.loads(child.stdout.readline())["status"] == "denied"
        error = json.loads(child.stdout.readline())
        assert error["error"] == "access_denied" and "denied" in error["message"]
        assert child.wait(30) == 1
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    phone.close()

    unreachable = run(env, "login", "--server", "http://127.0.0.1:9", "--json")
    assert unreachable.returncode == 1
    (line,) = unreachable.stdout.splitlines()
    assert json.loads(line)["error"] == "unreachable"


def test_approve_from_a_signed_in_terminal_prints_the_confirm_code(
    live_server: Callable[..., LiveServer], env: dict[str, str], tmp_path: Path
) -> None:
    from qrlogin.client import Client, FileStore

    server = live_server(confirm="tap")
    phone = sign_in(server)
    with Client(server.url) as terminal:  # this terminal signs in first (the phone approves)
        flow = terminal.login("Build box")
        phone.scan(handle_of(flow.qr_url or ""))
        phone.approve(handle_of(flow.qr_url or ""))
        flow.wait()
    phone.close()

    with Client(server.url, store=FileStore(tmp_path / "tv")) as tv:
        flow = tv.login("Living-room TV")
        asked = run(env, "approve", flow.user_code or "", "--server", server.url, stdin="y\n")
        assert asked.returncode == 0, asked.stderr
        assert "Living-room TV  (the device's own claim)" in asked.stdout
        assert "Approve? [y/N]" in asked.stdout and "Approved." in asked.stdout
        assert flow.wait().user.display_name == "ann"

        other = tv.login("Another TV")
        refused = run(env, "approve", other.qr_url or "", stdin="n\n")  # server from the URL
        assert refused.returncode == 1, refused.stderr
        assert "Denied." in refused.stdout
        with pytest.raises(LoginDenied):
            other.wait()
