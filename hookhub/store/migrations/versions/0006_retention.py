"""retention of the request log, messages, deliveries and attempts; test sends marked

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:00:00

Retention itself needs no schema (it deletes by the time-ordered keys the tables already have);
``messages.is_test`` marks the messages of "send test", which recover must never backfill to
other endpoints. A plain ADD COLUMN on both backends (no table rebuild).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("messages", "is_test")
