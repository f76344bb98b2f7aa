"""Second factors: passkeys (WebAuthn), TOTP, recovery codes, single-use factor challenges
and mfa tokens; how each session was made (``amr``) and when it last proved a second factor;
per-account second-factor failures and the requirement flag.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("mfa_required", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("factor_failures", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("factor_window_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("factor_locked_until", sa.Float, nullable=True))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("amr", sa.String(60), nullable=True))
        batch.add_column(sa.Column("verified_at", sa.Float, nullable=True))
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("sign_count", sa.Integer, nullable=False),
        sa.Column("transports", sa.String(200), nullable=False, server_default=""),
        sa.Column("aaguid", sa.String(40), nullable=False, server_default=""),
        sa.Column("backup_eligible", sa.Integer, nullable=False, server_default="0"),
        sa.Column("backup_state", sa.Integer, nullable=False, server_default="0"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_used_at", sa.Float, nullable=True),
    )
    op.create_index("ix_passkeys_user_id", "passkeys", ["user_id"])
    op.create_table(
        "totp_factors",
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("enabled_at", sa.Float, nullable=True),
        sa.Column("last_step", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("code_hmac", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "factor_challenges",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=True),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("browser_hash", sa.String(64), nullable=True),
        sa.Column("challenge", sa.String(200), nullable=True),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_index("ix_factor_challenges_expires_at", "factor_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_table("factor_challenges")
    op.drop_table("recovery_codes")
    op.drop_table("totp_factors")
    op.drop_table("passkeys")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("verified_at")
        batch.drop_column("amr")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("factor_locked_until")
        batch.drop_column("factor_window_at")
        batch.drop_column("factor_failures")
        batch.drop_column("mfa_required")
