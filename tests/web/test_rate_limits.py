"""Brute-force limits (DESIGN.md requirement 6, issue 3): per code, per account, per IP, the
pending-requests cap, and client IPs behind trusted proxies only.

In-process app (httpx's ASGI transport, lifespan entered by the ``make_site`` fixture); each
client has its own peer IP. The limit numbers are read from the running app's
``qrlogin.limiter.Limits``, so these tests follow the settings.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from limits import parse
from web_support import Approver, Requester, Site

from qrlogin.limiter import Limits
from qrlogin.store.tables import sessions

MakeSite = Callable[..., Awaitable[Site]]
API = "/api/v1/login-requests"
LINK = "/api/v1/link"
START = "/api/v1/auth/email/start"
VERIFY = "/api/v1/auth/email/verify"


# --------------------------------------------------------------------------- helpers


def rules(site: Site) -> Limits:
    limits: Limits = site.services.limiter.rules
    return limits


def amount(rule: str) -> int:
    """How many the rule allows per window: ``"20 per minute"`` → 20."""
    return int(parse(rule).amount)


def assert_429(response: httpx.Response, error: str = "rate_limited") -> int:
    """A refusal: 429, a JSON ``{error, message}`` body, and a positive ``Retry-After``."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    retry = response.headers.get("retry-after", "")
    assert retry.isdigit() and int(retry) > 0, f"Retry-After {retry!r}"
    return int(retry)


