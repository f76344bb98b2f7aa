"""Wrong email codes get a streak and a lock of their own on ``users`` (anyone can type them;
wrong user codes come from the account's own sessions), and ``known_browsers`` remembers the
browsers that completed an email sign-in for an address (DESIGN.md requirement 12).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("email_code_streak", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("email_locked_at", sa.Float, nullable=True))
    op.create_table(
        "known_browsers",
        sa.Column("email", sa.String(320), primary_key=True),
        sa.Column("browser_hash", sa.String(64), primary_key=True),
        sa.Column("signed_in_at", sa.Float, nullable=False),
    )
    op.create_index("ix_known_browsers_signed_in_at", "known_browsers", ["signed_in_at"])


def downgrade() -> None:
    op.drop_table("known_browsers")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_locked_at")
        batch.drop_column("email_code_streak")
