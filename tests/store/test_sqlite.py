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
    text,
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


# -- group commit ------------------------------------------------------------------------------


async def test_a_rounds_writers_share_one_commit_and_a_failure_undoes_only_its_own(
    engine: SqliteEngine,
) -> None:
    """Writers of one event-loop round run in one transaction, each in a savepoint: the one
    that fails leaves nothing, the others are committed, and each returns only once the
    commit is done (a read after it sees its row)."""
    batches: list[object] = []

    async def write(i: int) -> int:
        async with engine.begin() as conn:
            batches.append(engine._batch)
            await conn.execute(insert(items), {"id": i, "name": f"row {i}"})
            if i == 5:
                raise RuntimeError("this caller fails after its insert")
        async with engine.connect() as conn:  # acknowledged: committed
            assert await conn.scalar(select(items.c.name).where(items.c.id == i)) == f"row {i}"
        return i

    results = await asyncio.gather(*(write(i) for i in range(10)), return_exceptions=True)

    assert [r for r in results if isinstance(r, BaseException)] == [results[5]]
    assert len({id(b) for b in batches}) == 1  # one transaction for the round
    async with engine.connect() as conn:
        ids = (await conn.execute(select(items.c.id).order_by(items.c.id))).scalars().all()
    assert ids == [0, 1, 2, 3, 4, 6, 7, 8, 9]


async def test_a_failing_commit_reaches_every_caller_of_its_round(engine: SqliteEngine) -> None:
    """A deferred constraint fails at COMMIT: every caller of that round is told, none of
    their rows is kept, and the next round works."""

    async def write(i: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(items), {"id": i, "name": "doomed"})

    raw = engine._writer_conn().connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    raw.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER "
        "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )

    async def orphan() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO child VALUES (1, 99)"))

    results = await asyncio.gather(write(1), orphan(), write(2), return_exceptions=True)

    assert all(isinstance(r, Exception) for r in results), results
    assert await count(engine) == 0
    await write(3)
    assert await count(engine) == 1


