"""Handles rotate without a write: each is the request's fixed tag plus an HMAC of the
rotation slot, so the columns that tracked the current and previous handle go.
``handle_hash`` now holds the tag's SHA-256 and ``handle_seq`` the slot a claim froze.
Requests still waiting when this runs cannot be scanned any more (they expire within
minutes; their requesters start again).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.drop_index("ix_login_requests_prev_handle_hash")
        batch.drop_column("prev_handle_until")
        batch.drop_column("prev_handle_hash")
        batch.drop_column("handle_expires_at")


def downgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.add_column(
            sa.Column("handle_expires_at", sa.Float, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("prev_handle_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prev_handle_until", sa.Float, nullable=True))
        batch.create_index("ix_login_requests_prev_handle_hash", ["prev_handle_hash"])
