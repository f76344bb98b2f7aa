"""``python -m bench [--quick]``: qrlogin against its peers, side by side on this machine.

Measures approval → requester latency with N waiting requesters (SSE) against RFC 8628 polling
(node oidc-provider 9), what waiting costs the server, and throughput under one load generator
(wrk, 32 connections) for qrlogin, oidc-provider and an Authlib device-flow server, and RFC 8628
token polls answered per second by qrlogin and oidc-provider (``--only poll``). Prints a
table and writes docs/benchmarks.md with a latency plot beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pickle
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import load, pg, polls, procs, profile, report, waiting

ROOT = procs.ROOT
RESULTS = ROOT / "bench" / "results"
POLL_SIMULATED_MAX = 1000  # polling devices this process simulates for real


@dataclass
class Plan:
    quick: bool
    waiting_ns: tuple[int, ...]
    approvals: dict[int, int]
    rate: float
    cpu_window: float
    poll_window: float
    phase_limit: float
    wrk_seconds: float
    profile: bool
    pg: bool
    node: bool
    authlib: bool


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        ns: tuple[int, ...] = (1000,)
        approvals = {1000: 100}
        wrk_seconds = 3.0
    else:
        ns = (1000, 10000)
        approvals = {1000: 500, 10000: 1000}
        wrk_seconds = 20.0
    if args.n:
        ns = tuple(args.n)
        approvals = {n: min(n, approvals.get(n, 200)) for n in ns}
    return Plan(
        quick=args.quick,
        waiting_ns=ns,
        approvals=approvals,
        rate=args.rate,
        cpu_window=4.0 if args.quick else 10.0,
        poll_window=4.0 if args.quick else 10.0,
        phase_limit=8.0 if args.quick else 60.0,
        wrk_seconds=args.seconds or wrk_seconds,
        profile=args.profile if args.profile is not None else not args.quick,
        pg=not args.no_pg,
        node=not args.no_node,
        authlib=not args.no_authlib,
    )


@dataclass
class Run:
    plan: Plan
    command: str
    started: float = field(default_factory=time.time)
    load_before: str = ""
    load_after: str = ""
    waiting: list[waiting.WaitingResult] = field(default_factory=list)
    throughput: dict[str, load.WrkResult] = field(default_factory=dict)
    polls: list[polls.PollRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_quiet(limit: float) -> None:
    """Wait (at most ``limit`` s) until the 1-minute load average is below 1."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and float(loadavg().split()[0]) >= 1.0:
        log(f"machine busy (load {loadavg()}): waiting for it to calm down")
        time.sleep(15)


# -- measurements -----------------------------------------------------------------------------


def _note_waiting(run: Run, res: waiting.WaitingResult) -> None:
    before = len(run.notes)
    for note in res.notes:
        run.notes.append(f"{res.target}, N={res.n:,}: {note}")
    if res.errors:
        errs = ", ".join(f"{k} × {v}" for k, v in sorted(res.errors.items()))
        run.notes.append(f"{res.target}, N={res.n:,}: errors: {errs}")
    if res.target.startswith("qrlogin"):
        run.notes.append(
            f"{res.target}, N={res.n:,}: set-up created {res.create_rate:.0f} requests/s and "
            f"opened {res.open_rate:.0f} streams/s"
        )
    for line in run.notes[before:]:
        log("  " + line)


