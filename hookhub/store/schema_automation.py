"""The automation tables: definitions, enrollments (one contact's run through one automation)
and each enrollment's step log, on the schema's one ``metadata``.

``hookhub.store.schema`` imports and re-exports every table here. Conventions are the schema's
(see its docstring): times a worker compares (due, lease) are epoch seconds in ``Double``
columns; JSON is text written by ``hookhub.core.jsoncodec``. This module must never hold
queries, and never a table that is not about automations: a new column or index here needs its
migration too.

An enrollment is *active* while it has steps to run; ``due_at`` is when it must be looked at
next (now for a step to run, the end of a wait, a ``wait_for`` timeout) and, while a worker
holds it, when that worker's lease expires (the email queue's leasing, ``store/emails.py``).
Finished enrollments (``completed``, ``exited``, ``failed``) keep no due time.
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
    String,
    Table,
    Text,
    text,
)

from hookhub.store.schema_base import BigId, UTCDateTime, metadata

automations = Table(
    "automations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("trigger", Text, nullable=False),  # JSON {"type": ..., ...}
    Column("filter", Text, nullable=True),  # JMESPath over {contact, trigger}
    Column("reentry", String(16), nullable=False),  # never, after_exit, always
    Column("exit_on_unsubscribe", Boolean, nullable=False, default=True),
    Column("steps", Text, nullable=False),  # JSON step tree, every step with its id
    # Bumped by every change: compiled programs are cached by (id, version) in each process.
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

automation_enrollments = Table(
    "automation_enrollments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "automation_id",
        BigInteger,
        ForeignKey("automations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # No foreign key: deleting a contact ends its enrollments (reason contact_deleted) in the
    # same transaction, and the ended rows stay for the automation's counts until retention.
    Column("contact_id", BigInteger, nullable=False),
    # active, completed, exited, failed
    Column("status", String(16), nullable=False),
    # The step it is on (about to run, or waiting in); NULL once finished.
    Column("step_id", String(64), nullable=True),
    # When the current step began (a wait, wait_until or wait_for is then waiting); NULL: the
    # step has not begun and runs when due.
    Column("step_started_at", Double, nullable=True),
    # wait_for: the event name waited for, and whether it came before the timeout.
    Column("waiting_for", String(255), nullable=True),
    Column("matched", Boolean, nullable=False, default=False),
    Column("due_at", Double, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("trigger", Text, nullable=False, default="{}"),  # JSON: what started it
    # Dedupes entries that must happen once (a date trigger's yearly occurrence, ...).
    Column("entry_key", String(64), nullable=True),
    Column("exit_reason", String(32), nullable=True),
    Column("error", Text, nullable=True),  # JSON {step_id, message, expression?}
    Column("entered_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("finished_at", Double, nullable=True),
    sqlite_autoincrement=True,
)

Index(
    "ix_automation_enrollments_due",
    automation_enrollments.c.due_at,
    sqlite_where=text("status = 'active'"),
    postgresql_where=text("status = 'active'"),
)
Index(
    "ix_automation_enrollments_contact",
    automation_enrollments.c.contact_id,
    automation_enrollments.c.automation_id,
)
Index(
    "ix_automation_enrollments_automation",
    automation_enrollments.c.automation_id,
    automation_enrollments.c.status,
    automation_enrollments.c.step_id,
)
Index(
    "ix_automation_enrollments_finished",
    automation_enrollments.c.finished_at,
    sqlite_where=text("finished_at IS NOT NULL"),
    postgresql_where=text("finished_at IS NOT NULL"),
)
Index(
    "uq_automation_enrollments_entry_key",
    automation_enrollments.c.automation_id,
    automation_enrollments.c.contact_id,
    automation_enrollments.c.entry_key,
    unique=True,
    sqlite_where=text("entry_key IS NOT NULL"),
    postgresql_where=text("entry_key IS NOT NULL"),
)

automation_step_log = Table(
    "automation_step_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "enrollment_id",
        BigInteger,
        ForeignKey("automation_enrollments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("automation_id", BigInteger, nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    # completed, skipped, failed; branches record which way they went in detail.
    Column("outcome", String(16), nullable=False),
    Column("at", Double, nullable=False),
    Column("detail", Text, nullable=True),  # JSON: email id, branch, reason, error, ...
    sqlite_autoincrement=True,
)

Index("ix_automation_step_log_enrollment", automation_step_log.c.enrollment_id)
Index(
    "ix_automation_step_log_counts",
    automation_step_log.c.automation_id,
    automation_step_log.c.step_id,
    automation_step_log.c.outcome,
)
