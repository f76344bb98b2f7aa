"""Servers under test as subprocesses: start, wait until they answer, measure, stop."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def cpu_percent(pids: list[int], seconds: float) -> float:
    """Percent of one core the processes used over ``seconds`` (sampled from /proc)."""
    before = sum(cpu_seconds(p) for p in pids)
    t0 = time.monotonic()
    time.sleep(seconds)
    after = sum(cpu_seconds(p) for p in pids)
    return 100.0 * (after - before) / (time.monotonic() - t0)


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    tmp: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """The server and its worker processes (gunicorn)."""
        return [self.pid, *children(self.pid)]

    def rss_kb(self) -> int:
        return sum(rss_kb(p) for p in self.pids())

    def follow(self) -> None:
        """Keep the server's stderr (and so its console mail) readable while it runs."""
        assert self.proc.stderr is not None
        stream = self.proc.stderr

        def run() -> None:
            with open(self.log_path, "w") as log:
                for raw in stream:
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    if len(self.lines) > 2000:
                        del self.lines[:1000]
                    log.write(line)

        self._reader = threading.Thread(target=run, daemon=True)
        self._reader.start()

    def wait_for_line(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            lines = list(self.lines)
            for line in lines[seen:]:
                m = rx.search(line)
                if m:
                    return m
            seen = max(0, len(lines) - 5)
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}: no line like {pattern!r} within {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _preexec() -> None:
    raise_nofile()
    os.setsid()


def _start(
    name: str, cmd: list[str], port: int, env: dict[str, str], results: Path, cwd: Path = ROOT
) -> Server:
    results.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_preexec,
    )
    server = Server(name, port, proc, results / f"{name}-{port}.log")
    server.follow()
    try:
        wait_port(port, proc)
    except Exception:
        server.stop()
        raise
    return server


def start_qrlogin(
    results: Path,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
    settings: dict[str, str] | None = None,
    workers: int = 1,
) -> Server:
    """``qrlogin serve`` on a fresh data dir; ``settings`` are more ``QRLOGIN_*`` variables
    (names without the prefix, e.g. ``{"DEVICE_POLL_INTERVAL": "1"}``); ``workers`` > 1
    needs ``redis_url``."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="qrlogin-bench-"))
    env = {
        **os.environ,
        "QRLOGIN_DATA_DIR": str(tmp),
        "QRLOGIN_RATE_LIMITS": "off",
        "QRLOGIN_CONFIRM": "tap",
        "QRLOGIN_SECRET_KEY": secrets.token_urlsafe(32),
    }
    for var in (
        "QRLOGIN_SMTP_URL",
        "QRLOGIN_DATABASE_URL",
        "QRLOGIN_REDIS_URL",
        "QRLOGIN_REDIS_PREFIX",
        "QRLOGIN_EVENTS",
    ):
        env.pop(var, None)
    if database_url:
        env["QRLOGIN_DATABASE_URL"] = database_url
    if redis_url:
        env["QRLOGIN_REDIS_URL"] = redis_url
        # channels of this run only, so runs (and instances of other runs) never cross
        env["QRLOGIN_REDIS_PREFIX"] = redis_prefix or f"bench-{secrets.token_hex(4)}"
    env.update({f"QRLOGIN_{k}": v for k, v in (settings or {}).items()})
    qrlogin = Path(sys.executable).with_name("qrlogin")
    cmd = [str(qrlogin), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    state = source_state()
    if state not in QRLOGIN_SOURCES:
        QRLOGIN_SOURCES.append(state)
    server = _start("qrlogin", cmd, port, env, results)
    server.tmp = tmp
    server.env = env
    return server


def add_qrlogin_client(server: Server, name: str, *options: str) -> dict[str, Any]:
    """``qrlogin clients add --name NAME OPTIONS… --json`` on the server's data dir."""
    qrlogin = Path(sys.executable).with_name("qrlogin")
    done = subprocess.run(
        [str(qrlogin), "clients", "add", "--name", name, *options, "--json"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"qrlogin clients add: {done.stdout}{done.stderr}")
    registered: dict[str, Any] = json.loads(done.stdout)
    return registered


QRLOGIN_SOURCES: list[str] = []  # the qrlogin source each started server ran


def source_state() -> str:
    """``git describe``-like: the commit of the source tree, and whether src/ had edits."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def ensure_peers_installed() -> None:
    """``npm install`` the node peer into bench/peers/node_modules once."""
    marker = PEERS / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=PEERS, check=True)


def start_oidc_provider(results: Path) -> Server:
    ensure_peers_installed()
    port = free_port()
    cmd = ["node", str(PEERS / "oidc_server.mjs"), str(port)]
    env = {**os.environ, "NODE_ENV": "production"}
    return _start("oidc-provider", cmd, port, env, results)


def authlib_workers() -> int:
    return 2 * (os.cpu_count() or 1) + 1


def start_authlib(results: Path) -> Server:
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    cmd = [
        str(gunicorn),
        "--workers",
        str(authlib_workers()),
        "--worker-class",
        "gthread",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--no-control-socket",
        "bench.peers.authlib_server:app",
    ]
    return _start("authlib", cmd, port, dict(os.environ), results)


def start_bare_fastapi(results: Path) -> Server:
    """A bare FastAPI app (bench/peers/bare_fastapi.py): the web stack's ceiling."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench.peers.bare_fastapi", str(port)]
    return _start("bare-fastapi", cmd, port, dict(os.environ), results)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def version_of(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"
