"""The approving device's kind (browser and OS), shown to the requester once scanned.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.add_column(sa.Column("approver_device", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.drop_column("approver_device")
