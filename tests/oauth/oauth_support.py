"""Helpers for the OpenID Provider interop tests: a real ``qrlogin serve`` subprocess on
127.0.0.1, clients registered through the ``qrlogin clients`` CLI on its data dir, a browser
(an httpx client with a cookie jar) signed in through the pages, the forms on a page, and a
phone that approves or denies a device by its user code.

    with serving(tmp_path) as server:
        client = server.add_client("TV app", public=True)
        browser = sign_in_browser(server, "ann@example.com")
"""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

from client.client_support import Approver, outbox_code
from support import free_port

QRLOGIN = Path(sys.executable).with_name("qrlogin")


def qrlogin_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any ``QRLOGIN_*``, plus the data dir and
    ``settings`` (names without the prefix: ``public_url="http://…"``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRLOGIN_")}
    env["QRLOGIN_DATA_DIR"] = str(data_dir)
    env.update({f"QRLOGIN_{name.upper()}": value for name, value in settings.items()})
    return env


@dataclass
class Registered:
    """A client as ``qrlogin clients add --json`` printed it."""

    client_id: str
    client_secret: str | None
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    public: bool
    first_party: bool


@dataclass
class QrloginServer:
    """``qrlogin serve --dev`` as a subprocess; ``url`` is its public URL (and issuer)."""

    url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _metadata: dict[str, Any] = field(default_factory=dict)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``qrlogin ARGS…`` on this server's data dir; fails the test on a non-zero exit."""
        done = subprocess.run(
            [str(QRLOGIN), *args],
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"qrlogin {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def add_client(
        self,
        name: str,
        *,
        redirect_uris: tuple[str, ...] = (),
        post_logout_redirect_uris: tuple[str, ...] = (),
        public: bool = False,
        first_party: bool = False,
    ) -> Registered:
        args = ["clients", "add", "--name", name, "--json"]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        for uri in post_logout_redirect_uris:
            args += ["--post-logout-redirect-uri", uri]
        if public:
            args.append("--public")
        if first_party:
            args.append("--first-party")
        printed = json.loads(self.cli(*args).stdout)
        made = Registered(
            client_id=printed["client_id"],
            client_secret=printed.get("client_secret"),
            name=printed["name"],
            redirect_uris=printed["redirect_uris"],
            post_logout_redirect_uris=printed["post_logout_redirect_uris"],
            public=printed["public"],
            first_party=printed["first_party"],
        )
        assert made.public == public and made.first_party == first_party, printed
        assert (made.client_secret is None) == public, printed
        return made

    def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once)."""
        if not self._metadata:
            reply = httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=10)
            assert reply.status_code == 200, reply.text
            self._metadata = reply.json()
        return self._metadata

    def jwks(self) -> dict[str, Any]:
        reply = httpx.get(self.metadata()["jwks_uri"], timeout=10)
        assert reply.status_code == 200, reply.text
        keys: dict[str, Any] = reply.json()
        return keys

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 60) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(QRLOGIN), "serve", "--dev", "--port", str(port)],
                env=self.env,
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"qrlogin serve exited ({self.proc.returncode}):\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"qrlogin serve did not answer within {timeout} s:\n{self.log()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def serving(directory: Path, **settings: str) -> Iterator[QrloginServer]:
    """A ``qrlogin serve --dev`` on a free port of 127.0.0.1 with its data dir in ``directory``,
    polled devices told to wait 1 s; stopped at exit, and the test fails if it logged a
    traceback. ``settings`` add or override ``QRLOGIN_*`` variables."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{free_port()}"
    env = qrlogin_env(
        directory / "data",
        **{"public_url": url, "device_poll_interval": "1", **settings},
    )
    (directory / "data").mkdir(exist_ok=True)
    server = QrloginServer(url, directory / "data", env, directory / "serve.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


# --------------------------------------------------------------------------- pages


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    buttons: dict[str, tuple[str, str]]  # id -> (name, value) of each submit button


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            method = attr.get("method", "get").lower()
            self.forms.append(Form(attr.get("action", ""), method, {}, {}))
            return
        if not self.forms or tag not in {"input", "button"}:
            return
        kind = attr.get("type", "submit" if tag == "button" else "text")
        if kind == "submit":
            if "id" in attr:
                self.forms[-1].buttons[attr["id"]] = (attr.get("name", ""), attr.get("value", ""))
        elif "name" in attr and kind not in {"checkbox", "radio"}:
            self.forms[-1].fields[attr["name"]] = attr.get("value", "")


def forms_in(page: str) -> list[Form]:
    """The forms of an HTML page, with the values of their inputs and their submit buttons."""
    parser = _FormParser()
    parser.feed(page)
    return parser.forms


def form_with_button(page: str, button_id: str) -> Form:
    for form in forms_in(page):
        if button_id in form.buttons:
            return form
    raise AssertionError(f"no form with a #{button_id} button on the page:\n{page}")


def submit(browser: httpx.Client, page: httpx.Response, button_id: str) -> httpx.Response:
    """Press the button ``#button_id`` of a form on ``page`` (as a browser posts it: its
    fields, the button's name and value) and follow the redirects."""
    form = form_with_button(page.text, button_id)
    data = dict(form.fields)
    name, value = form.buttons[button_id]
    if name:
        data[name] = value
    target = page.url.join(html.unescape(form.action) or page.url.path)
    if form.method == "post":
        return browser.post(target, data=data, follow_redirects=True)
    return browser.get(target, params=data, follow_redirects=True)


def sign_in_browser(server: QrloginServer, email: str) -> httpx.Client:
    """A browser signed in to qrlogin through its pages by the email code (read from the dev
    outbox). Its cookie jar holds the session cookie; it follows no redirect unless asked."""
    browser = new_browser()
    done = sign_in_through_pages(browser, server, email)
    assert done.status_code == 303, done.text
    me = browser.get(f"{server.url}/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == email
    return browser


def new_browser() -> httpx.Client:
    return httpx.Client(timeout=10, headers={"user-agent": "Mozilla/5.0 (X11; Linux) Firefox/140"})


def sign_in_through_pages(
    browser: httpx.Client, server: QrloginServer, email: str, next: str = ""
) -> httpx.Response:
    """``GET /signin?next=…``, ``POST /signin`` (the email), ``POST /signin/code`` (the code
    from the dev outbox): the reply to the last, with the session cookie: a 303 to ``next``,
    or for an authorization request the page that continues there."""
    page = browser.get(f"{server.url}/signin", params={"next": next} if next else None)
    assert page.status_code == 200, page.text
    asked = browser.post(
        f"{server.url}/signin", data={**form_of(page.text, "/signin").fields, "email": email}
    )
    assert asked.status_code == 200, asked.text
    code_form = form_of(asked.text, "/signin/code")
    assert code_form.fields.get("next", "") == next
    return browser.post(
        f"{server.url}/signin/code",
        data={**code_form.fields, "code": outbox_code(server, email)},
    )


def form_of(page: str, action: str) -> Form:
    for form in forms_in(page):
        if form.action.endswith(action):
            return form
    raise AssertionError(f"no form posting to {action} on the page:\n{page}")


# --------------------------------------------------------------------------- the phone


def link_device(phone: Approver, user_code: str) -> str:
    """The phone types the device's user code; the handle of its login request."""
    reply = phone.http.post("/api/v1/link", json={"user_code": user_code})
    assert reply.status_code == 200, reply.text
    handle: str = reply.json()["handle"]
    return handle


def approve_device(phone: Approver, user_code: str) -> None:
    phone.approve(link_device(phone, user_code))


def deny_device(phone: Approver, user_code: str) -> None:
    phone.deny(link_device(phone, user_code))


def user_id(phone: Approver) -> str:
    me = phone.http.get("/api/v1/me")
    assert me.status_code == 200, me.text
    found: str = me.json()["user"]["id"]
    return found
