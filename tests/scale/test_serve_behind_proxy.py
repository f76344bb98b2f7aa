"""``qrlogin serve`` as it runs behind nginx (docs/deploy.md): bound to 127.0.0.1 on its own
port, with the public address configured. Links, QR codes and cookies follow the configured
QRLOGIN_PUBLIC_URL, not the local port."""

from __future__ import annotations

from pathlib import Path

import httpx

from scale.scale_support import ServeProcess, asyncpg_url, serve_env
from support import free_port


def test_serve_on_loopback_keeps_the_configured_public_url(pg_url: str, tmp_path: Path) -> None:
    env = serve_env(
        database_url=asyncpg_url(pg_url),
        public_url="https://login.example.test",
        secret_key="behind-a-proxy-" + "p" * 30,
        trusted_proxies="127.0.0.1",
        data_dir=str(tmp_path),
    )
    server = ServeProcess(free_port(), env, tmp_path / "serve.log").start()
    try:
        created = httpx.post(
            f"{server.url}/api/v1/login-requests",
            json={},
            headers={"qrlogin-client": "browser", "x-forwarded-for": "203.0.113.9"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        assert created.json()["qr_url"].startswith("https://login.example.test/q/")
        cookie = created.headers["set-cookie"]
        assert cookie.startswith("__Host-qrl_requester=") and "Secure" in cookie, cookie
    finally:
        server.stop()


def test_serve_on_another_local_port_without_a_public_url_links_to_itself(
    pg_url: str, tmp_path: Path
) -> None:
    env = serve_env(database_url=asyncpg_url(pg_url), data_dir=str(tmp_path))
    server = ServeProcess(free_port(), env, tmp_path / "serve.log").start()
    try:
        created = httpx.post(f"{server.url}/api/v1/login-requests", json={}, timeout=30)
        assert created.json()["qr_url"].startswith(f"{server.url}/q/"), created.text
    finally:
        server.stop()
