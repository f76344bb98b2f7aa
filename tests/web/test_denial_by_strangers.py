"""Strangers cannot deny service to an owner (DESIGN.md requirement 12, issue 11 item 4).

Both sides of each rule: what a stranger who knows only the owner's address gets (429s and
refusals), and that the owner's own browser still gets a code and signs in, and the owner's
signed-in phone still approves. In-process app on every backend (real SQLite; PostgreSQL with
the Redis-backed limiter); each ``site.client()`` is another browser with its own cookie jar
and, where given, its own IP. Limit numbers are read from the running app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from limits import parse
from sqlalchemy import func, select
from web_support import Approver, Site, code_in

from qrlogin.core.policy import Policy
from qrlogin.core.tokens import sha256_hex
from qrlogin.limiter import Limits
from qrlogin.store.records import User
from qrlogin.store.tables import known_browsers

MakeSite = Callable[..., Awaitable[Site]]
START = "/api/v1/auth/email/start"
VERIFY = "/api/v1/auth/email/verify"
LINK = "/api/v1/link"


def rules(site: Site) -> Limits:
    limits: Limits = site.services.limiter.rules
    return limits


def amount(rule: str) -> int:
    return int(parse(rule).amount)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def start(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(START, json={"email": email})


async def verify(client: httpx.AsyncClient, email: str, code: str) -> httpx.Response:
    return await client.post(VERIFY, json={"email": email, "code": code})


async def fresh_code(site: Site, client: httpx.AsyncClient, email: str) -> str:
    response = await start(client, email)
    assert response.status_code == 202, response.text
    return code_in(site.last_mail(email))


async def signs_in(site: Site, client: httpx.AsyncClient, email: str) -> None:
    response = await verify(client, email, await fresh_code(site, client, email))
    assert response.status_code == 200, response.text
    assert response.json()["user"]["display_name"] == email.split("@")[0]


async def stranger_fails(site: Site, email: str, times: int) -> None:
    """A stranger types ``times`` wrong codes for ``email``, asking for a fresh code (which
    mails the owner) whenever one has burned. Needs ``rate_limits=False`` for large counts."""
    stranger = site.client(ip="203.0.113.66")
    code = ""
    for i in range(times):
        if i % site.services.policy.code_attempts == 0:
            code = await fresh_code(site, stranger, email)
        response = await verify(stranger, email, wrong(code))
        assert response.status_code == 400, (i, response.text)
        assert response.json()["error"] == "invalid_code"


async def user(site: Site, email: str) -> User:
    found = await site.services.store.user_by_email(email)
    assert found is not None
    return found


def assert_refused(response: httpx.Response, error: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == error
    assert int(response.headers["retry-after"]) > 0


async def approves_by_user_code(site: Site, phone: Approver) -> None:
    """The phone types a new requester's user code, approves, and the requester signs in."""
    requester = await site.new_requester("api", ip="198.51.100.80")
    linked = await phone.client.post(
        LINK, json={"user_code": requester.created["user_code"]}, headers=phone.headers()
    )
    assert linked.status_code == 200, linked.text
    approved = await phone.approve(requester.handle)
    assert approved.status_code == 200, approved.text
    exchanged = await requester.exchange(approved.json()["confirm_code"])
    assert exchanged.status_code == 200, exchanged.text


# --------------------------------------------------------------------------- asking for codes


