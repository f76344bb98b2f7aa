"""Fuzz the JSON API against its own OpenAPI document with schemathesis (``scripts/fuzz-api``).

Starts ``qrlogin serve --dev`` on 127.0.0.1 (a free port, a temporary data dir, SQLite,
in-process events), signs one device in by email through the API (the code is read from the
dev outbox), and runs ``schemathesis run --checks all`` twice: anonymous, then with that
device's ``Authorization: Bearer`` token. Fails on any failed check, and on any traceback the
server logged.

Rate limits are off (``QRLOGIN_RATE_LIMITS=off``): with them on, the fuzzer's hundreds of
calls from one address would be answered 429 after the first few and never reach the code
behind the limits. The 429s stay documented on every limited operation
(tests/web/test_openapi.py checks that), and tests/web/test_rate_limits.py tests the limits.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
CONFIG = ROOT / "scripts" / "schemathesis.toml"
EMAIL = "fuzz@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_up(url: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"fuzz-api: the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"fuzz-api: the server did not answer within {seconds:.0f}s")


def sign_in(url: str) -> str:
    """An access token for a device signed in by email (code from the dev outbox)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        started = client.post("/api/v1/auth/email/start", json={"email": EMAIL})
        started.raise_for_status()
        outbox = client.get("/dev/outbox").text
        codes = re.findall(r"sign-in code is (\d{6})", outbox)
        if not codes:
            raise SystemExit("fuzz-api: no sign-in code in the dev outbox")
        verified = client.post(
            "/api/v1/auth/email/verify", json={"email": EMAIL, "code": codes[-1]}
        )
        verified.raise_for_status()
        token: str = verified.json()["access_token"]
        return token


def schemathesis(url: str, label: str, args: argparse.Namespace, *extra: str) -> int:
    command = [
        str(VENV_BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        # one worker: schemathesis' threads trip over CPython 3.11's ast module (hypothesis
        # parses lambdas' source to name strategies: "AST constructor recursion depth mismatch")
        "--workers",
        "1",
        "--request-timeout",
        "10",
        *extra,
    ]
    shown = " ".join("'Authorization: Bearer …'" if "Bearer" in c else c for c in command)
    print(f"fuzz-api: {label}: {shown}", flush=True)
    return subprocess.run(command, cwd=ROOT, check=False).returncode  # noqa: S603 - our own argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "20261202")))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="qrlogin-fuzz-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("QRLOGIN_")} | {
            "QRLOGIN_DATA_DIR": str(Path(tmp) / "data"),
            "QRLOGIN_RATE_LIMITS": "off",
        }
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(  # noqa: S603 - our own argv
                [
                    str(VENV_BIN / "qrlogin"),
                    "serve",
                    "--dev",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_up(url, server)
            token = sign_in(url)
            anonymous = schemathesis(url, "anonymous", args)
            signed_in = schemathesis(
                url,
                "signed in",
                args,
                "-H",
                f"Authorization: Bearer {token}",
                # signing out would leave the rest of this run anonymous; the anonymous run
                # covers the operation
                "--exclude-path",
                "/api/v1/logout",
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
        logged = log_path.read_text(errors="replace")
    tracebacks = logged.count("Traceback (most recent call last)")
    if tracebacks:
        print(logged[-8000:], file=sys.stderr)
        print(f"fuzz-api: the server logged {tracebacks} traceback(s)", file=sys.stderr)
    failed = [name for name, rc in (("anonymous", anonymous), ("signed in", signed_in)) if rc]
    if failed:
        print(f"fuzz-api: schemathesis failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