def assert_invalid_code(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_code"


def wrong_confirm(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def unused_user_code(*taken: Requester) -> str:
    """A well-formed 6-digit user code that no given request shows."""
    used = {r.created["user_code"].replace(" ", "") for r in taken}
    return next(c for c in (f"{n:06d}" for n in range(100_000, 1_000_000)) if c not in used)


async def link(client: httpx.AsyncClient, approver: Approver, code: str) -> httpx.Response:
    return await client.post(LINK, json={"user_code": code}, headers=approver.headers())


# --------------------------------------------------------------------------- per code / account


async def test_50_parallel_wrong_confirm_codes_burn_the_request_after_exactly_5(
    make_site: MakeSite,
) -> None:
    site = await make_site(confirm="code")
    requester = await site.new_requester("api")
    approver = await site.sign_in()
    code = await site.approved(requester, approver)
    assert code is not None and len(code) == 6
    attempts = site.services.policy.confirm_attempts

    replies = await asyncio.gather(*(requester.exchange(wrong_confirm(code)) for _ in range(50)))

    assert not any(r.status_code == 200 for r in replies)
    errors = Counter((r.status_code, r.json()["error"]) for r in replies)
    assert set(errors) <= {(400, "invalid_code"), (403, "access_denied")}, errors
    assert errors[(400, "invalid_code")] >= attempts - 1
    stored = await site.services.store.get_login_request(requester.id)
    assert stored is not None
    assert stored.confirm_attempts == attempts == 5
    assert stored.status == "denied"
    assert stored.reason == "too_many_attempts"
    state = await requester.current()
    assert (state["status"], state["reason"]) == ("denied", "too_many_attempts")

    # burned: not even the right code gets through now, and no session was made
    late = await requester.exchange(code)
    assert (late.status_code, late.json()["error"]) == (403, "access_denied")
    assert await site.count(sessions) == 1  # the approver's own; none for the requester


async def test_a_right_confirm_code_after_4_wrong_ones_still_signs_in(make_site: MakeSite) -> None:
    site = await make_site(confirm="code")
    requester = await site.new_requester("api")
    code = await site.approved(requester, await site.sign_in())
    assert code is not None
    for _ in range(site.services.policy.confirm_attempts - 1):
        assert_invalid_code(await requester.exchange(wrong_confirm(code)))
    response = await requester.exchange(code)
    assert response.status_code == 200, response.text
    stored = await site.services.store.get_login_request(requester.id)
    assert stored is not None and stored.confirm_attempts == 4


async def test_50_parallel_wrong_user_codes_from_one_account(make_site: MakeSite) -> None:
    site = await make_site()
    live = await site.new_requester("api")
    approver = await site.sign_in(ip="198.51.100.10")
    per_account = amount(rules(site).link_per_account)
    assert per_account < amount(rules(site).link_per_ip)  # the account rule trips first
    code = unused_user_code(live)

    replies = await asyncio.gather(*(link(approver.client, approver, code) for _ in range(50)))

    bad = [r for r in replies if r.status_code == 400]
    limited = [r for r in replies if r.status_code == 429]
    assert len(bad) == per_account == 10
    assert len(limited) == 50 - per_account
    for response in bad:
        assert response.json()["error"] == "invalid_code"
    for response in limited:
        assert_429(response)
    user = await site.services.store.get_user(approver.user["id"])
    assert user is not None
    assert user.failed_code_streak == per_account
    assert user.locked_at is None

    # the limit holds the right code back too, for this account only
    assert_429(await link(approver.client, approver, live.created["user_code"]))
    other = await site.sign_in(ip="198.51.100.11")
    claimed = await link(other.client, other, live.created["user_code"])
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["request"]["id"] == live.id


async def test_unknown_expired_used_and_wrong_user_codes_get_one_reply(
    make_site: MakeSite,
) -> None:
    site = await make_site(confirm="tap")
    expired = await site.new_requester("api")
    site.clock.advance(site.services.policy.request_lifetime + 1)
    consumed = await site.new_requester("api")
    claimed = await site.new_requester("api")
    cancelled = await site.new_requester("api")
    live = await site.new_requester("api")
    other = await site.sign_in()
    await site.signed_in(consumed, other)
    assert (await other.scan(claimed.handle)).status_code == 200
    assert (await cancelled.cancel()).status_code == 200
    me = await site.sign_in()

    codes = {
        "unknown": unused_user_code(expired, consumed, claimed, cancelled, live),
        "expired": expired.created["user_code"],
        "used": consumed.created["user_code"],
        "claimed by someone else": claimed.created["user_code"],
        "cancelled": cancelled.created["user_code"],
        "too short": "12 345",
        "letters": "ABC DEF",
    }
    assert len(codes) < amount(rules(site).link_per_account)
    replies = {why: await link(me.client, me, code) for why, code in codes.items()}

    for why, response in replies.items():
        assert response.status_code == 400, (why, response.text)
    assert len({r.content for r in replies.values()}) == 1, {
        why: r.text for why, r in replies.items()
    }
    assert replies["unknown"].json()["error"] == "invalid_code"

    # and the live one, typed the way people type it, works
    typed = "-" + live.created["user_code"].replace(" ", " - ") + " "
    response = await link(me.client, me, typed)
    assert response.status_code == 200, response.text
    assert response.json()["handle"] == live.handle


# --------------------------------------------------------------------------- per IP


async def test_creating_login_requests_is_limited_per_ip(make_site: MakeSite) -> None:
    site = await make_site()
    limit = amount(rules(site).create_per_ip)
    client = site.client(ip="192.0.2.1")

    for i in range(limit):
        created = await client.post(API, json={})
        assert created.status_code == 201, (i, created.text)
        body = created.json()
        # cancel each, so the cap on pending requests stays out of the way
        cancel = await client.delete(
            f"{API}/{body['id']}", headers={"authorization": f"Bearer {body['secret']}"}
        )
        assert cancel.status_code == 200

    retry = assert_429(await client.post(API, json={}))
    assert retry <= math.ceil(parse(rules(site).create_per_ip).get_expiry())
    assert_429(await client.post(API, json={"device_name": "again"}))

    elsewhere = await site.client(ip="192.0.2.2").post(API, json={})
    assert elsewhere.status_code == 201


async def test_pending_requests_per_ip_are_capped(make_site: MakeSite) -> None:
    site = await make_site()
    cap = rules(site).pending_per_ip
    assert cap + 2 <= amount(rules(site).create_per_ip)  # so the rate limit stays out of it
    client = site.client(ip="192.0.2.30")

    made: list[dict[str, Any]] = []
    for i in range(cap):
        created = await client.post(API, json={})
        assert created.status_code == 201, (i, created.text)
        made.append(created.json())

    refused = await client.post(API, json={})
    assert_429(refused)
    assert "waiting" in refused.json()["message"]
    assert (await site.client(ip="192.0.2.31").post(API, json={})).status_code == 201

    # one fewer pending request makes room for one more
    first = made[0]
    cancel = await client.delete(
        f"{API}/{first['id']}", headers={"authorization": f"Bearer {first['secret']}"}
    )
    assert cancel.status_code == 200
    assert (await client.post(API, json={})).status_code == 201
    assert_429(await client.post(API, json={}))


async def test_email_start_is_limited_per_ip_per_browser_and_per_address(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    per_ip = amount(rules(site).email_start_per_ip)
    per_browser = amount(rules(site).email_start_per_address_browser)
    ceiling = amount(rules(site).email_start_per_address)
    client = site.client(ip="192.0.2.40")

    for i in range(per_ip):
        response = await client.post(START, json={"email": f"person{i}@example.com"})
        assert response.status_code == 202, (i, response.text)
    assert_429(await client.post(START, json={"email": "one-more@example.com"}))
    assert len(site.outbox) == per_ip  # the refused one sent nothing

    # per address and browser: one browser gets only its own allowance of mails
    browser = site.client(ip="192.0.2.41")
    assert (await browser.get("/signin")).status_code == 200  # it has its browser cookie
    for i in range(per_browser):
        response = await browser.post(START, json={"email": "target@example.com"})
        assert response.status_code == 202, (i, response.text)
    assert_429(await browser.post(START, json={"email": "TARGET@example.com"}))

    # per address: browsers that never signed in there share the address's ceiling
    for i in range(ceiling - per_browser):
        other = site.client(ip=f"192.0.2.{100 + i}")
        response = await other.post(START, json={"email": "target@example.com"})
        assert response.status_code == 202, (i, response.text)
    refused = await site.client(ip="192.0.2.99").post(START, json={"email": "target@example.com"})
    assert_429(refused)
    assert len([m for m in site.outbox if m.to == "target@example.com"]) == ceiling


async def test_email_verify_is_limited_per_ip(make_site: MakeSite) -> None:
    site = await make_site()
    limit = amount(rules(site).email_verify_per_ip)
    client = site.client(ip="192.0.2.50")
    email = "ada@example.com"

    for i in range(limit):
        response = await client.post(VERIFY, json={"email": email, "code": f"{i:06d}"})
        assert_invalid_code(response)
    assert_429(await client.post(VERIFY, json={"email": email, "code": "123456"}))

    # the same person from another network still gets through with the right code
    elsewhere = site.client(ip="192.0.2.51")
    assert (await elsewhere.post(START, json={"email": email})).status_code == 202
    code = site.last_mail(email).text.split("sign-in code is ", 1)[1][:6]
    response = await elsewhere.post(VERIFY, json={"email": email, "code": code})
    assert response.status_code == 200, response.text


async def test_link_is_limited_per_ip_across_accounts(make_site: MakeSite) -> None:
    site = await make_site()
    per_ip = amount(rules(site).link_per_ip)
    per_account = amount(rules(site).link_per_account)
    accounts = math.ceil(per_ip / per_account)
    approvers = [await site.sign_in(ip=f"198.51.100.{i + 1}") for i in range(accounts + 1)]
    shared = site.client(ip="203.0.113.9")  # one network, several accounts
    code = unused_user_code()

    for i in range(per_ip):  # spread so that no account reaches its own limit
        assert_invalid_code(await link(shared, approvers[i % accounts], code))

    fresh = approvers[-1]  # has typed nothing yet
    assert_429(await link(shared, fresh, code))
    assert_invalid_code(await link(fresh.client, fresh, code))  # its own network: allowed


async def test_a_link_refused_per_ip_does_not_spend_the_accounts_budget(
    make_site: MakeSite,
) -> None:
    """Issue 11 item 7: every budget is checked before any is spent."""
    site = await make_site()
    per_ip = amount(rules(site).link_per_ip)
    per_account = amount(rules(site).link_per_account)
    accounts = math.ceil(per_ip / per_account)
    approvers = [await site.sign_in(ip=f"198.51.100.{i + 1}") for i in range(accounts + 1)]
    shared = site.client(ip="203.0.113.9")
    code = unused_user_code()
    for i in range(per_ip):  # the shared network's budget, spent by the other accounts
        assert_invalid_code(await link(shared, approvers[i % accounts], code))

    owner = approvers[-1]
    for _ in range(per_account + 3):  # refused per IP, again and again
        assert_429(await link(shared, owner, code))

    # the owner's own budget is whole: all of it from its own network, then refused
    for _ in range(per_account):
        assert_invalid_code(await link(owner.client, owner, code))
    assert_429(await link(owner.client, owner, code))


# --------------------------------------------------------------------------- proxies


async def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_escape(
    make_site: MakeSite,
) -> None:
    site = await make_site()  # no trusted proxies
    limit = amount(rules(site).email_start_per_ip)
    client = site.client(ip="192.0.2.60")

    for i in range(limit):
        response = await client.post(
            START,
            json={"email": f"p{i}@example.com"},
            headers={"x-forwarded-for": f"203.0.113.{i + 1}"},
        )
        assert response.status_code == 202, (i, response.text)
    forged = await client.post(
        START, json={"email": "x@example.com"}, headers={"x-forwarded-for": "203.0.113.250"}
    )
    assert_429(forged)

    # and the request records the peer, not the forged header
    created = await client.post(API, json={}, headers={"x-forwarded-for": "203.0.113.77"})
    assert created.status_code == 201
    stored = await site.services.store.get_login_request(created.json()["id"])
    assert stored is not None and stored.ip == "192.0.2.60"


async def test_forwarded_for_through_a_trusted_proxy_counts_each_client(
    make_site: MakeSite,
) -> None:
    site = await make_site(trusted_proxies=("10.0.0.0/8",))
    limit = amount(rules(site).email_start_per_ip)
    proxy = site.client(ip="10.0.0.2")

    def via(client_ip: str) -> dict[str, str]:
        return {"x-forwarded-for": client_ip}

    for i in range(limit):
        response = await proxy.post(
            START, json={"email": f"a{i}@example.com"}, headers=via("203.0.113.7")
        )
        assert response.status_code == 202, (i, response.text)
    assert_429(await proxy.post(START, json={"email": "b@example.com"}, headers=via("203.0.113.7")))
    # a client cannot escape by putting its own hop in front: the proxy appends the real one
    assert_429(
        await proxy.post(
            START, json={"email": "c@example.com"}, headers=via("198.51.100.1, 203.0.113.7")
        )
    )

    other = await proxy.post(START, json={"email": "d@example.com"}, headers=via("203.0.113.8"))
    assert other.status_code == 202
    chained = await proxy.post(
        START, json={"email": "e@example.com"}, headers=via("203.0.113.9, 10.0.0.3")
    )
    assert chained.status_code == 202  # the nearest untrusted hop, past a second proxy

    created = await proxy.post(API, json={}, headers=via("203.0.113.20"))
    assert created.status_code == 201
    stored = await site.services.store.get_login_request(created.json()["id"])
    assert stored is not None and stored.ip == "203.0.113.20"


# --------------------------------------------------------------------------- IPv6 networks


async def test_ipv6_limits_key_the_64_set_through_the_trusted_proxy(make_site: MakeSite) -> None:
    """Issue 11 item 9: two addresses of one /64 share a budget, another /64 has its own."""
    site = await make_site(trusted_proxies=("10.0.0.0/8",))
    limit = amount(rules(site).email_start_per_ip)
    proxy = site.client(ip="10.0.0.2")

    def via(client_ip: str) -> dict[str, str]:
        return {"x-forwarded-for": client_ip}

    for i in range(limit):  # a different address of the same /64 every time
        response = await proxy.post(
            START, json={"email": f"v{i}@example.com"}, headers=via(f"2001:db8:1:2::{i + 1:x}")
        )
        assert response.status_code == 202, (i, response.text)
    assert_429(
        await proxy.post(START, json={"email": "w@example.com"}, headers=via("2001:db8:1:2:f::9"))
    )
    other = await proxy.post(START, json={"email": "x@example.com"}, headers=via("2001:db8:1:3::1"))
    assert other.status_code == 202


async def test_pending_requests_are_capped_per_ipv6_64(make_site: MakeSite) -> None:
    site = await make_site(trusted_proxies=("10.0.0.0/8",))
    cap = rules(site).pending_per_ip
    proxy = site.client(ip="10.0.0.2")
    for i in range(cap):
        created = await proxy.post(
            API, json={}, headers={"x-forwarded-for": f"2001:db8:9:9::{i + 1:x}"}
        )
        assert created.status_code == 201, (i, created.text)
    assert_429(await proxy.post(API, json={}, headers={"x-forwarded-for": "2001:db8:9:9:1::1"}))
    elsewhere = await proxy.post(API, json={}, headers={"x-forwarded-for": "2001:db8:9:a::1"})
    assert elsewhere.status_code == 201
    stored = await site.services.store.get_login_request(elsewhere.json()["id"])
    assert stored is not None and stored.ip == "2001:db8:9:a::1"  # shown as the address


async def test_the_ipv6_prefix_is_configurable(make_site: MakeSite) -> None:
    site = await make_site(trusted_proxies=("10.0.0.0/8",), ipv6_prefix=128)
    limit = amount(rules(site).email_start_per_ip)
    proxy = site.client(ip="10.0.0.2")
    for i in range(limit):
        response = await proxy.post(
            START, json={"email": f"y{i}@example.com"}, headers={"x-forwarded-for": "2001:db8::1"}
        )
        assert response.status_code == 202
    neighbour = await proxy.post(
        START, json={"email": "z@example.com"}, headers={"x-forwarded-for": "2001:db8::2"}
    )
    assert neighbour.status_code == 202  # /128: each address counts alone