def measure_waiting(run: Run) -> None:
    plan = run.plan
    for n in plan.waiting_ns:
        approvals = plan.approvals[n]
        log(f"qrlogin: {n} requesters waiting on SSE, {approvals} approvals at {plan.rate}/s")
        # one connection per waiting requester: the default cap (QRLOGIN_MAX_CONNECTIONS,
        # 4,096 a process) would turn most of 10,000 away with 503 server_busy
        server = procs.start_qrlogin(RESULTS, settings={"MAX_CONNECTIONS": str(n + 1024)})
        spy_out = RESULTS / f"profile-qrlogin-approvals-{n}.txt"
        try:
            res = asyncio.run(
                waiting.qrlogin_waiting(
                    server,
                    n,
                    approvals,
                    plan.rate,
                    plan.cpu_window,
                    profile_to=spy_out if plan.profile else None,
                    phase_limit=plan.phase_limit,
                    drain=5.0 if plan.quick else 20.0,
                    warm_rounds=5 if plan.quick else 30,
                    settle=2.0 if plan.quick else 3.0,
                )
            )
        finally:
            server.stop()
        run.waiting.append(res)
        _note_waiting(run, res)
        log(
            f"  p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms, "
            f"{res.kb_per_waiting:.1f} KB/requester, CPU {res.cpu_percent:.1f} %"
        )
        if plan.profile and spy_out.exists():
            s = profile.summarise(spy_out)
            run.profiles.append(
                profile.as_markdown(
                    f"qrlogin while approving at {plan.rate:g}/s with {n} requesters waiting",
                    s,
                    spy_out,
                )
            )
        if not plan.node:
            continue
        if n > POLL_SIMULATED_MAX:
            # One Python client cannot poll for 10,000 devices at 2,000 requests/s on a 2-core
            # machine that also runs the server; the rate is arithmetic, and the latency of
            # 5 s polling does not depend on N while the server keeps up.
            res = waiting.WaitingResult(
                "oidc-provider (RFC 8628 polling, 5 s)", n, 0, plan.rate, simulated=False
            )
            res.poll_rps = n / waiting.POLL_INTERVAL
            run.waiting.append(res)
            run.notes.append(
                f"oidc-provider, N={n:,}: not simulated; its poll rate is N / 5 s and its "
                "latency is that of the 1,000-device run (uniform over the interval)"
            )
            continue
        log(f"oidc-provider: {n} devices polling every 5 s, {approvals} approvals")
        server = procs.start_oidc_provider(RESULTS)
        try:
            res = asyncio.run(
                waiting.polling_waiting(server, n, approvals, plan.rate, plan.poll_window)
            )
        finally:
            server.stop()
        run.waiting.append(res)
        _note_waiting(run, res)
        log(
            f"  p50 {res.percentile(50):.0f} ms, p99 {res.percentile(99):.0f} ms, "
            f"{res.poll_rps:.0f} polls/s, CPU {res.cpu_percent:.1f} %"
        )


def _qrlogin_token(server: procs.Server) -> str:
    return asyncio.run(waiting.sign_in_approver(server))


WARM_UP = True  # a 1 s wrk run before each measured one; --quick skips it


def _warm(url: str, script: str, env: dict[str, str]) -> None:
    if not WARM_UP:
        return
    load.wrk(url, script, 1, env)


def measure_create(run: Run) -> None:
    secs = run.plan.wrk_seconds
    log(f"creation throughput, wrk {load.CONNECTIONS} connections, {secs:g} s each")
    server = procs.start_qrlogin(RESULTS)
    try:
        url = f"http://127.0.0.1:{server.port}"
        _warm(url, "post.lua", load.QRLOGIN_CREATE)
        run.throughput["create:qrlogin"] = load.wrk(url, "post.lua", secs, load.QRLOGIN_CREATE)
        # the same server's no-op endpoint: what the web stack alone allows per second
        run.throughput["create:qrlogin-floor"] = load.wrk(
            url, "get.lua", secs, {"BENCH_PATH": "/healthz"}
        )
    finally:
        server.stop()
    if redis_supported() and _redis_up():
        # two workers on one SQLite file; Redis carries their events and counters
        server = procs.start_qrlogin(RESULTS, redis_url=REDIS_URL, workers=2)
        try:
            url = f"http://127.0.0.1:{server.port}"
            _warm(url, "post.lua", load.QRLOGIN_CREATE)
            run.throughput["create:qrlogin-2w"] = load.wrk(
                url, "post.lua", secs, load.QRLOGIN_CREATE
            )
        finally:
            server.stop()
    server = procs.start_bare_fastapi(RESULTS)
    try:
        url = f"http://127.0.0.1:{server.port}"
        run.throughput["create:bare-floor"] = load.wrk(
            url, "get.lua", secs, {"BENCH_PATH": "/healthz"}
        )
    finally:
        server.stop()
    if run.plan.node:
        server = procs.start_oidc_provider(RESULTS)
        try:
            url = f"http://127.0.0.1:{server.port}"
            _warm(url, "post.lua", load.OIDC_CREATE)
            run.throughput["create:oidc"] = load.wrk(url, "post.lua", secs, load.OIDC_CREATE)
        finally:
            server.stop()
    if run.plan.authlib:
        server = procs.start_authlib(RESULTS)
        try:
            url = f"http://127.0.0.1:{server.port}"
            _warm(url, "post.lua", load.AUTHLIB_CREATE)
            run.throughput["create:authlib"] = load.wrk(url, "post.lua", secs, load.AUTHLIB_CREATE)
        finally:
            server.stop()
    for key in (
        "create:qrlogin",
        "create:qrlogin-2w",
        "create:qrlogin-floor",
        "create:bare-floor",
        "create:oidc",
        "create:authlib",
    ):
        if key in run.throughput:
            r = run.throughput[key]
            log(f"  {key}: {r.ok_rps:.0f}/s ok, p99 {r.p99_ms:.1f} ms, non-2xx {r.non2xx}")


