"""A phone that scanned a QR before signing in holds the request meanwhile: the hold
token's SHA-256 (unique, so the token finds its request) and when the hold began.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.add_column(sa.Column("hold_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("held_at", sa.Float, nullable=True))
        batch.create_unique_constraint("uq_login_requests_hold_hash", ["hold_hash"])


def downgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.drop_constraint("uq_login_requests_hold_hash", type_="unique")
        batch.drop_column("held_at")
        batch.drop_column("hold_hash")
