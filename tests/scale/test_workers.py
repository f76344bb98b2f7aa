"""``qrlogin serve --workers 2`` (issue 15): two processes share one port and one SQLite
file, with Redis for events and rate-limit counters. A requester waiting on one worker is
pushed an approval made through the other (both ways), per-address limits count across the
workers, and without Redis the command refuses to start rather than lose events."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import SmtpSink, free_port

pytestmark = pytest.mark.servers

QRLOGIN = Path(sys.executable).with_name("qrlogin")
REDIS_URL = os.environ.get("QRLOGIN_TEST_REDIS", "redis://127.0.0.1:6379/0")
BROWSER = {"Qrlogin-Client": "browser"}


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRLOGIN_")}
    env["QRLOGIN_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


@contextlib.contextmanager
def serving_workers(tmp_path: Path, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """``qrlogin serve --workers N`` until every worker answers ``/healthz``; stopped with
    SIGTERM, which must stop them all cleanly."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(QRLOGIN), "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        seen: set[int] = set()
        while len(seen) < workers:  # every worker answers
            if proc.poll() is not None:
                pytest.fail(f"qrlogin serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                seen.add(httpx.get(f"{url}/healthz", timeout=2).json()["worker"])
            except httpx.TransportError:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                pytest.fail(f"{workers} workers did not answer within 40 s:\n{log.read_text()}")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        assert proc.returncode == 0, log.read_text()  # SIGTERM stops every worker cleanly


def redis_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return env_for(
        data_dir,
        QRLOGIN_REDIS_URL=REDIS_URL,
        QRLOGIN_REDIS_PREFIX=f"qrlw{uuid.uuid4().hex[:10]}",
        **extra,
    )


@pytest.fixture
def two_workers(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[str]:
    env = redis_env(tmp_path / "data", QRLOGIN_SMTP_URL=smtp_sink.url, QRLOGIN_CONFIRM="tap")
    with serving_workers(tmp_path, env) as url:
        yield url


def test_workers_starting_together_on_a_new_data_dir_all_start(tmp_path: Path) -> None:
    """Each worker opens the new database file and migrates it at the same moment as the
    others; SQLite tells one that finds another switching the file to WAL "database is
    locked" without waiting, which failed one start in three. Six starts on a new data dir
    each, with four and two workers: every worker of each answers."""
    for start in range(6):
        data = tmp_path / f"data-{start}"
        # the key given, as a deployment does: no key file for the command to make first
        env = redis_env(data, QRLOGIN_SECRET_KEY=f"{uuid.uuid4().hex}{uuid.uuid4().hex}")
        with serving_workers(tmp_path, env, workers=4 if start % 2 else 2) as url:
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200


def pinned(url: str, avoid: int | None = None) -> tuple[httpx.Client, int]:
    """A client with one kept-alive connection, so all its calls reach one worker; one on
    another worker than ``avoid`` when asked (new connections until the kernel's spread
    lands on it; bounded)."""
    for _ in range(200):
        client = httpx.Client(base_url=url, limits=httpx.Limits(max_connections=1), timeout=10)
        worker = int(client.get("/healthz").json()["worker"])
        if worker != avoid:
            return client, worker
        client.close()
    pytest.fail("200 new connections all reached the same worker")


def sign_in(client: httpx.Client, sink: SmtpSink) -> None:
    email = f"w{uuid.uuid4().hex[:8]}@example.com"
    after = len(sink)
    assert client.post("/api/v1/auth/email/start", json={"email": email}).status_code == 202
    code = re.search(r"sign-in code is (\d{6})", str(sink.latest_to(email, after=after)))
    assert code is not None
    verified = client.post(
        "/api/v1/auth/email/verify", json={"email": email, "code": code.group(1)}, headers=BROWSER
    )
    assert verified.status_code == 200, verified.text


def approved_through_the_other_worker(url: str, sink: SmtpSink, first: int | None) -> int:
    """A requester streams from one worker and is pushed the approval made on the other;
    the requester's worker."""
    requester, here = pinned(url, avoid=first)
    approver, there = pinned(url, avoid=here)
    assert here != there
    created = requester.post("/api/v1/login-requests", json={})
    assert created.status_code == 201, created.text
    body = created.json()
    auth = {"authorization": f"Bearer {body['secret']}"}
    handle = body["qr_url"].rsplit("/", 1)[-1]
    sign_in(approver, sink)
    with requester.stream(
        "GET", f"/api/v1/login-requests/{body['id']}/events", headers=auth
    ) as stream:
        lines = stream.iter_lines()
        assert approver.get(f"/api/v1/scan/{handle}").status_code == 200
        decided = approver.post(f"/api/v1/scan/{handle}/approve", headers=BROWSER)
        assert decided.status_code == 200, decided.text
        deadline = time.monotonic() + 10  # far below the 15 s heartbeat: only the bus
        status = None
        for line in lines:
            if line.startswith("data:"):
                status = json.loads(line[5:]).get("status")
                if status == "approved":
                    break
            assert time.monotonic() < deadline, "the approval never reached the stream"
    assert status == "approved"
    requester.close()
    approver.close()
    return here


def test_an_approval_on_one_worker_reaches_a_requester_on_the_other(
    two_workers: str, smtp_sink: SmtpSink
) -> None:
    first = approved_through_the_other_worker(two_workers, smtp_sink, None)
    second = approved_through_the_other_worker(two_workers, smtp_sink, first)

    assert first != second  # once each way


def test_per_address_limits_count_across_workers(two_workers: str) -> None:
    """email_start_per_ip allows 20 a minute per address: 25 calls on new connections, which
    the kernel spreads over both workers, get exactly 20 through (per-worker counters would
    let up to 40 through)."""
    workers: set[int] = set()
    statuses = []
    for i in range(25):
        with httpx.Client(base_url=two_workers, timeout=10) as client:
            workers.add(int(client.get("/healthz").json()["worker"]))
            reply = client.post("/api/v1/auth/email/start", json={"email": f"n{i}@example.com"})
            statuses.append(reply.status_code)

    assert statuses.count(202) == 20 and statuses.count(429) == 5, statuses
    assert len(workers) == 2


def test_more_than_one_worker_without_redis_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(QRLOGIN), "serve", "--port", str(free_port()), "--workers", "2"],
        env=env_for(tmp_path / "data"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "--workers > 1 needs QRLOGIN_REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
