"""endpoint options: filter, transform, ordering, collapse, ignore_origins; a delivery's body

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 15:00:00

An endpoint may filter the messages it receives, transform their body (a preset or a
template), keep one contact's messages in order, collapse bursts and ignore messages of some
origins. A transformed delivery keeps the body rendered at its first attempt, so every retry
sends the same bytes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("filter", sa.Text(), nullable=True))
        batch.add_column(sa.Column("transform", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ordering", sa.String(16), nullable=True))
        batch.add_column(sa.Column("collapse", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ignore_origins", sa.Text(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("body")
    with op.batch_alter_table("endpoints") as batch:
        for column in ("ignore_origins", "collapse", "ordering", "transform", "filter"):
            batch.drop_column(column)
