"""indexes on the time columns the dashboard's overview reads by window

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 17:15:00

The overview counts delivery attempts, inbound requests and emails over the last hour, day or
week: each is an index range on its time column instead of a scan of the whole table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_delivery_attempts_attempted_at", "delivery_attempts", ["attempted_at"]
    )
    op.create_index("ix_inbound_requests_received_at", "inbound_requests", ["received_at"])
    op.create_index("ix_emails_created_at", "emails", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_emails_created_at", "emails")
    op.drop_index("ix_inbound_requests_received_at", "inbound_requests")
    op.drop_index("ix_delivery_attempts_attempted_at", "delivery_attempts")
