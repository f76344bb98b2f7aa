"""``python -m bench.store_floor``: what one durable write and one read cost on this machine,
through plain ``sqlite3`` and through qrlogin's store, in the same SQLite file (WAL,
``synchronous=NORMAL``, as ``qrlogin serve`` runs it). One process, no HTTP, a bounded number
of rounds; prints microseconds per operation.

The raw ``INSERT`` + ``COMMIT`` is the floor any durable creation pays on one process;
docs/benchmarks.md compares it with the time per request that oidc-provider's creation rate
leaves after the web stack's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

from qrlogin.store.engine import make_engine
from qrlogin.store.migrate import upgrade
from qrlogin.store.records import LoginRequest
from qrlogin.store.sql import SqlStore


def _request() -> LoginRequest:
    return LoginRequest(
        id=f"lr_{secrets.token_urlsafe(16)}",
        secret_hash=secrets.token_hex(32),
        status="pending",
        version=1,
        created_at=time.time(),
        expires_at=time.time() + 300,
        handle_seq=0,
        handle_hash=secrets.token_hex(32),
        device_name="bench",
        user_agent="bench",
        ip="127.0.0.1",
        user_code_hmac=secrets.token_hex(32),
        user_code_seq=0,
    )


def _per_op(start: float, n: int) -> float:
    return (time.perf_counter() - start) / n * 1e6


async def measure(rounds: int, data_dir: Path) -> dict[str, float]:
    engine = make_engine(f"sqlite:///{data_dir / 'qrlogin.db'}")
    await upgrade(engine)
    store = SqlStore(engine)
    out: dict[str, float] = {}
    try:
        recs = [_request() for _ in range(rounds)]
        t = time.perf_counter()
        for rec in recs:
            await store.insert_login_request(rec, None)
        out["store: insert a login request (one write transaction)"] = _per_op(t, rounds)
        t = time.perf_counter()
        for rec in recs:
            await store.get_login_request(rec.id)
        out["store: read a login request by id"] = _per_op(t, rounds)

        raw = sqlite3.connect(data_dir / "qrlogin.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        rows = [_request().to_row() for _ in range(rounds)]
        cols = list(rows[0])
        sql = (
            f"INSERT INTO login_requests ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        )
        t = time.perf_counter()
        for row in rows:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(sql, tuple(row.values()))
            raw.execute("COMMIT")
        out["sqlite3: BEGIN IMMEDIATE, INSERT, COMMIT"] = _per_op(t, rounds)
        t = time.perf_counter()
        for row in rows:
            raw.execute("SELECT * FROM login_requests WHERE id = ?", (row["id"],)).fetchone()
        out["sqlite3: SELECT by id"] = _per_op(t, rounds)
        raw.close()
    finally:
        await engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_floor", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3000, help="operations of each kind")
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, 100_000))  # bounded
    with tempfile.TemporaryDirectory(prefix="qrlogin-floor-") as tmp:
        results = asyncio.run(measure(rounds, Path(tmp)))
    for what, us in results.items():
        print(f"{us:8.1f} µs  {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
