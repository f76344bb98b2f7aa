"""The OpenID Provider: registered clients, signing keys, authorization codes and consents;
which client a session (its tokens) and a login request (a device grant) belong to, and the
scope they carry; login requests found by their requester secret's hash (the device code).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("post_logout_redirect_uris", sa.Text, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("first_party", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_jwk", sa.Text, nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("retired_at", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
    )
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("browser_session_id", sa.String(40), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("nonce", sa.String(300), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("auth_time", sa.Float, nullable=False),
        sa.Column("amr", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
        sa.Column("session_id", sa.String(40), nullable=True),
    )
    op.create_index("ix_oauth_codes_expires_at", "oauth_codes", ["expires_at"])
    op.create_table(
        "oauth_consents",
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("client_id", sa.String(40), primary_key=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("granted_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("client_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("scope", sa.String(200), nullable=True))
    with op.batch_alter_table("login_requests") as batch:
        batch.add_column(sa.Column("client_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("scope", sa.String(200), nullable=True))
    op.create_index("ix_login_requests_secret_hash", "login_requests", ["secret_hash"])


def downgrade() -> None:
    op.drop_index("ix_login_requests_secret_hash", table_name="login_requests")
    with op.batch_alter_table("login_requests") as batch:
        batch.drop_column("scope")
        batch.drop_column("client_id")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("scope")
        batch.drop_column("client_id")
    op.drop_table("oauth_consents")
    op.drop_index("ix_oauth_codes_expires_at", table_name="oauth_codes")
    op.drop_table("oauth_codes")
    op.drop_table("signing_keys")
    op.drop_table("oauth_clients")
