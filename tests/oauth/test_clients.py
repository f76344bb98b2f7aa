"""Redirect URI rules and client authentication (oauth/clients.py), pure parts."""

from __future__ import annotations

import base64

import pytest

from qrlogin.core.tokens import sha256_hex
from qrlogin.oauth.clients import Clients, check_redirect_uri, redirect_uri_allowed
from qrlogin.oauth.errors import InvalidClient
from qrlogin.store.records import OAuthClient


def client(*uris: str, public: bool = False, secret: str | None = "s3cret") -> OAuthClient:
    return OAuthClient(
        id="cl_1",
        name="App",
        redirect_uris=uris,
        post_logout_redirect_uris=(),
        public=public,
        first_party=False,
        created_at=0.0,
        secret_hash=sha256_hex(secret) if secret else None,
    )


@pytest.mark.parametrize(
    "uri", ["https://app.example/cb", "http://127.0.0.1:8080/cb", "com.example.app:/callback"]
)
def test_registrable_redirect_uris(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri", ["https://app.example/cb#frag", "/relative", "javascript:alert(1)", "https:///nohost"]
)
def test_unregistrable_redirect_uris(uri: str) -> None:
    with pytest.raises(ValueError):
        check_redirect_uri(uri)


def test_confidential_clients_match_exactly() -> None:
    c = client("https://app.example/cb", "http://127.0.0.1/cb")
    assert redirect_uri_allowed(c, "https://app.example/cb")
    for other in (
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://APP.example/cb",
        "http://127.0.0.1:9000/cb",  # the loopback rule is for public clients only
    ):
        assert not redirect_uri_allowed(c, other)


def test_public_clients_may_use_any_loopback_port_but_nothing_else() -> None:
    c = client("http://127.0.0.1/cb", "http://[::1]/cb", public=True, secret=None)
    assert redirect_uri_allowed(c, "http://127.0.0.1:51000/cb")
    assert redirect_uri_allowed(c, "http://[::1]:51000/cb")
    for other in (
        "http://127.0.0.1:51000/other",
        "http://localhost:51000/cb",  # RFC 8252 §8.3: not localhost
        "https://127.0.0.1:51000/cb",
        "http://127.0.0.1:notaport/cb",
        "http://user@127.0.0.1:51000/cb",
        "http://127.0.0.1.evil.example:51000/cb",
    ):
        assert not redirect_uri_allowed(c, other), other


class OneClient:
    def __init__(self, c: OAuthClient) -> None:
        self.c = c

    async def get_client(self, client_id: str) -> OAuthClient | None:
        return self.c if client_id == self.c.id else None


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_client_secret_basic_post_and_none() -> None:
    clients = Clients(OneClient(client("https://a/cb")))  # type: ignore[arg-type]
    assert (await clients.authenticate({}, basic("cl_1", "s3cret"))).id == "cl_1"
    form = {"client_id": "cl_1", "client_secret": "s3cret"}
    assert (await clients.authenticate(form, None)).id == "cl_1"
    public = Clients(OneClient(client("https://a/cb", public=True, secret=None)))  # type: ignore[arg-type]
    assert (await public.authenticate({"client_id": "cl_1"}, None)).id == "cl_1"


@pytest.mark.parametrize(
    ("form", "header"),
    [
        ({}, None),
        ({"client_id": "cl_1"}, None),  # a confidential client without its secret
        ({"client_id": "cl_1", "client_secret": "wrong"}, None),
        ({"client_id": "cl_2", "client_secret": "s3cret"}, None),
        ({}, basic("cl_1", "wrong")),
        ({}, "Basic !!!not-base64"),
        ({}, "Basic " + base64.b64encode(b"no-colon").decode()),
        ({"client_secret": "s3cret"}, basic("cl_1", "s3cret")),  # two methods at once
    ],
)
async def test_failed_client_authentication(form: dict[str, str], header: str | None) -> None:
    clients = Clients(OneClient(client("https://a/cb")))  # type: ignore[arg-type]
    with pytest.raises(InvalidClient):
        await clients.authenticate(form, header)


async def test_a_public_client_sending_a_secret_is_refused() -> None:
    public = Clients(OneClient(client("https://a/cb", public=True, secret=None)))  # type: ignore[arg-type]
    with pytest.raises(InvalidClient):
        await public.authenticate({"client_id": "cl_1", "client_secret": "x"}, None)


class CountingStore(OneClient):
    def __init__(self, c: OAuthClient) -> None:
        super().__init__(c)
        self.reads = 0
        self.gone = False

    async def get_client(self, client_id: str) -> OAuthClient | None:
        self.reads += 1
        return None if self.gone else await super().get_client(client_id)


async def test_clients_are_read_through_a_short_cache() -> None:
    now = [0.0]
    store = CountingStore(client("https://a/cb"))
    clients = Clients(store, cache_seconds=5.0, monotonic=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(10):
        assert (await clients.authenticate({}, basic("cl_1", "s3cret"))).id == "cl_1"
    assert store.reads == 1
    store.gone = True  # removed by `qrlogin clients remove` in another process
    now[0] += 5.1
    with pytest.raises(InvalidClient):
        await clients.authenticate({}, basic("cl_1", "s3cret"))
