"""``python -m examples.fastapi_host [--port 8000] [--data-dir .example-host]``: serve the
example host on 127.0.0.1, with a demo user whose fresh password is printed at start."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

import uvicorn

from examples.fastapi_host.app import create_app

DEMO_USER = ("ann", "Ann Example")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.fastapi_host")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", type=Path, default=Path(".example-host"))
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    host = create_app(args.data_dir, url)
    password = secrets.token_urlsafe(9)
    host.store.set_password(*DEMO_USER, password)
    print(f"Example host on {url}/ — sign in as {DEMO_USER[0]!r} with password {password!r}")
    print("(a new password each start; sign in on a phone too, then scan the QR code)")
    uvicorn.run(host.app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
