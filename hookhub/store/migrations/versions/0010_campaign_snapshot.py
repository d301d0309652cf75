"""campaigns: the snapshot's upper contact id, and the indexes behind live campaign stats

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00

``campaigns.snapshot_limit`` is the newest contact id when sending started (contacts created
later are not recipients). Partial indexes count a campaign's sent, opened and clicked emails
without reading its rows, and find the rare report events (bounces, complaints, unsubscribes)
without scanning the opens.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPORTS = "type IN ('bounced', 'complained', 'unsubscribed')"


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("snapshot_limit", sa.BigInteger(), nullable=True))
    for column in ("sent_at", "opened_at", "clicked_at"):
        op.create_index(
            f"ix_emails_campaign_{column}",
            "emails",
            ["campaign_id"],
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )
    op.create_index(
        "ix_email_events_reports",
        "email_events",
        ["type", "email_id"],
        sqlite_where=sa.text(_REPORTS),
        postgresql_where=sa.text(_REPORTS),
    )


def downgrade() -> None:
    op.drop_index("ix_email_events_reports", table_name="email_events")
    for column in ("sent_at", "opened_at", "clicked_at"):
        op.drop_index(f"ix_emails_campaign_{column}", table_name="emails")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("snapshot_limit")
