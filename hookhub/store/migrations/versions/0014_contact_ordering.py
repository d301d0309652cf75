"""per-contact ordering and collapsed bursts: a delivery's contact and merged body

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 17:00:00

An endpoint with ``ordering: "contact"`` or ``collapse`` keeps, on each delivery of a message
about a contact, that contact's id: the key its order and its bursts are kept by. Such a
delivery is ``waiting`` while an earlier one of the same contact is unfinished. A collapsed
burst's delivery keeps the merged message it sends (``payload``). The index holds only the
unfinished deliveries that have a contact, so endpoints without these options never touch it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNFINISHED = "contact_id IS NOT NULL AND status IN ('pending', 'failed', 'waiting')"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("contact_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))
        batch.create_index(
            "ix_deliveries_contact",
            ["endpoint_id", "contact_id", "id"],
            unique=False,
            sqlite_where=sa.text(_UNFINISHED),
            postgresql_where=sa.text(_UNFINISHED),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index(
            "ix_deliveries_contact",
            sqlite_where=sa.text(_UNFINISHED),
            postgresql_where=sa.text(_UNFINISHED),
        )
        batch.drop_column("payload")
        batch.drop_column("contact_id")
