"""email: templates, campaigns, emails and their events, idempotency keys, tracking hits

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:30:00

New tables on both backends, and ``contacts.email_blocked`` (NULL, or why and since when the
contact gets no email).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.add_column("contacts", sa.Column("email_blocked", sa.Text(), nullable=True))
    op.create_table(
        "email_templates",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.String(320), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "campaigns",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.String(320), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("list_ids", sa.Text(), nullable=False),
        sa.Column("exclude_list_ids", sa.Text(), nullable=False),
        sa.Column("track_opens", sa.Boolean(), nullable=False),
        sa.Column("track_clicks", sa.Boolean(), nullable=False),
        sa.Column("scheduled_at", sa.Double(), nullable=True),
        sa.Column("snapshot_cursor", sa.BigInteger(), nullable=True),
        sa.Column("snapshot_done", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("started_at", _UTC, nullable=True),
        sa.Column("finished_at", _UTC, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "emails",
        _id(),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "contact_id",
            sa.BigInteger(),
            sa.ForeignKey("contacts.id", ondelete="SET NULL", name="fk_emails_contact_id_contacts"),
            nullable=True,
        ),
        sa.Column("to_email", sa.String(320), nullable=False),
        sa.Column("to_name", sa.String(255), nullable=True),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.String(320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("template_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "campaign_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "campaigns.id", ondelete="CASCADE", name="fk_emails_campaign_id_campaigns"
            ),
            nullable=True,
        ),
        sa.Column("automation_id", sa.BigInteger(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("track_opens", sa.Boolean(), nullable=False),
        sa.Column("track_clicks", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("links", sa.Text(), nullable=True),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("opened_at", sa.Double(), nullable=True),
        sa.Column("clicked_at", sa.Double(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("sent_at", _UTC, nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("message_id", name="uq_emails_message_id"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_emails_due",
        "emails",
        ["next_attempt_at"],
        sqlite_where=sa.text("status IN ('queued', 'deferred')"),
        postgresql_where=sa.text("status IN ('queued', 'deferred')"),
    )
    op.create_index("ix_emails_contact_id_id", "emails", ["contact_id", "id"])
    op.create_index("ix_emails_to_email_id", "emails", ["to_email", "id"])
    op.create_index(
        "ix_emails_campaign_id_contact_id", "emails", ["campaign_id", "contact_id"], unique=True
    )
    op.create_index("ix_emails_campaign_id_status", "emails", ["campaign_id", "status"])
    op.create_table(
        "email_events",
        _id(),
        sa.Column(
            "email_id",
            sa.BigInteger(),
            sa.ForeignKey("emails.id", ondelete="CASCADE", name="fk_email_events_email_id_emails"),
            nullable=False,
        ),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_email_events_email_id_id", "email_events", ["email_id", "id"])
    op.create_table(
        "email_idempotency",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_email_idempotency_created_at", "email_idempotency", ["created_at"])
    op.create_table(
        "tracking_hits",
        _id(),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("email_id", sa.BigInteger(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("tracking_hits")
    op.drop_table("email_idempotency")
    op.drop_table("email_events")
    op.drop_table("emails")
    op.drop_table("campaigns")
    op.drop_table("email_templates")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("email_blocked")
