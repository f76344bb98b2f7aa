"""qrlogin as an OpenID Provider for node's ``openid-client`` 6 (issue 12).

A real ``qrlogin serve --dev`` subprocess on 127.0.0.1; clients registered with
``qrlogin clients add --json`` on its data dir; the relying party is a node script in
tests/oauth/node/ using openid-client's own API (discovery, PKCE, the code exchange with its
id_token, state, nonce and iss checks, refresh, userinfo, introspection and revocation, the
end-session URL, the device grant) and jose for the id_token's signature against
``/oauth/jwks``. The test is the person: a browser (httpx with cookies) signed in through
qrlogin's pages, or a phone signed in over the API that approves a user code. Script and
test talk in JSON lines over stdin/stdout.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from oauth_support import (
    QrloginServer,
    deny_device,
    form_with_button,
    link_device,
    serving,
    sign_in_browser,
    user_id,
)

from client.client_support import sign_in

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).resolve().parent / "node"
REPLY_WAIT = 90  # seconds a script may take to say its next line before the test gives up


@pytest.fixture
def server(tmp_path: Path) -> Iterator[QrloginServer]:
    """``qrlogin serve --dev`` on a free port with its own data dir, device poll interval
    1 s (oauth_support.serving)."""
    assert (NODE_DIR / "node_modules" / "openid-client").is_dir(), (
        "tests/oauth/node/node_modules is missing: run scripts/test, or npm ci in tests/oauth/node"
    )
    with serving(tmp_path / "qrlogin") as started:
        yield started


# --------------------------------------------------------------------------- the relying party


class NodeScript:
    """One script of tests/oauth/node as a subprocess: ``tell`` writes a JSON line to its
    stdin, ``hear(step)`` reads its next line and checks it is that step."""

    def __init__(self, script: str, log_path: Path) -> None:
        self.log_path = log_path
        self._stderr = log_path.open("wb")
        self.proc = subprocess.Popen(
            ["node", script],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")  # end of output

    def tell(self, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(fields) + "\n")
        self.proc.stdin.flush()

    def hear(self, step: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=REPLY_WAIT)
        except queue.Empty:
            raise AssertionError(f"the node script said nothing for {REPLY_WAIT}s") from None
        said: dict[str, Any] = json.loads(line) if line else {"step": "exited"}
        assert said["step"] == step, (
            f"expected {step!r} from the node script, got {said}\n"
            f"stderr: {self.log_path.read_text(errors='replace')[-3000:]}"
        )
        return said

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``node("code_flow.mjs")`` starts a script; all are ended at teardown."""
    started: list[NodeScript] = []

    def start(script: str) -> NodeScript:
        made = NodeScript(script, tmp_path / f"{script}.{len(started)}.stderr")
        started.append(made)
        return made

    yield start
    for script in started:
        script.close()


# --------------------------------------------------------------------------- the person


def authorize_in_browser(
    browser: httpx.Client, authorization_url: str, redirect_uri: str
) -> tuple[str, bool]:
    """Follows the authorization URL as the browser would, pressing #approve on the consent
    page if one is shown, until qrlogin redirects to ``redirect_uri`` (not followed: nothing
    listens there); returns that URL and whether consent was asked."""
    url, consent_asked = authorization_url, False
    for _ in range(10):
        reply = browser.get(url)
        if reply.status_code == 200:
            form = form_with_button(reply.text, "approve")
            name, value = form.buttons["approve"]
            consent_asked = True
            reply = browser.post(
                urljoin(str(reply.url), form.action), data={**form.fields, name: value}
            )
        assert reply.status_code in {302, 303}, f"{reply.status_code} {reply.url}\n{reply.text}"
        url = urljoin(str(reply.url), reply.headers["location"])
        if url.startswith(redirect_uri):
            return url, consent_asked
    raise AssertionError(f"no redirect to {redirect_uri} after 10 hops; last {url}")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def typed(user_code: str) -> str:
    """A user code as a person may type it: without spaces or dashes."""
    return re.sub(r"[\s-]", "", user_code)


def audiences(claims: dict[str, Any]) -> list[str]:
    """``aud`` as a list (a JWT may carry one audience as a plain string)."""
    aud = claims["aud"]
    return list(aud) if isinstance(aud, list) else [aud]


# --------------------------------------------------------------------------- the tests

RP = "http://127.0.0.1:9"  # nothing listens there: the browser's redirects are read, not followed


