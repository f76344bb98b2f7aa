"""The Alembic migrations (store/migrations): they build the schema ``tables.py`` declares,
and 0011 keeps the data it finds."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text

from qrlogin.store.migrate import MIGRATIONS
from qrlogin.store.tables import metadata


def _migrate(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_the_migrations_build_the_schema_the_tables_declare(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    _migrate(engine, "head")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        indexes = {
            row[1]: row[2]
            for row in conn.execute(text("PRAGMA index_list('login_requests')")).all()
        }
    assert indexes["ux_login_requests_pending_user_code"] == 1  # unique
    assert "ix_login_requests_user_code_hmac" not in indexes


def test_0011_leaves_one_holder_of_each_pending_code_and_other_codes_alone(
    tmp_path: Path,
) -> None:
    """Pending rows sharing a code before 0011 (one past its lifetime, not swept yet): the
    newest keeps the code, the others lose it; rows no longer pending keep theirs."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    _migrate(engine, "0010")
    rows = [  # id, status, expires_at, code
        ("lr_old", "pending", 100.0, "c1"),
        ("lr_new", "pending", 200.0, "c1"),
        ("lr_done", "consumed", 300.0, "c1"),
        ("lr_solo", "pending", 150.0, "c2"),
    ]
    with engine.begin() as conn:
        for n, (rid, status, expires, code) in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO login_requests (id, secret_hash, status, version, created_at,"
                    " expires_at, handle_seq, handle_hash, device_name, user_agent, ip,"
                    " user_code_hmac) VALUES (:id, 's', :status, 1, 0, :exp, 0, :h, 'd', 'ua',"
                    " '192.0.2.1', :code)"
                ),
                {"id": rid, "status": status, "exp": expires, "h": f"h{n}", "code": code},
            )
    _migrate(engine, "head")
    with engine.connect() as conn:
        codes = dict(conn.execute(text("SELECT id, user_code_hmac FROM login_requests")).all())
    assert codes == {"lr_old": None, "lr_new": "c1", "lr_done": "c1", "lr_solo": "c2"}


def test_the_user_code_lookup_is_served_by_the_partial_index(tmp_path: Path) -> None:
    """/link's read names the pending status as a literal, so SQLite sees that the partial
    unique index answers it (a bound status could be any, and the table would be scanned)."""
    from sqlalchemy.dialects import sqlite

    from qrlogin.store.requests import _BY_USER_CODE

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    _migrate(engine, "head")
    sql = str(_BY_USER_CODE.compile(dialect=sqlite.dialect()))
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("code", 1.0)).all()
    assert "USING INDEX ux_login_requests_pending_user_code" in " ".join(str(r[3]) for r in plan)
