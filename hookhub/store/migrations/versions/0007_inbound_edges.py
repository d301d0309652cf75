"""inbound receive hardening: requests not logged are counted per webhook, minute and reason

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:00:00

Requests refused by an inbound webhook's rate limit, and refusals past the number logged per
minute, are no longer written to the request log one row each; ``inbound_unlogged`` counts them
per webhook, minute and reason instead (rows of its own, not a column of ``inbound_webhooks``:
on PostgreSQL an UPDATE of the webhook row would wait for the processor's lock on it, on the
receive path's commit). A new table on both backends.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_unlogged",
        sa.Column(
            "webhook_id",
            sa.BigInteger(),
            sa.ForeignKey("inbound_webhooks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("minute", sa.BigInteger(), primary_key=True),
        sa.Column("reason", sa.String(16), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbound_unlogged")
