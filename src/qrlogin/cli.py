"""``qrlogin serve | migrate | clients | keys | login | whoami | logout | approve``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from qrlogin.config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return load_settings(Path(args.config) if args.config else None, None, **overrides)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from qrlogin import logs
    from qrlogin.web.app import create_app
    from qrlogin.web.serving import ConnectionLimits, guarded_protocol

    settings = _settings(args, public_url=args.public_url, dev=True if args.dev else None)
    if (
        args.public_url is None
        and settings.public_url == Settings.public_url  # configured nowhere
        and args.host in ("127.0.0.1", "localhost")
        and args.port != 8000
    ):
        # a local run on another port: links must reach it (behind a proxy the configured
        # QRLOGIN_PUBLIC_URL wins, even though the instance listens on 127.0.0.1)
        settings = settings.with_overrides(public_url=f"http://127.0.0.1:{args.port}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"qrlogin: serving on http://{args.host}:{args.port}  (links use {settings.public_url}; "
        f"data in {settings.data_dir.resolve()})",
        file=sys.stderr,
    )
    if settings.dev:
        where = (
            # the server only: the URL may carry a password
            f"mail goes to SMTP at {urlsplit(settings.smtp_url).netloc.rsplit('@')[-1]} (no outbox)"
            if settings.smtp_url
            else f"mail is printed here and shown at {settings.public_url}/dev/outbox"
        )
        print(f"qrlogin: development mode is on: {where}", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1") and "127.0.0.1" in settings.public_url:
        print(
            "qrlogin: other devices cannot open 127.0.0.1 links: pass "
            "--public-url http://<this machine's LAN address>:<port>",
            file=sys.stderr,
        )
    workers = args.workers
    if workers < 1:
        print("qrlogin: --workers must be 1 or more", file=sys.stderr)
        return 2
    if workers > 1 and not settings.redis_url:
        # each worker is a process of its own: an approval made in one must reach a requester
        # waiting on another, and per-address limits must count across them
        print(
            "qrlogin: --workers > 1 needs QRLOGIN_REDIS_URL: without it an approval made "
            "through one worker would not reach a device waiting on another, and rate limits "
            "would count per worker. Set QRLOGIN_REDIS_URL, or serve with --workers 1.",
            file=sys.stderr,
        )
        return 2
    protocol = guarded_protocol(
        ConnectionLimits(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
            https=settings.https,
        )
    )

    def serve(sockets: list[socket.socket] | None) -> None:
        """One process's server: its own logging, app (built after the fork: nothing of
        it is shared) and event loop."""
        logs.configure()
        config = uvicorn.Config(
            create_app(settings, freeze_gc=True),
            access_log=False,
            log_config=None,
            host=args.host,
            port=args.port,
            log_level="info",
            proxy_headers=False,
            timeout_graceful_shutdown=5,
            # idle after a response (uvicorn's own); header and body timeouts and the
            # connection cap, which uvicorn lacks or answers in plain text: the protocol
            timeout_keep_alive=settings.keepalive_timeout,  # type: ignore[arg-type]
            http=protocol,
        )
        uvicorn.Server(config).run(sockets=sockets)

    if workers == 1:
        serve(None)
        return 0
    settings.key_bytes()  # a generated server key is written once, here, not by each worker
    return _supervise(workers, args.host, args.port, serve)


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket of this worker's own on the shared port: with ``SO_REUSEPORT`` the kernel
    spreads new connections over the workers' sockets."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _supervise(
    workers: int, host: str, port: int, serve: Callable[[list[socket.socket]], None]
) -> int:
    """``--workers N``: N forked processes, each serving the port on a socket of its own.
    SIGTERM or SIGINT stops them all (each finishes its requests); if one dies the others
    are stopped too, and the exit status says so, for the service manager to restart."""
    children: list[int] = []
    for _ in range(workers):
        sock = _listening_socket(host, port)  # bound here, so a taken port fails at once
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                serve([sock])
            except BaseException:
                code = 1
                raise
            finally:
                os._exit(code)
        sock.close()
        children.append(pid)
    print(f"qrlogin: {workers} workers: {' '.join(map(str, children))}", file=sys.stderr)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        children.remove(pid)
        if not stopping:  # a worker died on its own: stop the rest
            print(f"qrlogin: worker {pid} stopped (status {code}); stopping", file=sys.stderr)
            status = 1
            stop(signal.SIGTERM, None)
    return status


def _migrate(args: argparse.Namespace) -> int:
    from qrlogin.store.engine import make_engine
    from qrlogin.store.migrate import upgrade

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        engine = make_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print("qrlogin: database is up to date", file=sys.stderr)
    return 0


def _with_store(args: argparse.Namespace, work: Callable[[Any, Settings], Awaitable[int]]) -> int:
    """Run ``work(store, settings)`` on the database ``qrlogin serve`` uses (migrated first)."""
    from qrlogin.store.engine import make_engine
    from qrlogin.store.migrate import upgrade
    from qrlogin.store.sql import SqlStore

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> int:
        engine = make_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
            store = SqlStore(engine)
            return await work(store, settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _client_json(client: Any, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"client_id": client.id}
    if secret is not None:
        out["client_secret"] = secret
    out.update(
        name=client.name,
        redirect_uris=list(client.redirect_uris),
        post_logout_redirect_uris=list(client.post_logout_redirect_uris),
        public=client.public,
        first_party=client.first_party,
        token_endpoint_auth_method="none" if client.public else "client_secret_basic",
    )
    return out


def _clients_add(args: argparse.Namespace) -> int:
    from qrlogin.oauth.clients import Clients

    async def work(store: Any, settings: Settings) -> int:
        try:
            made = await Clients(store).add(
                args.name,
                args.redirect_uri or (),
                args.post_logout_redirect_uri or (),
                public=args.public,
                first_party=args.first_party,
                now=time.time(),
            )
        except ValueError as exc:
            print(f"qrlogin: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(_client_json(made.client, made.secret), indent=2))
            return 0
        print(f"client_id:     {made.client.id}")
        if made.secret is not None:
            print(f"client_secret: {made.secret}")
            print("(the secret is shown this once; only its hash is kept)", file=sys.stderr)
        print(f"issuer:        {settings.public_url}", file=sys.stderr)
        return 0

    return _with_store(args, work)


def _clients_list(args: argparse.Namespace) -> int:
    async def work(store: Any, settings: Settings) -> int:
        clients = await store.list_clients()
        if args.json:
            print(json.dumps([_client_json(c) for c in clients], indent=2))
            return 0
        if not clients:
            print("no clients registered (qrlogin clients add --help)", file=sys.stderr)
        for c in clients:
            kind = "public" if c.public else "confidential"
            extra = ", first-party" if c.first_party else ""
            print(f"{c.id}  {c.name}  ({kind}{extra})  {' '.join(c.redirect_uris)}")
        return 0

    return _with_store(args, work)


def _clients_remove(args: argparse.Namespace) -> int:
    async def work(store: Any, settings: Settings) -> int:
        if not await store.delete_client(args.client_id):
            print(f"qrlogin: no client {args.client_id!r}", file=sys.stderr)
            return 1
        print(f"removed {args.client_id}", file=sys.stderr)
        return 0

    return _with_store(args, work)


def _keys_rotate(args: argparse.Namespace) -> int:
    from qrlogin.core.clock import SystemClock
    from qrlogin.oauth.keys import SigningKeys
    from qrlogin.services import ID_TOKEN_LIFETIME

    async def work(store: Any, settings: Settings) -> int:
        keys = SigningKeys(
            store, SystemClock(), settings.key_bytes(), token_lifetime=ID_TOKEN_LIFETIME
        )
        made = await keys.create(args.alg, rotate=True)
        print(
            f"new {made.alg} signing key {made.kid}; the previous one is published until the "
            "tokens it signed have expired",
            file=sys.stderr,
        )
        return 0

    return _with_store(args, work)


def _keys_list(args: argparse.Namespace) -> int:
    async def work(store: Any, settings: Settings) -> int:
        for k in await store.signing_keys(time.time()):
            state = (
                "signing"
                if k.retired_at is None
                else "retired, published until "
                + (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(k.expires_at or 0)))
            )
            print(f"{k.kid}  {k.alg}  {state}")
        return 0

    return _with_store(args, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qrlogin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sign-in service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--public-url", help="the URL people reach this service at")
    serve.add_argument("--dev", action="store_true", help="show mail at /dev/outbox")
    serve.add_argument("--config", metavar="FILE", help="TOML file with settings")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port (more than 1 needs QRLOGIN_REDIS_URL)",
    )
    serve.set_defaults(func=_serve)
    migrate = sub.add_parser("migrate", help="create or upgrade the database")
    migrate.add_argument("--config", metavar="FILE", help="TOML file with settings")
    migrate.set_defaults(func=_migrate)
    clients = sub.add_parser("clients", help="register the apps that sign in through OpenID")
    csub = clients.add_subparsers(dest="clients_command", required=True)
    add = csub.add_parser("add", help="register a client; prints its id (and secret, once)")
    add.add_argument("--name", required=True, help="shown to people on the consent page")
    add.add_argument("--redirect-uri", action="append", metavar="URI", help="repeatable")
    add.add_argument(
        "--post-logout-redirect-uri", action="append", metavar="URI", help="repeatable"
    )
    add.add_argument("--public", action="store_true", help="no secret (native apps, SPAs, CLIs)")
    add.add_argument("--first-party", action="store_true", help="skip the consent page")
    add.add_argument("--json", action="store_true")
    add.add_argument("--config", metavar="FILE", help="TOML file with settings")
    add.set_defaults(func=_clients_add)
    ls = csub.add_parser("list", help="list registered clients")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--config", metavar="FILE", help="TOML file with settings")
    ls.set_defaults(func=_clients_list)
    rm = csub.add_parser("remove", help="remove a client")
    rm.add_argument("client_id")
    rm.add_argument("--config", metavar="FILE", help="TOML file with settings")
    rm.set_defaults(func=_clients_remove)
    keys = sub.add_parser("keys", help="the ID token signing keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    rot = ksub.add_parser("rotate", help="a new signing key; the old one verifies until expiry")
    rot.add_argument("--alg", choices=["RS256", "ES256"], default="RS256")
    rot.add_argument("--config", metavar="FILE", help="TOML file with settings")
    rot.set_defaults(func=_keys_rotate)
    kls = ksub.add_parser("list", help="list the published keys")
    kls.add_argument("--config", metavar="FILE", help="TOML file with settings")
    kls.set_defaults(func=_keys_list)
    # the client's commands: the SDK's terminal face (qrlogin.client.terminal)
    from qrlogin.client.terminal import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"qrlogin: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