def test_a_killed_batch_loses_only_writes_nobody_was_told_about(tmp_path: Path) -> None:
    """A child writes from 40 tasks at once and prints each row's id once its write returned
    (acknowledged); it is killed with SIGKILL mid-stream. Every acknowledged row is in the
    file afterwards."""
    db = tmp_path / "batch-kill.db"
    child = textwrap.dedent(
        f"""
        import asyncio, sys
        from sqlalchemy import insert
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sqlite import items, meta
        from qrlogin.store.sqlite import SqliteEngine

        async def main():
            eng = SqliteEngine("sqlite:///{db}")
            async with eng.begin() as conn:
                await conn.run_sync(meta.create_all)

            async def writer(w):
                for i in range(10_000):
                    row = w * 10_000 + i
                    async with eng.begin() as conn:
                        await conn.execute(insert(items), {{"id": row, "name": "x"}})
                    print(row, flush=True)

            await asyncio.gather(*(writer(w) for w in range(40)))

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    acknowledged: list[int] = []
    try:
        assert proc.stdout is not None
        while len(acknowledged) < 3000:
            line = proc.stdout.readline()
            assert line, "the child stopped before it was killed"
            acknowledged.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    async def stored() -> set[int]:
        eng = SqliteEngine(f"sqlite:///{db}")
        try:
            async with eng.connect() as conn:
                return set((await conn.execute(select(items.c.id))).scalars().all())
        finally:
            await eng.dispose()

    rows = asyncio.run(stored())
    assert set(acknowledged) <= rows


def test_two_processes_of_concurrent_writers_lose_no_update_and_never_see_locked(
    tmp_path: Path,
) -> None:
    """500 read-modify-write transactions, 250 at once from each of two processes, on one
    file: none fails with "database is locked" (a writer waits for the other process by
    awaiting), and the counter ends at exactly 500."""
    db = tmp_path / "two.db"

    async def create() -> None:
        eng = SqliteEngine(f"sqlite:///{db}")
        async with eng.begin() as conn:
            await conn.run_sync(meta.create_all)
            await conn.execute(insert(counter), {"id": 1, "n": 0})
        await eng.dispose()

    asyncio.run(create())
    child = textwrap.dedent(
        f"""
        import asyncio, sys
        from sqlalchemy import select, update
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sqlite import counter
        from qrlogin.store.base import SqlBase
        from qrlogin.store.sqlite import SqliteEngine

        async def main():
            base = SqlBase(SqliteEngine("sqlite:///{db}"))
            sys.stdin.readline()  # both start together

            async def bump():
                async with base._write() as conn:
                    n = await conn.scalar(select(counter.c.n).where(counter.c.id == 1))
                    await conn.execute(update(counter).where(counter.c.id == 1).values(n=n + 1))

            await asyncio.gather(*(bump() for _ in range(250)))
            print("done", flush=True)

        asyncio.run(main())
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for (out, err), proc in zip(outcomes, procs, strict=True):
        assert proc.returncode == 0 and out.strip() == "done", err
        assert "locked" not in err

    async def total() -> int:
        eng = SqliteEngine(f"sqlite:///{db}")
        try:
            async with eng.connect() as conn:
                return int(await conn.scalar(select(counter.c.n)) or 0)
        finally:
            await eng.dispose()

    assert asyncio.run(total()) == 500


stamped = Table(
    "stamped",
    meta,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("tag", String, default="plain"),
)


async def test_plain_rows_are_inserted_straight_and_read_back_as_sqlalchemy_wrote_them(
    engine: SqliteEngine,
) -> None:
    async with engine.begin() as conn:
        conn.insert(items, {"id": 1, "name": "one"})
        conn.insert(items, [{"id": 2, "name": "two"}, {"id": 3, "name": None}])
        conn.insert(items, [])
    async with engine.connect() as conn:
        rows = (await conn.execute(select(items).order_by(items.c.id))).all()
    assert [tuple(r) for r in rows] == [(1, "one"), (2, "two"), (3, None)]


async def test_a_straight_insert_breaking_a_constraint_raises_sqlalchemys_error_for_its_caller(
    engine: SqliteEngine,
) -> None:
    from sqlalchemy.exc import IntegrityError

    async def duplicate() -> None:
        async with engine.begin() as conn:
            conn.insert(items, {"id": 10, "name": "second"})
            conn.insert(items, {"id": 10, "name": "again"})

    async def other() -> None:
        async with engine.begin() as conn:
            conn.insert(items, {"id": 11, "name": "kept"})

    results = await asyncio.gather(duplicate(), other(), return_exceptions=True)
    assert isinstance(results[0], IntegrityError)  # what the store's callers catch
    assert results[1] is None
    async with engine.connect() as conn:
        names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all()
    assert names == ["kept"]


async def test_columns_that_need_sqlalchemy_go_through_it(engine: SqliteEngine) -> None:
    from datetime import datetime

    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
        # a DateTime needs conversion, and "tag" has a Python-side default to fill in
        conn.insert(stamped, {"id": 1, "at": datetime(2026, 12, 3, 16, 0)})
    async with engine.connect() as conn:
        row = (await conn.execute(select(stamped))).one()
    assert row.at == datetime(2026, 12, 3, 16, 0) and row.tag == "plain"


_BUMP = update(counter).where(counter.c.id == bindparam("cid")).values(n=counter.c.n + 1)


async def test_a_prebuilt_update_returning_runs_straight_in_its_callers_savepoint(
    engine: SqliteEngine,
) -> None:
    bump = _BUMP.returning(counter.c.n)

    async def once(fail: bool) -> int | None:
        async with engine.begin() as conn:
            row = conn.first(bump, {"cid": 1})
            if fail:
                raise RuntimeError("undo my bump only")
        return None if row is None else int(row["n"])

    results = await asyncio.gather(once(False), once(True), once(False), return_exceptions=True)
    assert results[0] == 1 and isinstance(results[1], RuntimeError) and results[2] == 2
    async with engine.connect() as conn:
        assert await conn.scalar(select(counter.c.n)) == 2  # the failed bump is undone
        async with engine.begin() as writer:
            assert writer.first(bump, {"cid": 99}) is None  # no such row


def test_an_update_without_returning_is_refused_by_the_straight_path(
    engine: SqliteEngine,
) -> None:
    with pytest.raises(TypeError, match="RETURNING"):
        engine.first_row(_BUMP, {"cid": 1})  # type: ignore[arg-type]


HOLD_TURN = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("holding", flush=True)
    sys.stdin.readline()  # until told to let go
    """
)


def _hold_turn(path: str) -> subprocess.Popen[str]:
    """Another process holding the writer turn of ``path`` until a line on its stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_TURN, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def _turn_is_free(path: str) -> bool:
    """Whether another process can take the writer turn of ``path`` right now."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    print('taken')\nelse:\n    print('free')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, path], capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip() == "free"


def _let_go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.wait(timeout=10)


async def test_a_writer_waits_for_another_processs_turn_without_stopping_the_loop(
    engine: SqliteEngine,
) -> None:
    """While another process holds the writer turn, a write waits (it neither fails nor
    commits), the event loop keeps running meanwhile, and the write lands once the turn is
    given back."""
    assert engine.turn is not None
    holder = _hold_turn(engine.turn.path)
    try:

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(insert(items), {"id": 1, "name": "after the turn"})

        task = asyncio.create_task(write())
        ticks = 0
        for _ in range(20):  # the loop goes on: other coroutines run while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not task.done() and await count(engine) == 0
    finally:
        _let_go(holder)
    await asyncio.wait_for(task, 10)
    assert await count(engine) == 1


async def test_a_writer_cancelled_while_waiting_for_its_turn_does_not_keep_it(
    engine: SqliteEngine,
) -> None:
    """A write cancelled while it waits for the turn leaves nothing written, and the turn
    its thread takes afterwards is handed straight back: another process can take it, and
    the next write of this engine goes through."""
    assert engine.turn is not None
    holder = _hold_turn(engine.turn.path)

    async def write(item: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(items), {"id": item, "name": "x"})

    task = asyncio.create_task(write(1))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _let_go(holder)
    await asyncio.sleep(0.2)  # the waiting thread wakes, takes the turn and gives it back
    assert _turn_is_free(engine.turn.path)
    await asyncio.wait_for(write(2), 10)
    async with engine.connect() as conn:
        assert (await conn.execute(select(items.c.id))).scalars().all() == [2]


async def test_writers_that_come_while_another_process_writes_share_one_commit(
    engine: SqliteEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process has its turn, the writers that come meanwhile all wait with the
    round's first writer and then go into one transaction together: one COMMIT for all 50
    (they used to queue on a lock, be woken one per round, and each take a turn and a commit
    of its own), with every write there afterwards."""
    assert engine.turn is not None
    commits = 0
    commit = SqliteEngine._commit

    def counting(self: SqliteEngine, batch: object) -> None:
        nonlocal commits
        if self._batch is batch:  # not a deferral
            commits += 1
        commit(self, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteEngine, "_commit", counting)
    holder = _hold_turn(engine.turn.path)

    async def write(item: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(items), {"id": item, "name": f"w{item}"})

    try:
        tasks = [asyncio.create_task(write(i)) for i in range(50)]
        await asyncio.sleep(0.1)
        assert not any(t.done() for t in tasks)
    finally:
        _let_go(holder)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert commits == 1
    assert await count(engine) == 50
