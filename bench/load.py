"""Throughput under one load generator for every target: wrk, 32 connections, Lua scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
CONNECTIONS = 32


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    completed: int | None = None
    failed: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # a script's own tallies (poll.lua)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def ok_rps(self) -> float:
        """2xx replies per second: errors do not count as throughput."""
        return (self.requests - self.non2xx) / self.seconds

    @property
    def completed_ps(self) -> float:
        return (self.completed or 0) / self.seconds


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


_BASE_KEYS = frozenset(
    ("requests", "duration_us", "non2xx", "socket_errors", "p50_us", "p99_us", "max_us")
) | {"completed", "failed"}


def _parse(out: str) -> WrkResult:
    for line in out.splitlines():
        if line.startswith("BENCH "):
            d = json.loads(line[6:])
            return WrkResult(
                requests=d["requests"],
                seconds=d["duration_us"] / 1e6,
                non2xx=d["non2xx"],
                socket_errors=d["socket_errors"],
                p50_ms=d["p50_us"] / 1000,
                p99_ms=d["p99_us"] / 1000,
                max_ms=d["max_us"] / 1000,
                completed=d.get("completed"),
                failed=d.get("failed"),
                counts={k: v for k, v in d.items() if k not in _BASE_KEYS},
            )
    raise RuntimeError(f"wrk printed no result:\n{out}")


def wrk_start(
    url: str,
    script: str,
    seconds: float,
    env: dict[str, str],
    *,
    connections: int = CONNECTIONS,
    threads: int | None = None,
) -> subprocess.Popen[str]:
    threads = threads or min(connections, 2)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA / script),
        url,
    ]
    full_env = {**os.environ, "BENCH_LUA_DIR": str(LUA), **env}
    return subprocess.Popen(
        cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wrk_finish(proc: subprocess.Popen[str], timeout: float) -> WrkResult:
    out, _ = proc.communicate(timeout=timeout)
    return _parse(out)


def wrk(url: str, script: str, seconds: float, env: dict[str, str], **kw: int) -> WrkResult:
    return wrk_finish(wrk_start(url, script, seconds, env, **kw), seconds + 30)


def combine(results: list[WrkResult]) -> WrkResult:
    """Several wrk processes run side by side (one per instance) as one result."""
    seconds = max(r.seconds for r in results)
    return WrkResult(
        requests=sum(r.requests for r in results),
        seconds=seconds,
        non2xx=sum(r.non2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        max_ms=max(r.max_ms for r in results),
        completed=sum(r.completed or 0 for r in results),
        failed=sum(r.failed or 0 for r in results),
    )


def create_env(path: str, body: str, ctype: str) -> dict[str, str]:
    return {"BENCH_PATH": path, "BENCH_BODY": body, "BENCH_CTYPE": ctype}


QRLOGIN_CREATE = create_env("/api/v1/login-requests", "{}", "application/json")
OIDC_CREATE = create_env(
    "/device/auth", "client_id=bench-device&scope=openid", "application/x-www-form-urlencoded"
)
AUTHLIB_CREATE = create_env(
    "/device_authorization",
    "client_id=bench-device&scope=openid",
    "application/x-www-form-urlencoded",
)