def _poll(run: Run, server: procs.Server, target: polls.Target, client_id: str) -> None:
    codes = RESULTS / f"device-codes-{target.name}.txt"
    secs = run.plan.wrk_seconds
    run.polls.append(polls.measure(server, target, client_id, secs, codes, warm=WARM_UP, log=log))


def measure_polls(run: Run) -> None:
    secs = run.plan.wrk_seconds
    log(f"RFC 8628 token polls, none approved, wrk {load.CONNECTIONS} connections, {secs:g} s each")
    server = procs.start_qrlogin(RESULTS, settings={"DEVICE_POLL_INTERVAL": "1"})
    try:
        client = procs.add_qrlogin_client(server, "bench TV", "--public")
        _poll(run, server, polls.QRLOGIN, client["client_id"])
    finally:
        server.stop()
    if run.plan.node:
        server = procs.start_oidc_provider(RESULTS)
        try:
            _poll(run, server, polls.OIDC, "bench-device")
        finally:
            server.stop()
    for p in run.polls:
        log(
            f"  {p.target}: {p.answered_ps:,.0f} authorization_pending/s over {p.codes:,} codes "
            f"(each every {p.period:.1f} s), slow_down {p.count('slow_down')}, "
            f"other {p.count('other')}, p99 {p.result.p99_ms:.1f} ms"
        )


def _signins(servers: list[procs.Server], secs: float) -> load.WrkResult:
    token = _qrlogin_token(servers[0])
    env = {"BENCH_TOKEN": token}
    per = load.CONNECTIONS // len(servers)
    for s in servers:
        if WARM_UP:
            load.wrk(
                f"http://127.0.0.1:{s.port}", "signin.lua", 1, env, connections=per, threads=per
            )
    procs_ = [
        load.wrk_start(
            f"http://127.0.0.1:{s.port}", "signin.lua", secs, env, connections=per, threads=per
        )
        for s in servers
    ]
    return load.combine([load.wrk_finish(p, secs + 30) for p in procs_])


def redis_supported() -> bool:
    """Whether this qrlogin wires ``QRLOGIN_REDIS_URL`` into its event bus."""
    import importlib.util
    import inspect

    import qrlogin.services

    if importlib.util.find_spec("qrlogin.events.redis") is None:
        return False
    return "RedisBus" in inspect.getsource(qrlogin.services)


REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def measure_signins(run: Run) -> None:
    secs = run.plan.wrk_seconds
    log("complete sign-ins (create → scan → approve → exchange), SQLite, 1 instance")
    server = procs.start_qrlogin(RESULTS)
    try:
        run.throughput["signin:sqlite:1"] = _signins([server], secs)
    finally:
        server.stop()
    r = run.throughput["signin:sqlite:1"]
    log(f"  {r.completed_ps:.0f} sign-ins/s, failed {r.failed}")
    if redis_supported() and _redis_up():
        log("complete sign-ins, SQLite, 1 instance of 2 workers (+ Redis for their events)")
        server = procs.start_qrlogin(RESULTS, redis_url=REDIS_URL, workers=2)
        try:
            run.throughput["signin:sqlite-2w:1"] = _signins([server], secs)
        finally:
            server.stop()
        r = run.throughput["signin:sqlite-2w:1"]
        log(f"  {r.completed_ps:.0f} sign-ins/s, failed {r.failed}")
    if not run.plan.pg:
        run.skipped.append("PostgreSQL runs (--no-pg)")
        return
    if not pg.is_available():
        run.skipped.append(f"PostgreSQL runs: nothing answers at {pg.ADMIN_URL}")
        return
    redis = redis_supported()
    redis_url = "redis://127.0.0.1:6379/0" if redis else None
    if not redis:
        run.notes.append(
            "qrlogin does not wire QRLOGIN_REDIS_URL into its event bus yet: the PostgreSQL "
            "runs use PostgreSQL alone, and each instance has its own in-process event bus."
        )
    for count in (1, 2):
        log(f"complete sign-ins, PostgreSQL{' + Redis' if redis else ''}, {count} instance(s)")
        with pg.fresh_database() as url:
            servers: list[procs.Server] = []
            prefix = url.rsplit("/", 1)[1]  # the database's name: one run's channels
            try:
                for _ in range(count):
                    servers.append(
                        procs.start_qrlogin(
                            RESULTS, database_url=url, redis_url=redis_url, redis_prefix=prefix
                        )
                    )
                key = f"signin:pg{'+redis' if redis else ''}:{count}"
                run.throughput[key] = _signins(servers, secs)
            finally:
                for s in servers:
                    s.stop()
        r = run.throughput[key]
        log(f"  {r.completed_ps:.0f} sign-ins/s, failed {r.failed}")


