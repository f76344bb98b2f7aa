"""Find the login requests an approver session claimed, to end them when it is revoked;
drop ``login_requests.session_id`` (the session an exchange starts belongs to whoever owns
sessions, the built-in ones or a host app's: the built-in ``sessions.login_request_id`` links
them).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_requests") as batch:
        batch.drop_column("session_id")
    op.create_index(
        "ix_login_requests_approver_session_id", "login_requests", ["approver_session_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_login_requests_approver_session_id", table_name="login_requests")
    with op.batch_alter_table("login_requests") as batch:
        batch.add_column(sa.Column("session_id", sa.String(40), nullable=True))
