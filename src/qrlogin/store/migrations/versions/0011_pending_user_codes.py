"""User codes unique among pending requests, by a partial unique index instead of a read
before each creation (issue 15): the insert of a taken code fails and the creator moves on
to the next derived code. The plain index on the codes goes; the new one serves /link.

Two pending rows could share a code before (the read only looked at requests within their
lifetime, and a pending row past it waits for housekeeping to be marked expired): all but
the newest of each such group lose their code, which could not be used any more anyway.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.execute(
        "UPDATE login_requests SET user_code_hmac = NULL "
        "WHERE status = 'pending' AND user_code_hmac IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM login_requests AS newer WHERE newer.status = 'pending' "
        "AND newer.user_code_hmac = login_requests.user_code_hmac "
        "AND (newer.expires_at > login_requests.expires_at "
        "OR (newer.expires_at = login_requests.expires_at AND newer.id > login_requests.id)))"
    )
    op.drop_index("ix_login_requests_user_code_hmac", table_name="login_requests")
    op.create_index(
        "ux_login_requests_pending_user_code",
        "login_requests",
        ["user_code_hmac"],
        unique=True,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ux_login_requests_pending_user_code", table_name="login_requests")
    op.create_index("ix_login_requests_user_code_hmac", "login_requests", ["user_code_hmac"])
