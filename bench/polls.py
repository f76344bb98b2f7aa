"""RFC 8628 token polls answered per second (issue 12), qrlogin and oidc-provider in one run.

Many device codes are made up front and never approved; wrk (``bench/lua/poll.lua``, 32
connections, 2 threads) polls them round-robin, so every code waits codes / rate seconds
between two of its polls. That must be no less than the target's interval: after a run whose
rate left a code less time than that, more codes are made and the run is repeated (once).

- qrlogin runs with ``QRLOGIN_DEVICE_POLL_INTERVAL=1``; it answers ``slow_down`` to a code
  polled again within 0.8 s (its tolerance). Only ``authorization_pending`` replies count as
  answered polls; ``slow_down`` and any other reply are reported beside them.
- oidc-provider 9 sends no ``interval`` (so RFC 8628's 5 s applies) and never answers
  ``slow_down``: it has no poll clock. Its codes are sized for 5 s all the same.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import load, procs
from bench.waiting import Pool, bounded

MARGIN = 1.25  # codes = rate × interval × this, so no code comes round sooner than its interval
CREATE_LIMIT = 60.0  # seconds the making of codes may take, per batch


@dataclass(frozen=True)
class Target:
    name: str
    create_path: str
    token_path: str
    interval: float  # seconds a code must be left alone between two polls
    first_codes: int  # codes made before the first run (topped up if the rate needs more)


QRLOGIN = Target("qrlogin", "/oauth/device_authorization", "/oauth/token", 1.0, 3000)
OIDC = Target("oidc-provider", "/device/auth", "/token", 5.0, 15000)


@dataclass
class PollRun:
    target: str
    interval: float
    codes: int
    result: load.WrkResult
    create_rate: float  # device codes made per second while setting up
    runs: int  # 2 when the first run was too fast for its codes

    def count(self, reply: str) -> int:
        return self.result.counts.get(reply, 0)

    @property
    def answered_ps(self) -> float:
        """``authorization_pending`` replies per second."""
        return self.count("pending") / self.result.seconds

    @property
    def period(self) -> float:
        """Seconds between two polls of one code in the measured run."""
        return self.codes / max(1e-9, self.result.rps)


async def make_codes(port: int, target: Target, client_id: str, n: int) -> list[str]:
    """``n`` device codes from the target's device authorization endpoint (fewer if
    CREATE_LIMIT runs out)."""
    pool = Pool(port, 32)
    form = {"client_id": client_id, "scope": "openid"}

    async def create(_: int) -> str:
        r = await pool.request("POST", target.create_path, form=form)
        if r.status != 200:
            raise RuntimeError(f"{target.create_path}: HTTP {r.status} {r.body[:200]!r}")
        code: str = r.json()["device_code"]
        return code

    try:
        return await bounded(n, 32, create, deadline=time.perf_counter() + CREATE_LIMIT)
    finally:
        await pool.close()


def measure(
    server: procs.Server,
    target: Target,
    client_id: str,
    seconds: float,
    codes_file: Path,
    *,
    warm: bool,
    log: Callable[[str], None],
) -> PollRun:
    url = f"http://127.0.0.1:{server.port}"
    t0 = time.perf_counter()
    codes = asyncio.run(make_codes(server.port, target, client_id, target.first_codes))
    create_rate = len(codes) / (time.perf_counter() - t0)
    log(f"  {target.name}: {len(codes):,} device codes made ({create_rate:,.0f}/s)")
    env = {
        "BENCH_PATH": target.token_path,
        "BENCH_CODES": str(codes_file),
        "BENCH_CLIENT_ID": client_id,
        "BENCH_THREADS": "2",
    }
    runs = 0
    while True:
        codes_file.write_text("\n".join(codes) + "\n")
        if warm:
            load.wrk(url, "poll.lua", 1, env, threads=2)
        time.sleep(target.interval)  # no code measured was polled in the last interval
        result = load.wrk(url, "poll.lua", seconds, env, threads=2)
        runs += 1
        needed = math.ceil(result.rps * target.interval * MARGIN)
        if needed <= len(codes) or runs == 2:
            return PollRun(target.name, target.interval, len(codes), result, create_rate, runs)
        log(
            f"  {target.name}: {result.rps:,.0f} polls/s would poll each of {len(codes):,} "
            f"codes every {len(codes) / result.rps:.2f} s (< {target.interval:g} s): "
            f"making {needed - len(codes):,} more and running again"
        )
        more = asyncio.run(make_codes(server.port, target, client_id, needed - len(codes)))
        codes += more
