"""The database schema, as SQLAlchemy Core tables shared by SQLite and PostgreSQL.

Conventions that keep both backends identical and the hot paths cheap:

* JSON documents (attributes, properties, message bodies) are stored as text produced by
  ``hookhub.core.jsoncodec``; message bodies are the exact bytes that are signed and sent.
* User-visible moments are ``UTCDateTime`` (timezone-aware in, timezone-aware out).
* Integer ids are never reused, on SQLite too (AUTOINCREMENT): a receiver that saw
  contact 42 deleted must never see another contact 42.
* Secrets (endpoint secrets and credentials, inbound secrets) are ``SealedText``: encrypted
  at rest with the engine's key (``hookhub.store.secrets``).
* Scheduling columns (``next_attempt_at``, ``leased_until``) are epoch seconds as floats: they are
  compared on every claim and need no conversion.

Alembic migrations in ``migrations/versions`` create exactly these tables; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator

from hookhub.store.secrets import SealedText

naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=naming_convention)

# SQLite only aliases the rowid for INTEGER PRIMARY KEY; BIGINT would not autoincrement.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)  # stored as UTC by process_bind_param
        return moment.astimezone(UTC)


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    # admin, write or read (hookhub.keys.Scope); keys from before scopes were all admin.
    Column("scope", String(16), nullable=False, server_default=text("'admin'")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    sqlite_autoincrement=True,
)

attribute_definitions = Table(
    "attribute_definitions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("ext_id", String(255), nullable=True, unique=True),
    Column("attributes", Text, nullable=False, default="{}"),
    Column("unsubscribed", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # JSON {"reason": "hard_bounce" | "complaint" | "manual", "at": ...} while the contact may
    # receive no email; NULL otherwise.
    Column("email_blocked", Text, nullable=True),
    sqlite_autoincrement=True,
)

lists = Table(
    "lists",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

list_members = Table(
    "list_members",
    metadata,
    Column("list_id", BigInteger, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "contact_id",
        BigInteger,
        ForeignKey("contacts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("added_at", UTCDateTime, nullable=False),
    Index(None, "contact_id"),
)

custom_events = Table(
    "custom_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_name", String(255), nullable=False),
    Column(
        "contact_id",
        BigInteger,
        ForeignKey("contacts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_properties", Text, nullable=False, default="{}"),
    Column("event_date", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "contact_id", "id"),
    Index(None, "event_name", "id"),
    sqlite_autoincrement=True,
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Sent by "send test" to one endpoint: recover never backfills it to the others.
    Column("is_test", Boolean, nullable=False, server_default=false()),
    Index(None, "type", "id"),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("event_types", Text, nullable=False),  # JSON list of catalog names or "*"
    Column("headers", Text, nullable=False, default="{}"),  # JSON object
    # Sealed JSON {type, token | username, password}
    Column("auth", SealedText("endpoints.auth"), nullable=True),
    Column("secret", SealedText("endpoints.secret", sqlite_length=128), nullable=False),
    # Unused since previous_secrets (kept: SQLite cannot drop them without rebuilding the table).
    Column("previous_secret", String(128), nullable=True),
    Column("previous_secret_until", Double, nullable=True),
    # Sealed JSON [[secret, valid until (epoch seconds)], ...]: secrets replaced by a rotation.
    Column("previous_secrets", SealedText("endpoints.previous_secrets"), nullable=True),
    Column("batched", Boolean, nullable=False, default=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_reason", Text, nullable=True),
    Column("rate_limit", Double, nullable=True),  # messages per second, per worker
    Column("max_concurrency", Integer, nullable=True),
    Column("failing_since", Double, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(40), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column(
        "endpoint_id", BigInteger, ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False
    ),
    Column("status", String(16), nullable=False),  # pending, succeeded, failed, exhausted
    Column("attempt_count", Integer, nullable=False, default=0),
    # When the next attempt is due; while leased, when the lease expires.
    Column("next_attempt_at", Double, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status IN ('pending', 'failed')"),
        postgresql_where=text("status IN ('pending', 'failed')"),
    ),
    # A lane that has room claims its own endpoint's due work: an index range, not a scan.
    Index(
        "ix_deliveries_endpoint_due",
        "endpoint_id",
        "next_attempt_at",
        sqlite_where=text("status IN ('pending', 'failed')"),
        postgresql_where=text("status IN ('pending', 'failed')"),
    ),
    Index(None, "endpoint_id", "id"),
    Index(None, "message_id"),
    sqlite_autoincrement=True,
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id", BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False
    ),
    Column("attempted_at", Double, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("duration_ms", Double, nullable=False),
    Column("error", String(64), nullable=True),
    Column("error_detail", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    Index(None, "delivery_id", "id"),
    sqlite_autoincrement=True,
)

inbound_webhooks = Table(
    "inbound_webhooks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("source", String(32), nullable=False),
    Column("token", String(64), nullable=False, unique=True),
    Column("secret", SealedText("inbound_webhooks.secret"), nullable=True),
    Column("options", Text, nullable=False, default="{}"),  # JSON: the provider's options
    Column("rules", Text, nullable=False, default="[]"),  # JSON: the rules as saved
    Column("rate_limit", Double, nullable=True),  # requests per second, per process
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

inbound_requests = Table(
    "inbound_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "webhook_id",
        BigInteger,
        ForeignKey("inbound_webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("received_at", Double, nullable=False),
    # received (acknowledged, rules not yet run), processed, failed, rejected, duplicate
    Column("status", String(16), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("headers", Text, nullable=False),  # JSON list of [name, value], secrets redacted
    Column("body", LargeBinary, nullable=True),  # the exact bytes (up to the size limit)
    Column("event_type", String(255), nullable=True),
    Column("dedupe_key", String(255), nullable=True),
    Column("error", Text, nullable=True),
    Column("error_expression", Text, nullable=True),
    Column("actions", Text, nullable=True),  # JSON: what the rules did
    Column("processed_at", Double, nullable=True),
    Index(None, "webhook_id", "id"),
    Index(
        "ix_inbound_requests_pending",
        "webhook_id",
        "id",
        sqlite_where=text("status = 'received'"),
        postgresql_where=text("status = 'received'"),
    ),
    sqlite_autoincrement=True,
)

inbound_dedupe = Table(
    "inbound_dedupe",
    metadata,
    Column(
        "webhook_id",
        BigInteger,
        ForeignKey("inbound_webhooks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("dedupe_key", String(255), primary_key=True),
    Column("request_id", BigInteger, nullable=False),
    Column("received_at", Double, nullable=False),
    Index(None, "received_at"),
)

# One row per kind of cached configuration (api_keys, endpoints, inbound_webhooks), bumped in
# the transaction that changes it: other processes poll it (or hear NOTIFY) to drop caches.
config_versions = Table(
    "config_versions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# Requests not logged one row each (refused by the rate limit: "rate_limited"; refused past the
# number logged a minute: "refused"), counted per minute (epoch seconds // 60) instead.
inbound_unlogged = Table(
    "inbound_unlogged",
    metadata,
    Column(
        "webhook_id",
        BigInteger,
        ForeignKey("inbound_webhooks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("minute", BigInteger, primary_key=True),
    Column("reason", String(16), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# -- email ----------------------------------------------------------------------------------

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

__all__ = [
    "UTCDateTime",
    "api_keys",
    "attribute_definitions",
    "campaigns",
    "config_versions",
    "contacts",
    "custom_events",
    "deliveries",
    "delivery_attempts",
    "email_events",
    "email_idempotency",
    "email_templates",
    "emails",
    "endpoints",
    "inbound_dedupe",
    "inbound_requests",
    "inbound_unlogged",
    "inbound_webhooks",
    "list_members",
    "lists",
    "messages",
    "metadata",
    "tracking_hits",
]
