"""DESIGN.md security requirements 1, 2, 3, 5, 7 and 8, each attacked from outside through the
HTTP API and pages (4 is in test_pages.py and test_api_scan.py, 9 in test_pages.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
from web_support import (
    BROWSER,
    Site,
    code_in,
    csrf_of,
    handle_of,
    link_token_in,
)

from qrlogin.core.tokens import HANDLE_LEN, HANDLE_TAG_LEN
from qrlogin.store.tables import email_logins, login_requests, sessions, users

UNKNOWN_ID = "lr_AAAAAAAAAAAAAAAAAAAAAA"
CLIENT_CHOSEN_HANDLE = "my-own-handle"
MakeSite = Callable[..., Awaitable[Site]]


def b64_bytes(value: str) -> int:
    return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def fingerprint(response: httpx.Response) -> tuple[int, str, bytes]:
    return response.status_code, response.headers["content-type"], response.content


# -- 1. server-chosen, unguessable ids; unknown ids answered like expired ones ---------------


async def test_1_handles_secrets_and_ids_are_server_chosen_and_unguessable(site: Site) -> None:
    created = [(await site.new_requester("api")).created for _ in range(25)]

    for c in created:
        handle = handle_of(c["qr_url"])
        # a fixed 64-bit tag, then >= 128 bits that rotate
        assert b64_bytes(handle[HANDLE_TAG_LEN:]) >= 16
        assert len(handle) == HANDLE_LEN
        assert b64_bytes(c["secret"]) >= 32  # 256-bit secrets
        assert b64_bytes(c["id"].removeprefix("lr_")) >= 16
    for name in ("id", "secret", "qr_url", "user_code"):
        assert len({c[name] for c in created}) == len(created), name
    chosen = await site.client().post(
        "/api/v1/login-requests", json={"id": UNKNOWN_ID, "handle": CLIENT_CHOSEN_HANDLE}
    )
    assert chosen.status_code == 400
    assert await site.count(login_requests) == len(created)


async def test_1_client_chosen_or_unknown_handles_are_answered_like_an_expired_one(
    site: Site,
) -> None:
    approver = await site.sign_in()
    browser = await site.sign_in(kind="browser")
    expired = await site.new_requester("api")
    rotated = await site.new_requester("api")
    site.clock.advance(31)
    await rotated.current()  # rotates; the first handle has a 10 s grace
    site.clock.advance(270)
    assert (await expired.current())["status"] == "expired"
    handles = {
        "expired": expired.handle,
        "rotated out": rotated.handle,
        "client-chosen": CLIENT_CHOSEN_HANDLE,
        "unknown": base64.urlsafe_b64encode(bytes(16)).decode().rstrip("="),
    }

    for make_call in (
        lambda h: approver.scan(h),
        lambda h: approver.approve(h),
        lambda h: approver.deny(h),
        lambda h: browser.client.get(f"/q/{h}"),
    ):
        replies = {name: fingerprint(await make_call(h)) for name, h in handles.items()}
        assert len(set(replies.values())) == 1, replies
        assert next(iter(replies.values()))[0] == 404


# -- 2. requester calls need the matching secret; a handle alone reveals nothing ------------


async def _requester_calls(
    client: httpx.AsyncClient, request_id: str, headers: dict[str, str]
) -> list[httpx.Response]:
    path = f"/api/v1/login-requests/{request_id}"
    write = {**headers, **BROWSER}
    return [
        await client.get(path, headers=headers),
        await client.get(path, params={"version": 1, "wait": 5}, headers=headers),
        await client.get(f"{path}/events", headers=headers),
        await client.get(f"{path}/qr.svg", headers=headers),
        await client.post(f"{path}/session", json={"confirm_code": "123456"}, headers=write),
        await client.delete(path, headers=write),
    ]


@pytest.mark.parametrize("carrier", ["bearer", "cookie"])
async def test_2_requester_calls_without_the_matching_secret_are_refused_alike(
    site: Site, carrier: str
) -> None:
    victim = await site.new_requester("api")
    other = await site.new_requester("api")
    await site.approved(victim, await site.sign_in())
    attempts = {
        "no secret": None,
        "wrong secret": "x" * 43,
        "another requester's secret": other.secret,
        "the handle": victim.handle,
        "secret with a typo": victim.secret[:-1] + ("A" if victim.secret[-1] != "A" else "B"),
    }

    def call(secret: str | None) -> tuple[httpx.AsyncClient, dict[str, str]]:
        client = site.client()
        if secret is None:
            return client, {}
        if carrier == "bearer":
            return client, {"authorization": f"Bearer {secret}"}
        client.cookies.set("qrl_requester", secret)
        return client, {}

    baseline = [fingerprint(r) for r in await _requester_calls(site.client(), UNKNOWN_ID, {})]
    for name, secret in attempts.items():
        client, headers = call(secret)
        for target in (victim.id, UNKNOWN_ID):
            replies = [fingerprint(r) for r in await _requester_calls(client, target, headers)]
            assert replies == baseline, (name, target)
    assert baseline[0][0] == 401
    state = await victim.current()
    assert (state["status"], state["version"]) == ("approved", 3)
    assert await site.count(sessions) == 1  # the approver's own


async def test_2_a_handle_alone_reveals_no_status(site: Site) -> None:
    pending = await site.new_requester("api")
    scanned = await site.new_requester("api")
    approved = await site.new_requester("api")
    approver = await site.sign_in()
    await approver.scan(scanned.handle)
    await site.approved(approved, approver)
    stranger = site.client()

    for path in ("/q/{h}", "/api/v1/scan/{h}", "/api/v1/login-requests/{h}"):
        replies = []
        for requester in (pending, scanned, approved):
            response = await stranger.get(path.format(h=requester.handle))
            replies.append(
                (
                    response.status_code,
                    response.content.replace(requester.handle.encode(), b"<handle>"),
                    response.headers.get("location", "").replace(requester.handle, "<handle>"),
                )
            )
        assert len(set(replies)) == 1, (path, replies)
        assert replies[0][0] in (303, 401)
    assert (await pending.current())["status"] == "pending"


async def test_2_requester_replies_hold_no_personal_data_before_the_exchange(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in("ada.lovelace@example.org", ip="192.0.2.77")
    me = (await approver.me()).json()
    personal = {
        me["user"]["email"],
        me["user"]["display_name"],
        me["user"]["id"],
        me["session_id"],
        "192.0.2.77",
    }
    seen: list[httpx.Response] = []

    async def look() -> None:
        seen.append(await requester.state())
        seen.append(await requester.state(version=0, wait=1))
        seen.append(
            await requester.client.get(f"{requester.path}/qr.svg", headers=requester.headers())
        )
        seen.append(await requester.exchange())

    await look()
    await approver.scan(requester.handle)
    await look()
    code = (await approver.approve(requester.handle)).json()["confirm_code"]
    await look()
    seen.append(await requester.exchange("000000" if code != "000000" else "111111"))
    await requester.cancel()
    seen.append(await requester.events())

    for response in seen:
        text = response.text + str(response.headers)
        for value in personal:
            assert value not in text, (response.request.url, value)


# -- 3. the approver is who its session says; ids in the body are ignored -------------------


async def test_3_ids_in_the_approve_body_are_ignored(site: Site) -> None:
    alice = await site.sign_in(site.new_email("alice"))
    mallory = await site.sign_in(site.new_email("mallory"))
    alice_me = (await alice.me()).json()
    impersonation = {
        "user_id": alice.user["id"],
        "approver_user_id": alice.user["id"],
        "session_id": alice_me["session_id"],
        "approver_session_id": alice_me["session_id"],
        "email": alice.email,
    }
    requester = await site.new_requester("api")
    await mallory.scan(requester.handle)

    approved = await mallory.approve(requester.handle, json=impersonation, params=impersonation)

    assert approved.status_code == 200
    exchanged = await requester.exchange(approved.json()["confirm_code"])
    assert exchanged.json()["user"]["id"] == mallory.user["id"]
    token = exchanged.json()["access_token"]
    me = await site.client().get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.json()["user"]["email"] == mallory.email


async def test_3_ids_in_the_body_do_not_let_another_approver_decide(site: Site) -> None:
    alice = await site.sign_in(site.new_email("alice"))
    mallory = await site.sign_in(site.new_email("mallory"))
    alice_me = (await alice.me()).json()
    body = {"user_id": alice.user["id"], "session_id": alice_me["session_id"]}
    requester = await site.new_requester("api")
    await alice.scan(requester.handle)

    for action in ("approve", "deny"):
        response = await mallory.client.post(
            f"/api/v1/scan/{requester.handle}/{action}",
            json=body,
            params=body,
            headers={**mallory.headers(), "x-user-id": alice.user["id"]},
        )
        assert response.status_code == 404

    state = await requester.current()
    assert (state["status"], state["version"]) == ("scanned", 2)


# -- 5. exchange is single-use and starts a new session -------------------------------------


async def test_5_replayed_exchange_is_refused(site: Site, requester_kind: str) -> None:
    requester = await site.new_requester(requester_kind)
    code = await site.approved(requester, await site.sign_in())
    replayer = site.client()
    replay = {"authorization": f"Bearer {requester.secret}"}

    first = await requester.exchange(code)
    second = await replayer.post(
        f"{requester.path}/session", json={"confirm_code": code}, headers=replay
    )

    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["error"] == "already_used"
    assert "access_token" not in second.text
    assert await site.count(sessions) == 2


async def test_5_racing_exchanges_have_exactly_one_winner(site: Site) -> None:
    requester = await site.new_requester("api")
    code = await site.approved(requester, await site.sign_in())

    replies = await asyncio.gather(*(requester.exchange(code) for _ in range(8)))

    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] + [409] * 7
    assert {r.json()["error"] for r in replies if r.status_code == 409} == {"already_used"}
    assert await site.count(sessions) == 2


async def test_5_the_new_device_gets_its_own_session_never_the_approvers(
    site: Site, requester_kind: str
) -> None:
    requester = await site.new_requester(requester_kind)
    approver = await site.sign_in()

    response = await site.signed_in(requester, approver)

    if requester_kind == "api":
        token = response.json()["access_token"]
    else:
        token = requester.client.cookies["qrl_session"]
    assert token != approver.token
    bearer = {"authorization": f"Bearer {token}"}
    new_me = await site.client().get("/api/v1/me", headers=bearer)
    old_me = await approver.me()
    assert new_me.status_code == 200
    assert new_me.json()["user"] == old_me.json()["user"]
    assert new_me.json()["session_id"] != old_me.json()["session_id"]
    await site.client().post("/api/v1/logout", headers=bearer)
    assert (await approver.me()).status_code == 200  # signing the new device out spares the old


async def test_5_every_call_after_consumed_fails(site: Site) -> None:
    requester = await site.new_requester("api")
    approver = await site.sign_in()
    code = await site.approved(requester, approver)
    await requester.exchange(code)

    assert (await approver.scan(requester.handle)).status_code == 404
    assert (await approver.approve(requester.handle)).status_code == 404
    assert (await approver.deny(requester.handle)).status_code == 404
    assert (await requester.exchange(code)).status_code == 409
    assert (await requester.cancel()).json()["status"] == "consumed"
    assert (await requester.current())["status"] == "consumed"


# -- 7. a database dump holds nothing usable -------------------------------------------------


async def test_7_the_database_file_holds_no_secret_token_handle_or_code(site: Site) -> None:
    secrets_seen: dict[str, str] = {}

    # QR login by an API requester (with a rotation) and by a browser requester
    approver = await site.sign_in()
    secrets_seen["approver session token"] = str(approver.token)
    secrets_seen["approver refresh token"] = approver.session.get("refresh_token") or ""
    for kind in ("api", "browser"):
        requester = await site.new_requester(kind)
        secrets_seen[f"{kind} requester secret"] = requester.secret
        secrets_seen[f"{kind} first handle"] = requester.handle
        secrets_seen[f"{kind} user code"] = requester.created["user_code"].replace(" ", "")
        site.clock.advance(31)
        rotated = await requester.current()
        requester.created = {**requester.created, "qr_url": rotated["qr_url"]}
        secrets_seen[f"{kind} rotated handle"] = requester.handle
        response = await site.signed_in(requester, approver)
        if kind == "api":
            secrets_seen["api new session token"] = response.json()["access_token"]
            secrets_seen["api new refresh token"] = response.json().get("refresh_token") or ""
        else:
            secrets_seen["browser new session token"] = requester.client.cookies["qrl_session"]

    # a confirm code (approved, not yet exchanged) and an email code and link left unused
    waiting = await site.new_requester("api")
    confirm = await site.approved(waiting, approver)
    assert confirm is not None
    secrets_seen["confirm code"] = confirm
    email = site.new_email()
    await site.client().post("/api/v1/auth/email/start", json={"email": email})
    secrets_seen["unused email code"] = code_in(site.last_mail(email))
    secrets_seen["unused link token"] = link_token_in(site.last_mail(email))

    # sign-in by link in the asking browser
    browser = site.client()
    page = await browser.get("/signin")
    linked = site.new_email()
    form = await browser.post(
        "/signin", data={"csrf": csrf_of(page.text), "email": linked, "next": ""}
    )
    assert form.status_code == 200
    token = link_token_in(site.last_mail(linked))
    secrets_seen["used link token"] = token
    secrets_seen["used link's email code"] = code_in(site.last_mail(linked))
    confirm_page = await browser.get(f"/auth/email/{token}")
    await browser.post(f"/auth/email/{token}", data={"csrf": csrf_of(confirm_page.text)})
    secrets_seen["link session token"] = browser.cookies["qrl_session"]
    secrets_seen["browser binding cookie"] = browser.cookies["qrl_browser"]
    secrets_seen["csrf cookie"] = browser.cookies["qrl_csrf"]

    dump = await site.database_bytes()  # the SQLite files, or every PostgreSQL row
    # hex digests are where hashes live; a 6-digit code inside one would be a false alarm
    without_digests = re.sub(rb"[0-9a-f]{64}", b"", dump)

    token_hash = hashlib.sha256(secrets_seen["approver session token"].encode()).hexdigest()
    assert token_hash.encode() in dump  # the dump is real and holds the hashes
    for name, value in secrets_seen.items():
        if not value:  # e.g. no refresh tokens in this version
            continue
        assert value.encode() not in without_digests, name
        assert value.encode() not in dump, name


# -- 8. magic links: GET changes nothing, POST consumes once, hand-off to the asker -----------


async def _ask(site: Site, client: httpx.AsyncClient) -> tuple[str, str]:
    page = await client.get("/signin")
    email = site.new_email()
    await client.post("/signin", data={"csrf": csrf_of(page.text), "email": email, "next": ""})
    return email, link_token_in(site.last_mail(email))


async def test_8_fetching_a_magic_link_changes_nothing(site: Site) -> None:
    asking = site.client()
    _, token = await _ask(site, asking)
    tables = (email_logins, users, sessions, login_requests)
    before = [await site.rows(t) for t in tables]

    for visitor in (asking, site.client(), site.client()):
        assert (await visitor.get(f"/auth/email/{token}")).status_code == 200
        assert (await visitor.head(f"/auth/email/{token}")).status_code in (200, 405)

    assert [await site.rows(t) for t in tables] == before
    assert "qrl_session" not in asking.cookies
    page = await asking.get(f"/auth/email/{token}")
    posted = await asking.post(f"/auth/email/{token}", data={"csrf": csrf_of(page.text)})
    assert posted.status_code == 303


async def _racing_link_posts(
    site: Site, monkeypatch: pytest.MonkeyPatch, racers: int
) -> list[httpx.Response]:
    """``racers`` POSTs of one link from the asking browser, all let through the link lookup
    before any consumes it: the worst interleaving, made deterministic."""
    asking = site.client()
    _, token = await _ask(site, asking)
    csrf = csrf_of((await asking.get(f"/auth/email/{token}")).text)
    logins = site.services.email_logins
    look = logins.link
    arrived: list[object] = []
    all_in = asyncio.Event()

    async def look_then_wait(*args: object, **kwargs: object) -> object:
        info = await look(*args, **kwargs)  # type: ignore[arg-type]
        arrived.append(info)
        if len(arrived) == racers:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10)
        return info

    monkeypatch.setattr(logins, "link", look_then_wait)
    return list(
        await asyncio.gather(
            *(asking.post(f"/auth/email/{token}", data={"csrf": csrf}) for _ in range(racers))
        )
    )


async def test_8_racing_posts_of_a_magic_link_start_exactly_one_session(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = await _racing_link_posts(site, monkeypatch, 6)

    assert sorted(r.status_code for r in replies).count(303) == 1
    assert await site.count(sessions) == 1
    with_session = [r for r in replies if "qrl_session=" in str(r.headers.get_list("set-cookie"))]
    assert len(with_session) == 1


async def test_8_the_losers_of_a_magic_link_race_are_told_it_was_used(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = await _racing_link_posts(site, monkeypatch, 3)

    assert sorted(r.status_code for r in replies) == [303, 404, 404]


async def test_8_a_link_confirmed_elsewhere_signs_in_only_the_asking_browser(
    site: Site,
) -> None:
    asking = site.client()
    email, token = await _ask(site, asking)
    elsewhere = site.client()
    csrf = csrf_of((await elsewhere.get(f"/auth/email/{token}")).text)
    eavesdropper = site.client()
    await eavesdropper.get("/signin")

    confirmed = await elsewhere.post(f"/auth/email/{token}", data={"csrf": csrf})

    assert confirmed.status_code == 200
    assert "qrl_session" not in elsewhere.cookies
    for stranger in (elsewhere, eavesdropper):
        picked = await stranger.post("/api/v1/auth/email/pickup", headers=BROWSER)
        assert picked.status_code == 409
    picked = await asking.post("/api/v1/auth/email/pickup", headers=BROWSER)
    assert picked.status_code == 200
    assert (await asking.get("/api/v1/me")).json()["user"]["email"] == email
    assert await site.count(sessions) == 1


# -- 14. HSTS over https; the docs page's own policy (issue 11 item 8) ------------------------

HSTS = "max-age=63072000; includeSubDomains"


async def test_14_hsts_is_sent_when_the_public_url_is_https(make_site: MakeSite) -> None:
    site = await make_site(public_url="https://qrlogin.example")
    client = site.client()
    requester = await site.new_requester("api")
    replies = [
        await client.get("/healthz"),
        await client.get("/login"),
        await client.get("/api/v1/nothing"),
        await client.get(f"/api/v1/login-requests/{UNKNOWN_ID}/events"),  # the raw handler
        await client.get("/docs"),
        await requester.state(),
    ]
    for response in replies:
        assert response.headers.get("strict-transport-security") == HSTS, response.url


async def test_14_no_hsts_over_plain_http(site: Site) -> None:
    client = site.client()
    for path in ("/healthz", "/login", f"/api/v1/login-requests/{UNKNOWN_ID}/events"):
        assert "strict-transport-security" not in (await client.get(path)).headers


async def test_14_the_docs_page_allows_its_own_inline_script_by_hash_and_nothing_inline_else(
    site: Site,
) -> None:
    client = site.client()
    docs = await client.get("/docs")
    csp = docs.headers["content-security-policy"]
    assert docs.status_code == 200
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert inline
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp

    # the CDN is allowed on /docs alone
    for path in ("/login", "/docs/oauth2-redirect", "/docsx", "/openapi.json", "/healthz"):
        other = (await client.get(path)).headers["content-security-policy"]
        assert "cdn.jsdelivr.net" not in other and "unsafe-inline" not in other, path
        assert "script-src 'self';" in other, path
