"""Structured logs (issue 5): JSON lines with a request id, and no secret, token or code in
any log line. A whole sign-in day runs against a real server and a real SMTP sink while
every logger writes at DEBUG into qrlogin's own JSON formatter; then the captured text is
searched for every secret the flow handed out."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from qrlogin.logs import JsonFormatter, redact_path
from support import LiveServer, SmtpSink, mail_text

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
BROWSER = {"qrlogin-client": "browser"}
# Not the server's: the test's own mail server (aiosmtpd logs mail bodies) and the test's HTTP
# client (httpx logs the URLs it fetches, httpcore the headers it sends). Everything else is
# kept, the server's SQL at DEBUG (SQLAlchemy, with parameters) included.
NOT_QRLOGIN = ("mail.log", "httpx", "httpcore")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(NOT_QRLOGIN):
            return
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Every logger at DEBUG into one JSON handler on the root logger (uvicorn's own access
    log stays off, as ``qrlogin serve`` keeps it: it would print raw paths)."""
    handler = Capture()
    root = logging.getLogger()
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    saved = [(lg, lg.level, lg.disabled) for lg in [root, *loggers]]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled


def all_loggers_debug() -> None:
    """Loggers made since the fixture ran (uvicorn configures its own at start) at DEBUG."""
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger("uvicorn.access").disabled = True


def test_redact_path_cuts_the_secret_segment_out() -> None:
    assert redact_path("/q/AbCdEf123") == "/q/{…}"
    assert redact_path("/auth/email/tok_en") == "/auth/email/{…}"
    assert redact_path("/api/v1/scan/h4ndle/approve") == "/api/v1/scan/{…}/approve"
    assert redact_path("/api/v1/login-requests/lr_x/events") == "/api/v1/login-requests/{…}/events"
    assert redact_path("/api/v1/login-requests") == "/api/v1/login-requests"
    assert redact_path("/account/devices/ses_1/revoke") == "/account/devices/{…}/revoke"
    assert redact_path("/login") == "/login"


def test_a_json_line_carries_the_request_id_from_the_context() -> None:
    from qrlogin.logs import request_id

    token = request_id.set("abc123")
    try:
        record = logging.LogRecord(
            "qrlogin.x", logging.INFO, __file__, 1, "hello %s", ("you",), None
        )
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["request_id"] == "abc123"
    assert line["message"] == "hello you"
    assert line["logger"] == "qrlogin.x"
    assert line["level"] == "info"


