"""The `qrlogin` console script, run as a real subprocess from the virtualenv."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import free_port

QRLOGIN = Path(sys.executable).with_name("qrlogin")


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRLOGIN_")}
    env["QRLOGIN_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(QRLOGIN), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def test_the_console_script_is_installed() -> None:
    assert QRLOGIN.is_file(), f"{QRLOGIN} is missing: is qrlogin installed in this venv?"


def test_migrate_creates_the_sqlite_database_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # does not exist yet
    result = run("migrate", env=env_for(data_dir), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stderr
    db = data_dir / "qrlogin.db"
    assert db.is_file()
    assert {"users", "sessions", "login_requests", "email_logins", "alembic_version"} <= tables(db)
    with sqlite3.connect(db) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert revision
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not (tmp_path / ".qrlogin").exists()  # nothing went to the default place

    again = run("migrate", env=env_for(data_dir), cwd=tmp_path)  # idempotent
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == revision


def test_migrate_reads_a_toml_config_file(tmp_path: Path) -> None:
    config = tmp_path / "qrlogin.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-config"}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRLOGIN_")}

    result = subprocess.run(
        [str(QRLOGIN), "migrate", "--config", str(config)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "login_requests" in tables(tmp_path / "from-config" / "qrlogin.db")


def test_a_bad_setting_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = run("migrate", env=env_for(tmp_path, QRLOGIN_CONFIRM="sometimes"), cwd=tmp_path)
    assert result.returncode == 2
    assert "qrlogin: QRLOGIN_CONFIRM must be one of code, tap, auto" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run("frobnicate", env=env_for(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: qrlogin" in result.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path, Path]]:
    """`qrlogin serve --port <free>` as a subprocess; terminated (then killed) at teardown."""
    data_dir = tmp_path / "data"
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(QRLOGIN), "serve", "--port", str(port)],
            env=env_for(data_dir),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"qrlogin serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"qrlogin serve did not answer within 30 s:\n{log.read_text()}")
            time.sleep(0.1)
        yield url, proc, data_dir, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_serve_answers_healthz_and_login_then_stops(
    served: tuple[str, subprocess.Popen[str], Path, Path],
) -> None:
    url, proc, data_dir, log = served

    health = httpx.get(f"{url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "worker": proc.pid}  # one worker: the process

    page = httpx.get(f"{url}/login", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Sign in with your phone" in page.text
    assert f"{url}/link" in page.text  # links use this server's URL, not the default port

    # the API works, and the QR code encodes this server's own URL
    created = httpx.post(f"{url}/api/v1/login-requests", json={}, timeout=10)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["qr_url"].startswith(f"{url}/q/")
    qr = httpx.get(
        f"{url}/api/v1/login-requests/{body['id']}/qr.svg",
        headers={"Authorization": f"Bearer {body['secret']}"},
        timeout=10,
    )
    assert qr.status_code == 200
    assert "<svg" in qr.text

    # serve migrated the database in the data dir at start
    assert "login_requests" in tables(data_dir / "qrlogin.db")

    # SIGTERM shuts it down gracefully (uvicorn re-raises the signal once it is done)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({}, "development mode is on: mail is printed here and shown at "),
        (
            {"QRLOGIN_SMTP_URL": "smtp://u:pw@mail.example:25"},
            "mail goes to SMTP at mail.example:25",
        ),
    ],
)
def test_the_start_up_line_says_when_dev_mode_is_on_and_where_the_outbox_is(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: dict[str, str],
    said: str,
) -> None:
    import uvicorn

    from qrlogin import cli, logs

    monkeypatch.setattr(uvicorn.Server, "run", lambda *args, **kwargs: None)  # start-up line only
    monkeypatch.setattr(logs, "configure", lambda: None)
    for name in [k for k in os.environ if k.startswith("QRLOGIN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QRLOGIN_DATA_DIR", str(tmp_path))
    for name, value in extra.items():
        monkeypatch.setenv(name, value)

    assert cli.main(["serve", "--dev", "--port", "8123"]) == 0
    assert cli.main(["serve", "--port", "8124"]) == 0

    first, second = capsys.readouterr().err.split("qrlogin: serving on")[1:]
    assert said in first
    if not extra:
        assert "http://127.0.0.1:8123/dev/outbox" in first
    assert "development mode" not in second


# -- clients and keys (the OpenID Provider) ---------------------------------------------------


def test_clients_add_prints_the_secret_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    import json

    env = env_for(tmp_path / "data")
    added = run(
        "clients",
        "add",
        "--name",
        "Photo Shop",
        "--redirect-uri",
        "https://shop.example/cb",
        "--redirect-uri",
        "https://shop.example/cb2",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    made = json.loads(added.stdout)
    assert made["name"] == "Photo Shop" and made["public"] is False
    assert made["redirect_uris"] == ["https://shop.example/cb", "https://shop.example/cb2"]
    secret = made["client_secret"]
    listed = run("clients", "list", "--json", env=env, cwd=tmp_path)
    assert json.loads(listed.stdout)[0]["client_id"] == made["client_id"]
    assert secret not in listed.stdout
    with sqlite3.connect(tmp_path / "data" / "qrlogin.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert made["client_id"] in dump and secret not in dump  # hashed (requirement 7)
    public = json.loads(
        run("clients", "add", "--name", "CLI", "--public", "--json", env=env, cwd=tmp_path).stdout
    )
    assert "client_secret" not in public and public["public"] is True
    removed = run("clients", "remove", made["client_id"], env=env, cwd=tmp_path)
    assert removed.returncode == 0
    again = run("clients", "remove", made["client_id"], env=env, cwd=tmp_path)
    assert again.returncode == 1 and "no client" in again.stderr


def test_clients_add_refuses_a_bad_redirect_uri_clearly(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    bad = run(
        "clients",
        "add",
        "--name",
        "X",
        "--redirect-uri",
        "https://a.example/cb#x",
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "fragment" in bad.stderr
    assert run("clients", "list", env=env, cwd=tmp_path).stdout == ""


def test_keys_rotate_and_list(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    assert run("keys", "rotate", "--alg", "ES256", env=env, cwd=tmp_path).returncode == 0
    assert run("keys", "rotate", "--alg", "ES256", env=env, cwd=tmp_path).returncode == 0
    listed = run("keys", "list", env=env, cwd=tmp_path).stdout.splitlines()
    assert len(listed) == 2
    assert "signing" in listed[0] and "retired, published until" in listed[1]
    with sqlite3.connect(tmp_path / "data" / "qrlogin.db") as conn:
        sealed = [row[0] for row in conn.execute("SELECT private_jwk FROM signing_keys")]
    assert all('"d"' not in s for s in sealed)  # the private half is sealed
