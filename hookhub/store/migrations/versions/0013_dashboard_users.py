"""dashboard users and their sign-in sessions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 17:00:00

People sign in to the dashboard with an email and a password (an Argon2 hash is stored, never
the password). A session row holds a SHA-256 of the cookie's token (never the token) and the
session's CSRF token; signing out deletes the row, so a copied cookie stops working at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_users",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_dashboard_users"),
        sa.UniqueConstraint("email", name="uq_dashboard_users_email"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "dashboard_users.id",
                ondelete="CASCADE",
                name="fk_dashboard_sessions_user_id_dashboard_users",
            ),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("last_seen_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dashboard_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_dashboard_sessions_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dashboard_sessions_user_id", "dashboard_sessions", ["user_id"])
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
    op.drop_table("dashboard_users")
