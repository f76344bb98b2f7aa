"""The SQLite engine that runs statements on the event loop thread (store/sqlite.py), on a
real database file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)

from qrlogin.store.base import SqlBase
from qrlogin.store.sqlite import SqliteEngine

meta = MetaData()
items = Table("items", meta, Column("id", Integer, primary_key=True), Column("name", String))
counter = Table("counter", meta, Column("id", Integer, primary_key=True), Column("n", Integer))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[SqliteEngine]:
    eng = SqliteEngine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with eng.begin() as conn:
        await conn.run_sync(meta.create_all)
        await conn.execute(insert(counter), {"id": 1, "n": 0})
    yield eng
    await eng.dispose()


async def count(eng: SqliteEngine) -> int:
    async with eng.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(items)) or 0)


async def test_a_failed_write_transaction_leaves_nothing(engine: SqliteEngine) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await conn.execute(insert(items), {"id": 1, "name": "half"})
            raise RuntimeError("fails after the first statement")
    assert await count(engine) == 0
    # and the writer is usable again at once
    async with engine.begin() as conn:
        await conn.execute(insert(items), {"id": 1, "name": "whole"})
    assert await count(engine) == 1


async def test_reads_see_committed_rows_only(engine: SqliteEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(items), {"id": 1, "name": "pending"})
        # the reader is its own connection: it does not see the open transaction
        assert await count(engine) == 0
    assert await count(engine) == 1


async def test_reads_and_writes_use_two_connections_on_a_file(engine: SqliteEngine) -> None:
    async with engine.connect() as reader, engine.begin() as writer:
        assert reader._conn is not writer._conn


async def test_in_memory_database_reads_what_was_written() -> None:
    eng = SqliteEngine("sqlite+aiosqlite:///:memory:")
    try:
        async with eng.begin() as conn:
            await conn.run_sync(meta.create_all)
            await conn.execute(insert(items), {"id": 7, "name": "seven"})
        async with eng.connect() as conn:
            name = await conn.scalar(select(items.c.name).where(items.c.id == 7))
        assert name == "seven"
        # a write after a read on the shared connection still commits
        async with eng.begin() as conn:
            await conn.execute(insert(items), {"id": 8, "name": "eight"})
        assert await count(eng) == 2
    finally:
        await eng.dispose()


async def test_concurrent_writers_through_the_store_lose_no_update(engine: SqliteEngine) -> None:
    """Read-modify-write in one transaction from 200 tasks at once: queued on the store's lock,
    each sees the previous one's commit, so none is lost."""
    base = SqlBase(engine)

    async def bump() -> None:
        async with base._write() as conn:
            n = await conn.scalar(select(counter.c.n).where(counter.c.id == 1))
            await asyncio.sleep(0)  # a suspension inside the transaction must be safe too
            await conn.execute(update(counter).where(counter.c.id == 1).values(n=n + 1))

    await asyncio.gather(*(bump() for _ in range(200)))
    async with engine.connect() as conn:
        assert await conn.scalar(select(counter.c.n)) == 200


async def test_a_cancelled_writer_leaves_the_database_consistent(engine: SqliteEngine) -> None:
    base = SqlBase(engine)
    holder_in = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with base._write() as conn:
            await conn.execute(insert(items), {"id": 1, "name": "first"})
            holder_in.set()
            await release.wait()

    async def queued() -> None:
        async with base._write() as conn:
            await conn.execute(insert(items), {"id": 2, "name": "never"})

    first = asyncio.ensure_future(holder())
    await holder_in.wait()
    second = asyncio.ensure_future(queued())
    await asyncio.sleep(0.01)
    second.cancel()  # cancelled while waiting for the lock: it must write nothing
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    async with engine.connect() as conn:
        ids = [r[0] for r in (await conn.execute(select(items.c.id))).all()]
    assert ids == [1]


def test_committed_rows_survive_the_process_being_killed(tmp_path: Path) -> None:
    """Each commit is durable once it returns: a child commits 300 rows one transaction at a
    time, says how many, and is killed with SIGKILL; all of them are in the file."""
    db = tmp_path / "kill.db"
    child = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from sqlalchemy import insert
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sqlite import items, meta
        from qrlogin.store.sqlite import SqliteEngine

        async def main():
            eng = SqliteEngine("sqlite:///{db}")
            async with eng.begin() as conn:
                await conn.run_sync(meta.create_all)
            for i in range(300):
                async with eng.begin() as conn:
                    await conn.execute(insert(items), {{"id": i, "name": "x"}})
            print("committed", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "committed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    async def check() -> int:
        eng = SqliteEngine(f"sqlite:///{db}")
        try:
            return await count(eng)
        finally:
            await eng.dispose()

    assert asyncio.run(check()) == 300


async def test_first_row_reads_a_prebuilt_statement_like_sqlalchemy_does(
    engine: SqliteEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(items), [{"id": i, "name": f"n{i % 3}"} for i in range(10)])
    stmt = (
        select(items)
        .where(items.c.name == bindparam("name"), items.c.id > bindparam("above"))
        .where(items.c.id != 7)  # a literal: bound once, at compile time
        .order_by(items.c.id)
    )
    for name, above in (("n1", 0), ("n1", 4), ("n2", 5), ("n0", 9), ("zz", 0)):
        fast = engine.first_row(stmt, {"name": name, "above": above})
        async with engine.connect() as conn:
            slow = (await conn.execute(stmt, {"name": name, "above": above})).mappings().first()
        assert fast == (dict(slow) if slow is not None else None)
    # n1 rows are 1, 4, 7: above 4 the literal skips 7, so nothing is left
    assert engine.first_row(stmt, {"name": "n1", "above": 0}) == {"id": 1, "name": "n1"}
    assert engine.first_row(stmt, {"name": "n1", "above": 4}) is None


async def test_first_row_sees_only_committed_rows(engine: SqliteEngine) -> None:
    stmt = select(items).where(items.c.id == bindparam("id"))
    async with engine.begin() as conn:
        await conn.execute(insert(items), {"id": 1, "name": "pending"})
        assert engine.first_row(stmt, {"id": 1}) is None
    assert engine.first_row(stmt, {"id": 1}) == {"id": 1, "name": "pending"}


def test_first_row_refuses_statements_it_cannot_run_faithfully(engine: SqliteEngine) -> None:
    with pytest.raises(TypeError):
        engine.first_row(select(items).where(items.c.id.in_([1, 2])), {})
    stamped = Table("stamped", MetaData(), Column("id", Integer), Column("at", DateTime))
    with pytest.raises(TypeError):
        engine.first_row(select(stamped), {})
