"""The requester secret has one parser (``deps.requester_secret_in``), for the routes and for
the event stream served ahead of them: a bearer token wins, else the requester cookie."""

from __future__ import annotations

from starlette.datastructures import Headers

from qrlogin.web.deps import bearer_in, requester_secret_in

COOKIE = "qrl_requester"


def test_the_bearer_token_wins_over_the_cookie() -> None:
    headers = Headers({"authorization": "Bearer s3cret", "cookie": f"{COOKIE}=from-cookie"})

    assert requester_secret_in(headers, COOKIE) == "s3cret"


def test_without_a_bearer_the_requester_cookie_is_the_secret() -> None:
    headers = Headers({"cookie": f"other=1; {COOKIE}=from-cookie"})

    assert requester_secret_in(headers, COOKIE) == "from-cookie"


def test_an_empty_or_other_scheme_is_no_bearer() -> None:
    for value in ("Bearer ", "Bearer    ", "Basic dXNlcjpwdw==", "bearer"):
        headers = Headers({"authorization": value, "cookie": f"{COOKIE}=c"})
        assert bearer_in(headers) is None, value
        assert requester_secret_in(headers, COOKIE) == "c", value


def test_the_scheme_is_case_insensitive_and_the_token_trimmed() -> None:
    assert bearer_in(Headers({"authorization": "BEARER  tok "})) == "tok"


def test_no_credentials_is_no_secret() -> None:
    assert requester_secret_in(Headers({}), COOKIE) is None
    assert requester_secret_in(Headers({"cookie": "other=1"}), COOKIE) is None
