"""``qrlogin login | whoami | logout | approve``: the SDK for a person at a terminal.

``qrlogin login`` draws the QR with half blocks (black on white whatever the terminal's theme,
with its quiet zone), the user code and the ``/link`` address under it and a status line, all
redrawn in place; asks for the confirm code when the server wants it; Ctrl-C cancels the login
request on the server and exits 130. Where stdout is not a terminal, or with ``--json``, it
speaks one JSON object per line instead (see docs/client.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from qrlogin.client.errors import InvalidCode, QrLoginError
from qrlogin.client.login import CONFIRM_ATTEMPTS
from qrlogin.client.state import APPROVED, PENDING, SCANNED, LoginState, Session
from qrlogin.client.storage import normalize_url, remember_server, remembered_server
from qrlogin.client.sync import Client, LoginFlow

CANCELLED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C
HOME_AND_CLEAR = "\x1b[H\x1b[J"
CLEAR_LINE = "\x1b[K"
_HANDLE_IN_URL = re.compile(r"^(https?://.+?)/q/([^/?#\s]+)")


def add_commands(sub: Any) -> None:
    """Add the client's subcommands to ``qrlogin``'s argument parser."""
    server_help = "the qrlogin server (default: $QRLOGIN_SERVER, else the last one signed in to)"
    login = sub.add_parser("login", help="sign this terminal in by scanning a QR code")
    login.add_argument("--server", help=server_help)
    login.add_argument("--device-name", help="how the approving phone names this device")
    login.add_argument("--json", action="store_true", help="one JSON object per line")
    login.set_defaults(func=login_command)
    whoami = sub.add_parser("whoami", help="who this terminal is signed in as")
    whoami.add_argument("--server", help=server_help)
    whoami.add_argument("--json", action="store_true", help="print the reply as JSON")
    whoami.set_defaults(func=whoami_command)
    logout = sub.add_parser("logout", help="sign this terminal out (on the server too)")
    logout.add_argument("--server", help=server_help)
    logout.set_defaults(func=logout_command)
    approve = sub.add_parser("approve", help="approve another device's sign-in from here")
    approve.add_argument("target", metavar="URL_OR_CODE", help="the QR's URL, or the user code")
    approve.add_argument("--server", help=server_help)
    approve.add_argument("--yes", action="store_true", help="approve without asking")
    approve.set_defaults(func=approve_command)


def server_of(args: argparse.Namespace) -> str:
    server = args.server or os.environ.get("QRLOGIN_SERVER") or remembered_server()
    if not server:
        raise QrLoginError("Which server? Pass --server https://… (or set QRLOGIN_SERVER).")
    return normalize_url(server)


def fail(message: str) -> int:
    print(f"qrlogin: {message}", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- login


def login_command(args: argparse.Namespace) -> int:
    try:
        server = server_of(args)
    except QrLoginError as exc:
        return fail(exc.message)
    device = args.device_name or f"qrlogin on {socket.gethostname()}"
    as_json = args.json or not sys.stdout.isatty()
    screen: Screen = JsonLines(sys.stdout, sys.stdin) if as_json else Terminal(sys.stdout)
    with Client(server) as client:
        flow: LoginFlow | None = None
        try:
            flow = client.login(device)
            screen.started(flow)
            session = flow.wait(confirm_code=screen.confirm_code, on_update=screen.update)
        except (KeyboardInterrupt, EOFError):  # Ctrl-C, or Ctrl-D at the confirm code prompt
            if flow is not None:
                try:
                    flow.cancel()
                except QrLoginError:
                    pass  # it ends by itself within minutes anyway
            screen.cancelled()
            return CANCELLED_EXIT
        except QrLoginError as exc:
            screen.failed(exc)
            return 1
    remember_server(server)
    screen.signed_in(session)
    return 0


class Screen(Protocol):
    """What ``login`` shows; ``Terminal`` and ``JsonLines`` are the two faces."""

    def started(self, flow: LoginFlow) -> None: ...
    def update(self, state: LoginState) -> None: ...
    def confirm_code(self, state: LoginState, attempt: int) -> str: ...

    def signed_in(self, session: Session) -> None: ...
    def failed(self, error: QrLoginError) -> None: ...
    def cancelled(self) -> None: ...


def status_line(state: LoginState) -> str:
    if state.status == PENDING:
        left = max(0, int(state.expires_at - time.time()))
        return f"Waiting for a scan (this code works for {left // 60}:{left % 60:02d} more)"
    if state.status == SCANNED:
        return f"Scanned on {state.approver_device} — confirm on your phone"
    if state.status == APPROVED:
        return f"Approved on {state.approver_device}"
    return state.status.capitalize()


class Terminal(Screen):
    def __init__(self, out: TextIO, read: Callable[[str], str] = input) -> None:
        self.out = out
        self.read = read
        self.flow: LoginFlow | None = None

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def started(self, flow: LoginFlow) -> None:
        self.flow = flow
        self.update(flow.state)

    def update(self, state: LoginState) -> None:
        lines: list[str] = []
        if state.qr_url is not None:
            lines += self._code_block(state)
        lines.append(status_line(state))
        self.write(HOME_AND_CLEAR + "".join(line + CLEAR_LINE + "\n" for line in lines))

    def _code_block(self, state: LoginState) -> list[str]:
        """The QR with the camera-less way under it, or beside it where the terminal is too
        short for both (an 80x24 terminal: 21 rows of QR leave no room below)."""
        assert self.flow is not None, "started() comes first"
        size = shutil.get_terminal_size()
        qr = self.flow.qr_text()
        info = [
            "No camera? On a signed-in device",
            f"open {self.flow.link_url}",
            f"and type the code  {state.user_code}",
        ]
        qr_width = self._visible(qr[0])
        if qr_width > size.columns:
            return [f"(The terminal is too narrow for the QR code; open {state.qr_url})", *info]
        if len(qr) + len(info) + 3 <= size.lines or qr_width + 2 + max(map(len, info)) > (
            size.columns
        ):
            return [*qr, "", *info, ""]
        beside = ["", *info]
        return [row + ("  " + beside[i] if i < len(beside) else "") for i, row in enumerate(qr)]

    @staticmethod
    def _visible(line: str) -> int:
        return len(re.sub(r"\x1b\[[0-9;]*m", "", line))

    def confirm_code(self, state: LoginState, attempt: int) -> str:
        if attempt == 1:
            self.write("Type the 6-digit code your phone shows.\n")
        else:
            left = CONFIRM_ATTEMPTS - attempt + 1
            self.write(f"That code is not right: {left} {'try' if left == 1 else 'tries'} left.\n")
        return self.read("Confirm code: ")

    def signed_in(self, session: Session) -> None:
        self.write(f"Signed in as {session.user.display_name}\n")

    def failed(self, error: QrLoginError) -> None:
        self.write(f"{error.message}\n")

    def cancelled(self) -> None:
        self.write("\nCancelled: the login request was withdrawn on the server.\n")


class JsonLines(Screen):
    """One JSON object per line out; confirm codes one per line in."""

    def __init__(self, out: TextIO, inp: TextIO) -> None:
        self.out = out
        self.inp = inp

    def emit(self, **fields: Any) -> None:
        self.out.write(json.dumps(fields) + "\n")
        self.out.flush()

    def started(self, flow: LoginFlow) -> None:
        self.emit(
            qr_url=flow.qr_url,
            user_code=flow.user_code,
            expires_at=flow.expires_at,
            link_url=flow.link_url,
        )

    def update(self, state: LoginState) -> None:
        fields: dict[str, Any] = {"status": state.status}
        if state.status == PENDING:
            fields.update(qr_url=state.qr_url, qr_expires_at=state.qr_expires_at)
        if state.status in (SCANNED, APPROVED):
            fields["approver_device"] = state.approver_device
        if state.status == APPROVED:
            fields["confirm_code_required"] = state.confirm_code_required
        self.emit(**fields)

    def confirm_code(self, state: LoginState, attempt: int) -> str:
        if attempt > 1:
            wrong = InvalidCode()
            self.emit(
                error=wrong.error,
                message=wrong.message,
                tries_left=CONFIRM_ATTEMPTS - attempt + 1,
            )
        self.emit(status="confirm_code_needed", attempt=attempt)
        line = self.inp.readline()
        if not line:
            raise QrLoginError("No confirm code on standard input (it ended).")
        return line.strip()

    def signed_in(self, session: Session) -> None:
        self.emit(
            status="signed_in",
            user={"id": session.user.id, "display_name": session.user.display_name},
        )

    def failed(self, error: QrLoginError) -> None:
        self.emit(error=error.error, message=error.message)

    def cancelled(self) -> None:
        self.emit(error="cancelled", message="The login request was cancelled.")


# --------------------------------------------------------------------------- the rest


def whoami_command(args: argparse.Namespace) -> int:
    try:
        server = server_of(args)
        with Client(server) as client:
            me = client.me()
    except QrLoginError as exc:
        return fail(exc.message)
    if args.json:
        print(json.dumps(me))
    else:
        user = me["user"]
        email = f" <{user['email']}>" if user.get("email") else ""
        print(f"{user['display_name']}{email} on {server}")
    return 0


def logout_command(args: argparse.Namespace) -> int:
    try:
        server = server_of(args)
        with Client(server) as client:
            client.logout()
    except QrLoginError as exc:
        return fail(exc.message)
    print(f"Signed out of {server}.")
    return 0


def describe(details: dict[str, Any]) -> str:
    info = details["request"]
    network = "on your network" if info["same_network"] else "NOT on your network"
    return "\n".join(
        [
            "Sign in a new device?",
            f"  Device:  {info['device_name']}  (the device's own claim)",
            f"  Browser: {info['browser']} on {info['os']}",
            f"  IP:      {info['ip']} ({network})",
            f"  Started: {info['age_seconds']} s ago",
        ]
    )


def approve_command(args: argparse.Namespace) -> int:
    match = _HANDLE_IN_URL.match(args.target.strip())
    try:
        server = normalize_url(args.server) if args.server else None
        if server is None and match:
            server = normalize_url(match.group(1))
        with Client(server or server_of(args)) as client:
            details = client.scan(match.group(2)) if match else client.link(args.target)
            print(describe(details))
            answer = "y" if args.yes else input("Approve? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                client.deny(details["handle"])
                print("Denied.")
                return 1
            decision = client.approve(details["handle"])
    except QrLoginError as exc:
        return fail(exc.message)
    except (KeyboardInterrupt, EOFError):
        print("\nNothing approved.")
        return CANCELLED_EXIT
    if decision.get("confirm_code"):
        print(f"Approved. Type this code on the new device: {decision['confirm_code']}")
    else:
        print("Approved.")
    return 0