async def test_a_strangers_code_requests_do_not_use_up_the_owners_browser_budget(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    email = "owner@example.com"
    per_browser = amount(rules(site).email_start_per_address_browser)
    stranger = site.client(ip="203.0.113.5")
    assert (await stranger.get("/signin")).status_code == 200  # a browser, with its cookie

    for i in range(per_browser):
        assert (await start(stranger, email)).status_code == 202, i
    assert_refused(await start(stranger, email), "rate_limited")  # the stranger is limited

    owner = site.client(ip="198.51.100.7")  # the owner's browser, never used before
    await signs_in(site, owner, email)


async def test_strangers_reach_the_address_ceiling_but_the_owners_known_browser_gets_codes(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    email = "owner@example.com"
    owner = site.client(ip="198.51.100.7")
    await signs_in(site, owner, email)  # this browser is now known to the address
    ceiling = amount(rules(site).email_start_per_address)
    per_ip = amount(rules(site).email_start_per_ip)
    mails_before = len([m for m in site.outbox if m.to == email])

    # strangers in fresh browsers (new cookies each time) from several networks; the owner's
    # first code, from a browser not yet known, counted against the ceiling too
    for i in range(ceiling - 1):
        stranger = site.client(ip=f"203.0.113.{10 + i // per_ip}")
        assert (await stranger.get("/signin")).status_code == 200  # a browser cookie of its own
        assert (await start(stranger, email)).status_code == 202, i
    assert_refused(await start(site.client(ip="203.0.113.99"), email), "rate_limited")
    assert len([m for m in site.outbox if m.to == email]) == mails_before + ceiling - 1

    # the owner's known browser is not held to the ceiling: it gets a code and signs in
    await signs_in(site, owner, email)


# --------------------------------------------------------------------------- typing codes


async def test_a_code_works_only_in_the_browser_that_asked_for_it(make_site: MakeSite) -> None:
    site = await make_site()
    email = "owner@example.com"
    owner = site.client(ip="198.51.100.7")
    code = await fresh_code(site, owner, email)

    elsewhere = await verify(site.client(ip="203.0.113.5"), email, code)
    assert elsewhere.status_code == 400, elsewhere.text
    assert elsewhere.json()["error"] == "invalid_code"

    here = await verify(owner, email, code)
    assert here.status_code == 200, here.text


async def test_wrong_codes_from_a_stranger_do_not_burn_the_owners_code(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    email = "owner@example.com"
    owner = site.client(ip="198.51.100.7")
    code = await fresh_code(site, owner, email)
    attempts = site.services.policy.code_attempts

    stranger = site.client(ip="203.0.113.5")
    for guess in range(2 * attempts):  # with no code of its own, and then with one
        if guess == attempts:
            await fresh_code(site, stranger, email)
        response = await verify(stranger, email, wrong(code))
        assert response.status_code == 400, response.text

    assert (await verify(owner, email, code)).status_code == 200


async def test_a_cookieless_code_is_bound_to_the_ip_that_asked(make_site: MakeSite) -> None:
    site = await make_site()
    email = "cli@example.com"

    async def cookieless(ip: str, typed: str) -> httpx.Response:
        # a new client each time: no cookie is ever sent back (as with curl)
        return await site.client(ip=ip).post(VERIFY, json={"email": email, "code": typed})

    first = await site.client(ip="198.51.100.7").post(START, json={"email": email})
    assert first.status_code == 202
    code = code_in(site.last_mail(email))

    for _ in range(site.services.policy.code_attempts):
        assert (await cookieless("203.0.113.5", wrong(code))).status_code == 400
    assert (await cookieless("203.0.113.5", code)).status_code == 400  # not from another IP
    assert (await cookieless("198.51.100.7", code)).status_code == 200  # from its own


# --------------------------------------------------------------------------- the account lock


async def test_the_owners_phone_approves_by_user_code_after_a_strangers_wrong_email_codes(
    make_site: MakeSite,
) -> None:
    site = await make_site(rate_limits=False)
    phone = await site.sign_in("owner@example.com", ip="198.51.100.7")
    failures = 120  # past the old 100-failure lock
    assert failures < site.services.policy.email_failure_lockout

    await stranger_fails(site, phone.email, failures)

    owner = await user(site, phone.email)
    assert owner.email_code_streak == failures
    assert (owner.failed_code_streak, owner.locked_at, owner.email_locked_at) == (0, None, None)
    assert (await phone.me()).status_code == 200
    await approves_by_user_code(site, phone)
    await signs_in(site, site.client(ip="198.51.100.8"), phone.email)  # a new browser too


async def test_1000_wrong_email_codes_lock_new_browsers_only_and_mail_the_owner_once(
    make_site: MakeSite,
) -> None:
    site = await make_site(rate_limits=False)
    floor = site.services.policy.email_failure_lockout
    assert floor == Policy().email_failure_lockout >= 1000
    email = "owner@example.com"
    laptop = site.client(ip="198.51.100.7")
    await signs_in(site, laptop, email)  # the owner's browser, known to the address
    phone = await site.sign_in(email, ip="198.51.100.9")
    notices = lambda: [m for m in site.outbox if m.to == email and "locked" in m.subject]  # noqa: E731

    await stranger_fails(site, email, floor - 1)
    assert (await user(site, email)).email_locked_at is None
    assert notices() == []
    await stranger_fails(site, email, 1)

    owner = await user(site, email)
    assert (owner.email_code_streak, owner.email_locked_at) == (floor, site.clock.now())
    assert owner.locked_at is None
    (notice,) = notices()
    assert f"{floor} wrong codes" in notice.text
    assert "not affected" in notice.text

    # the stranger, and any browser that never signed in there, is refused even the right code
    for newcomer in (site.client(ip="203.0.113.66"), site.client(ip="198.51.100.8")):
        code = await fresh_code(site, newcomer, email)
        assert_refused(await verify(newcomer, email, code), "account_locked")
    # the owner's known browser still signs in, and the phone was neither signed out nor locked
    await signs_in(site, laptop, email)
    assert (await phone.me()).status_code == 200
    await approves_by_user_code(site, phone)
    assert len(notices()) == 1


async def test_wrong_user_codes_still_lock_link_and_sign_out_and_email_codes_do_not_add_up(
    make_site: MakeSite,
) -> None:
    site = await make_site(rate_limits=False)
    phone = await site.sign_in("owner@example.com", ip="198.51.100.7")
    lockout = site.services.policy.account_failure_lockout
    await stranger_fails(site, phone.email, lockout)  # a stranger's wrong email codes first

    async def link(code: str) -> httpx.Response:
        return await phone.client.post(LINK, json={"user_code": code}, headers=phone.headers())

    for i in range(lockout - 1):  # the phone's own wrong user codes count on their own
        assert (await link("000 000")).status_code == 400, i
    owner = await user(site, phone.email)
    assert (owner.failed_code_streak, owner.locked_at) == (lockout - 1, None)
    assert (await link("000 000")).status_code == 400

    owner = await user(site, phone.email)
    assert owner.locked_at == site.clock.now()
    assert (await phone.me()).status_code == 401  # signed out: one of its sessions may be stolen


async def test_a_browser_stays_known_400_days_after_its_last_sign_in_then_is_forgotten(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    store = site.services.store
    keep = site.services.policy.known_browser_lifetime
    assert keep == 400 * 86400
    email = "owner@example.com"
    owner = site.client(ip="198.51.100.7")
    await signs_in(site, owner, email)
    token = next(v for k, v in owner.cookies.items() if k.endswith("qrl_browser"))
    browser = sha256_hex(token)

    async def known() -> bool:
        await store.collect_garbage(site.clock.now())
        return await store.browser_is_known(email, browser, site.clock.now() - keep)

    site.clock.advance(keep - 86400)
    assert await known()
    await signs_in(site, owner, email)  # signing in again starts the 400 days over
    site.clock.advance(keep - 86400)
    assert await known()
    site.clock.advance(2 * 86400)
    assert not await known()
    async with store.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(known_browsers)) == 0
