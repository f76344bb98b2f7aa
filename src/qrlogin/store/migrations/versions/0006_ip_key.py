"""``login_requests.ip_key``: the address, or the IPv6 network, that the cap on pending
requests per IP counts (issue 11 item 9), indexed in place of ``ip``. Rows already there
keep their address as their key.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.add_column(sa.Column("ip_key", sa.String(64), nullable=False, server_default=""))
        batch.drop_index("ix_login_requests_ip")
        batch.create_index("ix_login_requests_ip_key", ["ip_key"])
    op.execute("UPDATE login_requests SET ip_key = ip")


def downgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.drop_index("ix_login_requests_ip_key")
        batch.create_index("ix_login_requests_ip", ["ip"])
        batch.drop_column("ip_key")
