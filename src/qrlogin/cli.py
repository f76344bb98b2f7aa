"""``qrlogin serve | migrate | login | whoami | logout | approve``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
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
            f"mail goes to SMTP at {urlsplit(settings.smtp_url).netloc.rsplit('@')[-1]} "
            "(no outbox)"
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
    logs.configure()
    uvicorn.run(
        create_app(settings),
        access_log=False,
        log_config=None,
        host=args.host,
        port=args.port,
        log_level="info",
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        # idle after a response (uvicorn's own); header and body timeouts and the connection
        # cap, which uvicorn lacks or answers in plain text, come with the protocol
        timeout_keep_alive=settings.keepalive_timeout,  # type: ignore[arg-type]
        http=guarded_protocol(
            ConnectionLimits(
                header_timeout=settings.header_timeout,
                body_timeout=settings.body_timeout,
                max_connections=settings.max_connections,
                https=settings.https,
            )
        ),
    )
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qrlogin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sign-in service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--public-url", help="the URL people reach this service at")
    serve.add_argument("--dev", action="store_true", help="show mail at /dev/outbox")
    serve.add_argument("--config", metavar="FILE", help="TOML file with settings")
    serve.set_defaults(func=_serve)
    migrate = sub.add_parser("migrate", help="create or upgrade the database")
    migrate.add_argument("--config", metavar="FILE", help="TOML file with settings")
    migrate.set_defaults(func=_migrate)
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
