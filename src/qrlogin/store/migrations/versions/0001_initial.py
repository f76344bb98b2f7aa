"""Users, login requests, sessions, email logins.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id(name: str, **kw: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(40), **kw)  # type: ignore[arg-type]


def _hash(name: str, **kw: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(64), **kw)  # type: ignore[arg-type]


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Float, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        _id("id", primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        _time("created_at"),
        sa.Column("failed_code_streak", sa.Integer, nullable=False, server_default="0"),
        _time("locked_at", nullable=True),
    )
    op.create_table(
        "login_requests",
        _id("id", primary_key=True),
        _hash("secret_hash", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        _time("created_at"),
        _time("expires_at"),
        sa.Column("handle_seq", sa.Integer, nullable=False),
        _hash("handle_hash", nullable=False, unique=True),
        _time("handle_expires_at"),
        _hash("prev_handle_hash", nullable=True),
        _time("prev_handle_until", nullable=True),
        sa.Column("device_name", sa.String(100), nullable=False),
        sa.Column("user_agent", sa.String(500), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        _hash("user_code_hmac", nullable=True),
        sa.Column("user_code_seq", sa.Integer, nullable=False, server_default="0"),
        _hash("confirm_code_hmac", nullable=True),
        sa.Column("confirm_attempts", sa.Integer, nullable=False, server_default="0"),
        _id("approver_user_id", nullable=True),
        _id("approver_session_id", nullable=True),
        sa.Column("linked_by", sa.String(16), nullable=True),
        _time("scanned_at", nullable=True),
        _time("approved_at", nullable=True),
        _time("finished_at", nullable=True),
        _id("session_id", nullable=True),
    )
    op.create_index("ix_login_requests_prev_handle_hash", "login_requests", ["prev_handle_hash"])
    op.create_index("ix_login_requests_user_code_hmac", "login_requests", ["user_code_hmac"])
    op.create_index("ix_login_requests_expires_at", "login_requests", ["expires_at"])
    op.create_index("ix_login_requests_ip", "login_requests", ["ip"])
    op.create_table(
        "sessions",
        _id("id", primary_key=True),
        _hash("token_hash", nullable=False, unique=True),
        _id("user_id", nullable=False),
        sa.Column("device_name", sa.String(100), nullable=False),
        sa.Column("user_agent", sa.String(500), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        _time("created_at"),
        _time("last_seen_at"),
        _time("expires_at"),
        _time("revoked_at", nullable=True),
        sa.Column("linked_by", sa.String(16), nullable=False),
        _id("linked_from_session_id", nullable=True),
        _id("login_request_id", nullable=True, unique=True),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "email_logins",
        _id("id", primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        _hash("code_hmac", nullable=False),
        _hash("link_hash", nullable=False, unique=True),
        _hash("browser_hash", nullable=True),
        sa.Column("user_agent", sa.String(500), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _time("created_at"),
        _time("expires_at"),
        _time("consumed_at", nullable=True),
        _time("confirmed_elsewhere_at", nullable=True),
        sa.Column("next", sa.Text, nullable=True),
    )
    op.create_index("ix_email_logins_email", "email_logins", ["email"])


def downgrade() -> None:
    for table in ("email_logins", "sessions", "login_requests", "users"):
        op.drop_table(table)