async def test_each_response_names_its_request_id_and_the_log_line_carries_it(
    capture: Capture, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server()
    all_loggers_debug()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        first = await client.get("/healthz")
        second = await client.get("/healthz")
        chosen = await client.get("/healthz", headers={"x-request-id": "proxy-id-42"})
        junk = await client.get("/healthz", headers={"x-request-id": "x" * 65})
        missing = await client.post("/api/v1/login-requests/lr_nope/session", json={})
    ids = [r.headers["x-request-id"] for r in (first, second, chosen, junk, missing)]
    assert re.fullmatch(r"[0-9a-f]{16}", ids[0]) and ids[0] != ids[1]
    assert ids[2] == "proxy-id-42"  # a sane id from a proxy is kept
    assert ids[3] != "x" * 65 and re.fullmatch(r"[0-9a-f]{16}", ids[3])

    access = [json.loads(line) for line in capture.lines if '"qrlogin.access"' in line]
    by_id = {line["request_id"]: line for line in access}
    for rid, response in zip(ids, (first, second, chosen, junk, missing), strict=True):
        line = by_id[rid]
        assert line["status"] == response.status_code
        assert line["path"] == redact_path(response.request.url.path)
        assert line["level"] == "info" and isinstance(line["ms"], float)
    assert by_id[ids[4]]["path"] == "/api/v1/login-requests/{…}/session"


def form(page: httpx.Response, **fields: str) -> dict[str, str]:
    found = CSRF_RE.search(page.text)
    assert found, page.text[:500]
    return {"csrf": found.group(1), **fields}


async def test_no_secret_token_handle_or_code_reaches_any_log_line(
    smtp_sink: SmtpSink, capture: Capture, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server(confirm="code")
    all_loggers_debug()
    seen: dict[str, str] = {}

    def code_in_mail(email: str, after: int) -> tuple[str, str]:
        text = mail_text(smtp_sink.latest_to(email, 15, after=after))
        code = re.search(r"sign-in code is (\d{6})", text)
        link = re.search(r"/auth/email/([A-Za-z0-9_-]+)", text)
        assert code and link, text
        return code.group(1), link.group(1)

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        # -- email sign-in by code (API) ----------------------------------------------------
        before = len(smtp_sink)
        assert (
            await api.post("/api/v1/auth/email/start", json={"email": "ann@x.test"})
        ).status_code == 202
        code, unused_link = code_in_mail("ann@x.test", before)
        seen |= {"email code": code, "unused magic link": unused_link}
        wrong = "000000" if code != "000000" else "111111"
        bad = await api.post(
            "/api/v1/auth/email/verify", json={"email": "ann@x.test", "code": wrong}
        )
        assert bad.status_code == 400
        ok = await api.post("/api/v1/auth/email/verify", json={"email": "ann@x.test", "code": code})
        assert ok.status_code == 200, ok.text
        approver: dict[str, Any] = ok.json()
        seen |= {
            "access token": approver["access_token"],
            "refresh token": approver["refresh_token"],
        }
        auth = {"authorization": f"Bearer {approver['access_token']}"}

        # -- QR: scan, approve, exchange with the confirm code ------------------------------
        created = (await api.post("/api/v1/login-requests", json={"device_name": "TV"})).json()
        handle = created["qr_url"].rsplit("/q/", 1)[1]
        seen |= {
            "requester secret": created["secret"],
            "handle": handle,
            "user code": created["user_code"],
            "user code, bare": re.sub(r"\W", "", created["user_code"]),
        }
        bearer = {"authorization": f"Bearer {created['secret']}"}
        path = f"/api/v1/login-requests/{created['id']}"
        async with api.stream("GET", f"{path}/events", headers=bearer) as stream:
            assert stream.status_code == 200
        assert (await api.get(f"/api/v1/scan/{handle}", headers=auth)).status_code == 200
        approved = (await api.post(f"/api/v1/scan/{handle}/approve", headers=auth)).json()
        confirm = approved["confirm_code"]
        seen["confirm code"] = confirm
        wrong_confirm = "000000" if confirm != "000000" else "111111"
        refused = await api.post(
            f"{path}/session", json={"confirm_code": wrong_confirm}, headers=bearer
        )
        assert refused.status_code == 400, refused.text
        exchanged = await api.post(
            f"{path}/session", json={"confirm_code": confirm}, headers=bearer
        )
        assert exchanged.status_code == 200, exchanged.text
        seen |= {
            "exchanged access token": exchanged.json()["access_token"],
            "exchanged refresh token": exchanged.json()["refresh_token"],
        }

        # -- refresh ---------------------------------------------------------------------------
        refreshed = await api.post(
            "/api/v1/token/refresh", json={"refresh_token": approver["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        seen |= {
            "refreshed access token": refreshed.json()["access_token"],
            "refreshed refresh token": refreshed.json()["refresh_token"],
        }

    # -- a browser: sign in by magic link, then approve a user code at /link ----------------
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as browser:
        page = await browser.get("/signin")
        before = len(smtp_sink)
        sent = await browser.post("/signin", data=form(page, email="bea@x.test", next="/link"))
        assert sent.status_code == 200, sent.text
        link_code, token = code_in_mail("bea@x.test", before)
        seen |= {"magic link token": token, "its email code": link_code}
        confirm_page = await browser.get(f"/auth/email/{token}")
        followed = await browser.post(f"/auth/email/{token}", data=form(confirm_page))
        assert followed.status_code == 303, followed.text
        for name, value in browser.cookies.items():
            seen[f"browser cookie {name}"] = value

        # a browser-kind requester: its secret lives only in its cookie
        desk = httpx.AsyncClient(base_url=server.url, timeout=30)
        async with desk:
            wanted = await desk.post("/api/v1/login-requests", json={}, headers=BROWSER)
            assert wanted.status_code == 201
            body = wanted.json()
            seen |= {f"desk cookie {n}": v for n, v in desk.cookies.items()}
            seen |= {
                "desk user code": body["user_code"],
                "desk handle": body["qr_url"].rsplit("/q/", 1)[1],
            }
            link_page = await browser.get("/link")
            typed = await browser.post("/link", data=form(link_page, user_code=body["user_code"]))
            assert typed.status_code == 303, typed.text  # redirect after POST
            linked = await browser.get(typed.headers["location"])
            assert linked.status_code == 200, linked.text
            approve_action = re.search(r'action="/q/([^/"]+)/approve"', linked.text)
            assert approve_action
            seen["handle from /link"] = approve_action.group(1)
            decided = await browser.post(f"/q/{approve_action.group(1)}/approve", data=form(linked))
            assert decided.status_code == 303, decided.text
            done = await browser.get(decided.headers["location"])
            assert done.status_code == 200, done.text
            shown = re.findall(r"\b\d{3} \d{3}\b", done.text)
            assert shown, done.text
            seen["desk confirm code"] = shown[0].replace(" ", "")
            # a wrong user code, as people mistype them
            again = await browser.get("/link")
            await browser.post("/link", data=form(again, user_code="999-999"))
            session = await desk.post(
                f"/api/v1/login-requests/{body['id']}/session",
                json={"confirm_code": seen["desk confirm code"]},
                headers=BROWSER,
            )
            assert session.status_code == 200, session.text
            seen |= {f"desk session cookie {n}": v for n, v in desk.cookies.items()}

    assert not server.server_errors
    text = "\n".join(capture.lines)
    text += "\n".join(str(r.args) + repr(r.__dict__) for r in capture.records)
    assert len(capture.lines) > 40, "the capture saw the flow"
    assert '"qrlogin.access"' in text

    def leaked(value: str) -> bool:
        # a 6-digit code also turns up by chance inside longer numbers (millisecond
        # timestamps, floats): for digit codes only a number standing alone counts
        if value.isdigit():
            return re.search(rf"(?<!\d){value}(?!\d)", text) is not None
        return value in text

    leaks = {name: value for name, value in seen.items() if value and leaked(value)}
    assert not leaks, f"secrets in the logs: {sorted(leaks)}"
    # every request the server answered logged one line, each with an id
    for line in capture.lines:
        entry = json.loads(line)
        if entry["logger"] == "qrlogin.access":
            assert re.fullmatch(r"[0-9a-f]{16}", entry["request_id"]), entry


def test_configured_logging_batches_access_lines_per_loop_round_without_a_thread(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``qrlogin serve``'s logging: no writer thread; access lines logged on the event loop
    are written together at the end of the loop's round, with the request id they were
    logged under; any other record is written at once, with every line kept before it, and
    nothing kept is lost when logging stops (what atexit runs)."""
    import asyncio
    import threading

    from qrlogin import logs

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    uvicorn_saved = [
        (lg, lg.handlers[:], lg.propagate, lg.disabled)
        for lg in map(logging.getLogger, ("uvicorn", "uvicorn.error", "uvicorn.access"))
    ]
    access = logging.getLogger(logs.ACCESS_LOGGER)
    threads_before = threading.active_count()
    writes: list[str] = []  # what each write to the stream carried

    async def serve() -> None:
        handler = logs._handler
        assert handler is not None
        stream = handler.stream
        original = stream.write

        def spy(text: str) -> int:
            writes.append(text)
            return int(original(text))

        stream.write = spy
        try:
            token = logs.request_id.set("req-42")
            try:
                for i in range(200):
                    access.info("line %d", i)
            finally:
                logs.request_id.reset(token)
            assert writes == []  # kept for the end of this round
            await asyncio.sleep(0)
            assert len(writes) == 1 and writes[0].count("\n") == 200  # one write, 200 lines
            access.info("GET /a 200")
            logging.getLogger("qrlogin.test").info("last")  # written at once, with the kept
            assert len(writes) == 2 and writes[1].count("\n") == 2
            access.info("GET / 200")  # kept ...
        finally:
            stream.write = original

    try:
        logs.configure()
        assert isinstance(root.handlers[0], logs.LoopBatchHandler)
        assert threading.active_count() == threads_before  # no writer thread
        asyncio.run(serve())
        logging.getLogger("qrlogin.test").info("off the loop")  # no loop: written at once
        logs._stop_writer()
    finally:
        logs._stop_writer()
        root.handlers[:], root.level = saved[0], saved[1]
        for lg, handlers, propagate, disabled in uvicorn_saved:
            lg.handlers[:], lg.propagate, lg.disabled = handlers, propagate, disabled
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [x["request_id"] for x in lines[:200]] == ["req-42"] * 200
    after = ["GET /a 200", "last", "GET / 200", "off the loop"]
    assert [x["message"] for x in lines[200:]] == after
    assert lines[201]["request_id"] == "-"


def test_an_access_line_made_directly_has_the_formatters_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under ``configure()`` the access log's lines are made without a LogRecord; they carry
    the same keys and values as ``JsonFormatter`` gives the same line logged the usual way."""
    import asyncio

    from qrlogin import logs

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    fields = {"status": 200, "method": "GET", "path": "/q/{…}", "ms": 1.5}
    try:
        logs.configure()
        token = logs.request_id.set("req-7")
        try:

            async def log_both() -> None:
                logs.log_access("GET /q/{…} 200", fields)  # the direct line
                logging.getLogger(logs.ACCESS_LOGGER).info("GET /q/{…} 200", extra=fields)

            asyncio.run(log_both())
        finally:
            logs.request_id.reset(token)
        logs._stop_writer()
    finally:
        logs._stop_writer()
        root.handlers[:], root.level = saved
    direct, usual = (json.loads(x) for x in capsys.readouterr().err.splitlines()[-2:])
    assert direct.keys() == usual.keys()
    assert {k: v for k, v in direct.items() if k != "time"} == {
        k: v for k, v in usual.items() if k != "time"
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", direct["time"])
