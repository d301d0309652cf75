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

The email tables (templates, campaigns, emails and their timeline, tracking hits) are defined in
``schema_email.py`` and re-exported here, the shared types and ``metadata`` in ``schema_base.py``:
importing this module registers every table.

Alembic migrations in ``migrations/versions`` create exactly these tables; a test compares them.
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
    false,
    text,
)

from hookhub.store.schema_automation import (
    automation_enrollments,
    automation_step_log,
    automations,
)
from hookhub.store.schema_base import BigId, UTCDateTime, metadata
from hookhub.store.schema_dashboard import dashboard_sessions, dashboard_users
from hookhub.store.schema_email import (
    campaigns,
    email_events,
    email_idempotency,
    email_templates,
    emails,
    tracking_hits,
)
from hookhub.store.secrets import SealedText

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
    # Set on the hidden endpoint an automation's webhook step posts to (one per automation and
    # step id): never listed by /webhooks, never subscribed to anything, deleted with its
    # automation by the automations service.
    Column("automation_id", BigInteger, nullable=True),
    Column("automation_step", String(64), nullable=True),
    # Endpoint options (docs/DESIGN.md, "Endpoint options"): a JMESPath filter over the
    # message; the transform ({"preset": ...} or {"template": ...}) as JSON; ordering
    # ("contact" or NULL); collapse ({"event_types", "window_ms"}) and ignore_origins
    # ([{"type", "id"?}]) as JSON.
    Column("filter", Text, nullable=True),
    Column("transform", Text, nullable=True),
    Column("ordering", String(16), nullable=True),
    Column("collapse", Text, nullable=True),
    Column("ignore_origins", Text, nullable=True),
    sqlite_autoincrement=True,
)

_CONTACT_UNFINISHED = "contact_id IS NOT NULL AND status IN ('pending', 'failed', 'waiting')"

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(40), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column(
        "endpoint_id", BigInteger, ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False
    ),
    # pending, succeeded, failed, exhausted; cancelled (erasure); waiting (behind an earlier
    # delivery about the same contact); collapsed (merged into an earlier one of its burst)
    Column("status", String(16), nullable=False),
    Column("attempt_count", Integer, nullable=False, default=0),
    # When the next attempt is due; while leased, when the lease expires.
    Column("next_attempt_at", Double, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    # The body a transformed endpoint gets, rendered at the first attempt and sent the same on
    # every retry; NULL: the message's payload.
    Column("body", Text, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    # Endpoints with ordering or collapse: the contact the message is about (the key its order
    # and bursts are kept by); NULL otherwise, and for messages about no contact.
    Column("contact_id", BigInteger, nullable=True),
    # A collapsed burst: the merged message this delivery sends instead of its message's
    # payload (docs/DESIGN.md, "Ordering and collapse"); NULL: the message's payload.
    Column("payload", Text, nullable=True),
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
    # Ordered and collapsing endpoints: a contact's unfinished deliveries, oldest first.
    Index(
        "ix_deliveries_contact",
        "endpoint_id",
        "contact_id",
        "id",
        sqlite_where=text(_CONTACT_UNFINISHED),
        postgresql_where=text(_CONTACT_UNFINISHED),
    ),
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

__all__ = [
    "UTCDateTime",
    "api_keys",
    "attribute_definitions",
    "automation_enrollments",
    "automation_step_log",
    "automations",
    "campaigns",
    "config_versions",
    "contacts",
    "custom_events",
    "dashboard_sessions",
    "dashboard_users",
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

# The dashboard's overview reads these by time window (store/dashboard_stats.py).
Index("ix_delivery_attempts_attempted_at", delivery_attempts.c.attempted_at)
Index("ix_inbound_requests_received_at", inbound_requests.c.received_at)
Index("ix_emails_created_at", emails.c.created_at)