@pytest.mark.parametrize("kind", ["confidential", "public"])
def test_openid_client_signs_in_by_code_with_pkce_refreshes_and_logs_out(
    server: QrloginServer, node: Any, kind: str
) -> None:
    # the confidential client is a third party (consent page), the public one first-party
    registered = server.add_client(
        f"node {kind} app",
        redirect_uris=(f"{RP}/callback",),
        post_logout_redirect_uris=(f"{RP}/signed-out",),
        public=kind == "public",
        first_party=kind == "public",
    )
    rp = node("code_flow.mjs")
    rp.tell(
        issuer=server.url,
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        redirect_uri=f"{RP}/callback",
        post_logout_redirect_uri=f"{RP}/signed-out",
    )
    authorization_url = rp.hear("authorize")["url"]
    assert authorization_url.startswith(f"{server.url}/oauth/authorize?")

    browser = sign_in_browser(server, "ann@example.com")
    ann = browser.get(f"{server.url}/api/v1/me").json()["user"]["id"]
    callback_url, consent_asked = authorize_in_browser(browser, authorization_url, f"{RP}/callback")
    assert consent_asked == (kind == "confidential")
    assert query_of(callback_url)["iss"] == server.url  # RFC 9207
    rp.tell(callback_url=callback_url)
    done = rp.hear("done")

    claims = done["claims"]
    assert done["issuer"] == server.url
    assert claims["iss"] == server.url
    assert audiences(claims) == [registered.client_id]
    assert claims["sub"] == ann
    assert {"exp", "iat", "auth_time", "nonce", "amr", "sid"} <= claims.keys()
    assert claims["email"] == "ann@example.com"
    assert claims["email_verified"] is True
    assert done["verified"]["alg"] == "RS256"
    assert done["verified"]["payload"] == claims  # the same token, checked by jose on its own
    assert done["token_type"].lower() == "bearer"
    assert done["refresh_token"]
    assert done["userinfo"]["sub"] == ann
    assert done["userinfo"]["email"] == "ann@example.com"
    refreshed = done["refreshed"]
    assert refreshed["access_token"] != done["access_token"]
    assert refreshed["userinfo"]["sub"] == ann
    if refreshed["claims"] is not None:
        assert refreshed["claims"]["sub"] == ann

    if kind == "confidential":
        active = done["introspection"]["access_token"]
        assert active["active"] is True, active
        assert active["client_id"] == registered.client_id
        assert active["sub"] == ann
        assert done["introspection"]["revoked_refresh_token"]["active"] is False

    end_session_url = done["end_session_url"]
    assert end_session_url.startswith(f"{server.url}/oauth/logout?")
    logout = browser.get(end_session_url)
    assert logout.status_code in {302, 303}, logout.text
    back = logout.headers["location"]
    assert back.startswith(f"{RP}/signed-out")
    assert query_of(back)["state"] == done["logout_state"]
    account = browser.get(f"{server.url}/account")
    assert account.status_code == 303, "the browser is still signed in after the RP's logout"
    assert account.headers["location"].startswith("/signin")
    browser.close()
    # docs/oidc.md: the logout ends the app's grant from that browser session (and, for the
    # confidential client, revoking its refresh token ended it already): userinfo says 401
    after = httpx.get(
        f"{server.url}/oauth/userinfo",
        headers={"authorization": f"Bearer {refreshed['access_token']}"},
        timeout=10,
    )
    assert after.status_code == 401, after.text


@pytest.mark.parametrize("kind", ["public", "confidential"])
def test_openid_client_device_grant_gets_tokens_once_the_phone_approves(
    server: QrloginServer, node: Any, kind: str
) -> None:
    registered = server.add_client(f"node {kind} TV", public=kind == "public")
    rp = node("device_flow.mjs")
    rp.tell(
        issuer=server.url,
        client_id=registered.client_id,
        client_secret=registered.client_secret,
    )
    device = rp.hear("device")["response"]
    assert device["verification_uri"] == f"{server.url}/link"
    in_link = query_of(device["verification_uri_complete"])["user_code"]
    assert typed(in_link) == typed(device["user_code"])  # the code shown may have a separator
    assert device["interval"] == 1

    phone = sign_in(server, "bob@example.com")  # type: ignore[arg-type]
    rp.hear("pending")  # openid-client is polling and was told to wait
    phone.approve(link_device(phone, device["user_code"]))
    bob = user_id(phone)
    phone.close()

    done = rp.hear("done")
    claims = done["claims"]
    assert claims["iss"] == server.url
    assert audiences(claims) == [registered.client_id]
    assert claims["sub"] == bob
    assert claims["email"] == "bob@example.com"
    assert done["verified"]["alg"] == "RS256"
    assert done["verified"]["payload"] == claims
    assert done["refresh_token"]
    assert done["userinfo"]["sub"] == bob
    assert done["userinfo"]["email"] == "bob@example.com"
    # openid-client kept to the interval qrlogin asked for: never told to slow down
    assert set(done["poll_errors"]) == {"authorization_pending"}, done["poll_errors"]


def test_openid_client_device_grant_is_told_access_denied_when_the_phone_denies(
    server: QrloginServer, node: Any
) -> None:
    registered = server.add_client("node TV", public=True)
    rp = node("device_flow.mjs")
    rp.tell(issuer=server.url, client_id=registered.client_id, client_secret=None)
    device = rp.hear("device")["response"]
    phone = sign_in(server, "bob@example.com")  # type: ignore[arg-type]
    rp.hear("pending")
    deny_device(phone, device["user_code"])
    phone.close()

    refused = rp.hear("error")  # openid-client stops polling with the server's OAuth error
    assert refused["error"] == "access_denied", refused