def profile_throughput(run: Run) -> None:
    """Profile qrlogin under the loads whose target it missed."""
    secs = min(15.0, run.plan.wrk_seconds)
    checks: list[tuple[str, str, dict[str, str] | None, str, bool]] = []
    oidc = run.throughput.get("create:oidc")
    mine = run.throughput.get("create:qrlogin")
    if mine and (oidc is None or mine.ok_rps < oidc.ok_rps):
        checks.append(("create", "post.lua", load.QRLOGIN_CREATE, "creating login requests", False))
    signin = run.throughput.get("signin:sqlite:1")
    if signin and signin.completed_ps < report.TARGET_SIGNINS:
        checks.append(("signin", "signin.lua", None, "complete sign-ins", False))
    if any(k.startswith("signin:pg") for k in run.throughput):
        checks.append(("signin-pg", "signin.lua", None, "complete sign-ins", True))
    for name, script, env, title, on_pg in checks:
        log(f"profiling qrlogin under {title}{' on PostgreSQL' if on_pg else ''} with py-spy")
        with contextlib.ExitStack() as stack:
            kw: dict[str, str | None] = {}
            if on_pg:
                url = stack.enter_context(pg.fresh_database())
                kw = {"database_url": url}
                if redis_supported():
                    kw["redis_url"] = "redis://127.0.0.1:6379/0"
                    kw["redis_prefix"] = url.rsplit("/", 1)[1]
            server = stack.enter_context(procs.running(procs.start_qrlogin(RESULTS, **kw)))
            base = f"http://127.0.0.1:{server.port}"
            env = env or {"BENCH_TOKEN": _qrlogin_token(server)}
            conns = load.CONNECTIONS
            threads = conns if script == "signin.lua" else 2
            load.wrk(base, script, 1, env, connections=conns, threads=threads)
            out = RESULTS / f"profile-qrlogin-{name}.txt"
            spy = profile.record_start(server.pid, secs - 2, out, wall=True)
            result = load.wrk(base, script, secs, env, connections=conns, threads=threads)
            if spy is not None:
                spy.wait(60)
        if out.exists():
            rate = result.completed_ps if script == "signin.lua" else result.ok_rps
            store = "PostgreSQL" if on_pg else "SQLite"
            run.profiles.append(
                profile.as_markdown(
                    f"qrlogin under wrk, {title} ({store}, {rate:.0f}/s while profiled)",
                    profile.summarise(out),
                    out,
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="under 2 minutes, N=1,000 only")
    parser.add_argument("--n", type=int, action="append", help="waiting requesters (repeat)")
    parser.add_argument("--rate", type=float, default=50.0, help="approvals per second")
    parser.add_argument("--seconds", type=float, help="length of each wrk run")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-node", action="store_true")
    parser.add_argument("--no-authlib", action="store_true")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for the machine's load to drop",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--only", choices=["waiting", "create", "signin", "poll"], action="append")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only write the docs again from the last run's saved results",
    )
    args = parser.parse_args(argv)
    saved = RESULTS / "last-run.pickle"
    if args.render:
        with open(saved, "rb") as f:
            run, elapsed = pickle.load(f)
        print(report.table(run))
        report.write(run, Path(args.out), elapsed)
        return 0
    plan = make_plan(args)
    global WARM_UP
    WARM_UP = not plan.quick
    procs.raise_nofile()
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    run = Run(plan, command.strip())
    if plan.node and not procs.node_available():
        run.skipped.append("oidc-provider: node/npm not found")
        plan.node = False
    if not load.wrk_available():
        print("bench: wrk is needed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    run.load_before = loadavg()
    t0 = time.monotonic()
    only = set(args.only or ["waiting", "create", "signin", "poll"])
    if "waiting" in only:
        measure_waiting(run)
    if "create" in only:
        measure_create(run)
    if "signin" in only:
        measure_signins(run)
    if "poll" in only:
        measure_polls(run)
    if plan.profile:
        profile_throughput(run)
    run.load_after = loadavg()
    run.sources = list(procs.QRLOGIN_SOURCES)
    elapsed = time.monotonic() - t0
    with open(saved, "wb") as f:
        pickle.dump((run, elapsed), f)
    text = report.table(run)
    print(text)
    out = Path(args.out)
    report.write(run, out, elapsed)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    log(f"done in {elapsed:.0f} s; wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
