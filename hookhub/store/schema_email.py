"""The email tables: templates, campaigns, the email queue and log, its timeline, Idempotency-Key
answers and tracking hits, on the schema's one ``metadata``.

``hookhub.store.schema`` imports and re-exports every table here, so importing the schema
registers them (Alembic and the migrations test compare the whole metadata). Conventions are
the schema's (see its docstring). This module must never hold queries, and never a table that
is not about email: a new column or index here needs its migration too.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from hookhub.store.schema_base import BigId, UTCDateTime, metadata

email_templates = Table(
    "email_templates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=True),  # NULL: made from the HTML
    Column("sender", Text, nullable=True),  # JSON {email, name}; NULL: HOOKHUB_EMAIL_FROM
    Column("reply_to", String(320), nullable=True),
    Column("tags", Text, nullable=False, default="[]"),
    # Bumped by every change: compiled templates are cached by (id, version) in each process.
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    # draft, scheduled, sending, paused, sent, cancelled
    Column("status", String(16), nullable=False),
    Column("template_id", BigInteger, nullable=True),
    # The content: given inline, or the template's, copied when sending starts (a template
    # edited during a send changes nothing already under way).
    Column("subject", Text, nullable=True),
    Column("html", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("sender", Text, nullable=True),
    Column("reply_to", String(320), nullable=True),
    Column("params", Text, nullable=False, default="{}"),
    Column("tags", Text, nullable=False, default="[]"),
    Column("list_ids", Text, nullable=False, default="[]"),
    Column("exclude_list_ids", Text, nullable=False, default="[]"),
    Column("track_opens", Boolean, nullable=False, default=True),
    Column("track_clicks", Boolean, nullable=False, default=True),
    Column("scheduled_at", Double, nullable=True),  # epoch seconds sending starts
    # The recipient snapshot is taken in batches by contact id; the last id done, so that a
    # crash resumes where it stopped (emails has one row per campaign and contact at most).
    Column("snapshot_cursor", BigInteger, nullable=True),
    Column("snapshot_done", Boolean, nullable=False, default=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Double, nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

emails = Table(
    "emails",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(255), nullable=False, unique=True),  # RFC 5322, without <>
    # transactional, campaign, automation or test: decides unsubscribe rules and headers
    Column("kind", String(16), nullable=False),
    Column("contact_id", BigInteger, ForeignKey("contacts.id", ondelete="SET NULL")),
    Column("to_email", String(320), nullable=False),
    Column("to_name", String(255), nullable=True),
    Column("sender", Text, nullable=False),  # JSON {email, name}
    Column("reply_to", String(320), nullable=True),
    Column("subject", Text, nullable=True),  # as rendered (NULL until rendered)
    Column("template_id", BigInteger, nullable=True),  # no key: an email outlives its template
    Column("campaign_id", BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE")),
    Column("automation_id", BigInteger, nullable=True),
    Column("tags", Text, nullable=False, default="[]"),
    Column("params", Text, nullable=False, default="{}"),
    Column("content", Text, nullable=True),  # JSON {subject, html, text} given inline
    Column("headers", Text, nullable=False, default="{}"),
    Column("track_opens", Boolean, nullable=False, default=True),
    Column("track_clicks", Boolean, nullable=False, default=True),
    # queued, sent, deferred, delivered, bounced, failed, skipped
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("raw", LargeBinary, nullable=True),  # the exact bytes sent, once rendered
    Column("links", Text, nullable=True),  # JSON list: the links a click token may lead to
    Column("attempt_count", Integer, nullable=False, default=0),
    # When the next attempt is due; while leased, when the lease expires.
    Column("next_attempt_at", Double, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("opened_at", Double, nullable=True),  # first open and click: `first`, unique counts
    Column("clicked_at", Double, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("updated_at", Double, nullable=False),
    Index(
        "ix_emails_due",
        "next_attempt_at",
        sqlite_where=text("status IN ('queued', 'deferred')"),
        postgresql_where=text("status IN ('queued', 'deferred')"),
    ),
    Index(None, "contact_id", "id"),
    Index(None, "to_email", "id"),
    # Each contact once per campaign, whatever crashes: the snapshot inserts against this.
    Index(None, "campaign_id", "contact_id", unique=True),
    Index(None, "campaign_id", "status"),
    sqlite_autoincrement=True,
)

email_events = Table(
    "email_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("email_id", BigInteger, ForeignKey("emails.id", ondelete="CASCADE"), nullable=False),
    # queued, skipped, sent, deferred, delivered, bounced, failed, opened, clicked, complained,
    # unsubscribed
    Column("type", String(32), nullable=False),
    Column("at", Double, nullable=False),
    Column("detail", Text, nullable=True),  # JSON
    Index(None, "email_id", "id"),
    sqlite_autoincrement=True,
)

# POST /emails with an Idempotency-Key: the first answer, kept 24 h, given again.
email_idempotency = Table(
    "email_idempotency",
    metadata,
    Column("scope", String(64), primary_key=True),  # the API key's id
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Index(None, "created_at"),
)

# Tracking hits (opens, clicks, unsubscribes) as received: answered once written here in group
# commits, turned into email events by a loop that deletes what it has applied.
tracking_hits = Table(
    "tracking_hits",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(1), nullable=False),  # o (open), c (click), u (unsubscribe)
    Column("email_id", BigInteger, nullable=False),
    Column("link", Integer, nullable=True),
    Column("received_at", Double, nullable=False),
    Column("user_agent", String(512), nullable=True),
    Column("ip", String(64), nullable=True),
    sqlite_autoincrement=True,
)

# -- campaigns (migration 0010) ---------------------------------------------------------------

# The newest contact id when sending started: contacts created later are not recipients.
campaigns.append_column(Column("snapshot_limit", BigInteger, nullable=True))
# Live campaign stats count these without reading the campaign's rows.
for _column in ("sent_at", "opened_at", "clicked_at"):
    Index(
        f"ix_emails_campaign_{_column}",
        emails.c.campaign_id,
        sqlite_where=text(f"{_column} IS NOT NULL"),
        postgresql_where=text(f"{_column} IS NOT NULL"),
    )
# Reports are rare beside opens and clicks: a campaign's are found without scanning the rest.
Index(
    "ix_email_events_reports",
    email_events.c.type,
    email_events.c.email_id,
    sqlite_where=text("type IN ('bounced', 'complained', 'unsubscribed')"),
    postgresql_where=text("type IN ('bounced', 'complained', 'unsubscribed')"),
)
