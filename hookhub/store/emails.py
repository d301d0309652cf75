"""The email queue: every query that queues, claims, records or releases emails, and appends to
their timelines.

An email is *due* when its status is ``queued`` or ``deferred`` and ``next_attempt_at`` has
passed. Claiming leases it exactly as deliveries are leased (``store/deliveries.py``):
``lease_owner`` names the worker and ``next_attempt_at`` becomes the lease's expiry, so the
email of a worker that died falls due again; only the lease owner's outcome is recorded. On
PostgreSQL claims use ``FOR UPDATE SKIP LOCKED``; on SQLite the claim is one statement in a
``BEGIN IMMEDIATE`` transaction.

Email events (the timeline) are rows of ``email_events``; the JSON columns are text written by
``hookhub.core.jsoncodec``. The queue's SQL lives here and nowhere else; reading emails back is
``email_reads.py``'s and the row mapping ``email_rows.py``'s. This module must never commit
(the caller's transaction decides) nor wake a worker before its emails are committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from hookhub.core import jsoncodec
from hookhub.records.email import Email
from hookhub.store.email_rows import NewEmail, in_chunks, row_to_email
from hookhub.store.notify import CommitWakers
from hookhub.store.schema_base import UTCDateTime
from hookhub.store.schema_email import email_events, emails

EMAIL_CHANNEL = "hookhub_email"
"""NOTIFY channel: a transaction queued email (PostgreSQL); email workers LISTEN on it."""

_WAKERS = CommitWakers(EMAIL_CHANNEL)
on_queued = _WAKERS.on
"""``on_queued(engine, wake)``: call ``wake()`` after every commit on ``engine`` that queued
email; answers the function that stops it (:meth:`CommitWakers.on`)."""


_DUE = text("emails.status IN ('queued', 'deferred')")  # literal: the partial index's condition


@dataclass(frozen=True, slots=True)
class ClaimedEmail:
    email: Email
    raw: bytes | None
    """The bytes of an earlier attempt (the same bytes are sent again), or None: render."""


@dataclass(frozen=True, slots=True)
class EmailUpdate:
    """What one attempt (or a render failure, or a skip) decided for its email."""

    id: int
    status: str
    status_reason: str | None
    attempt_count: int
    next_attempt_at: float | None
    subject: str | None = None
    raw: bytes | None = None
    links: list[str] | None = None
    sent: bool = False
    """Stamp ``sent_at`` with the update's time (the first 250 only)."""


class EmailStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # -- writing ------------------------------------------------------------------------------

    def insert_many(self, new: Sequence[NewEmail]) -> list[int]:
        """Queue emails (or store them skipped); their ids, in order."""
        if not new:
            return []
        statement = insert(emails).returning(emails.c.id, sort_by_parameter_order=True)
        rows = [email.to_row() for email in new]
        ids = list(self.conn.execute(statement, rows).scalars())
        if any(email.status == "queued" for email in new):
            self.queued()
        return ids

    def insert_campaign_batch(self, new: Sequence[NewEmail]) -> int:
        """Insert a campaign's recipients, skipping contacts it already has (a batch taken
        again after a crash); how many were new."""
        if not new:
            return 0
        rows = [email.to_row() for email in new]
        module = postgresql if self._pg else sqlite
        statement = (
            module.insert(emails)
            .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
            .returning(emails.c.id)
        )
        count = len(self.conn.execute(statement, rows).all())
        if count:
            self.queued()
        return count

    def queued(self) -> None:
        """Wake email workers once this transaction commits: those of this process (see
        :func:`on_queued`) and, on PostgreSQL, every other process's (NOTIFY)."""
        _WAKERS.after_commit(self.conn)

    def add_events(self, rows: Iterable[tuple[int, str, float, dict[str, Any] | None]]) -> None:
        """Append to emails' timelines: (email id, type, at, detail)."""
        values = [
            {
                "email_id": email_id,
                "type": kind,
                "at": at,
                "detail": jsoncodec.dumps(detail).decode() if detail is not None else None,
            }
            for email_id, kind, at, detail in rows
        ]
        if values:
            self.conn.execute(insert(email_events), values)

    def update_status(self, email_id: int, status: str, reason: str | None, now: float) -> None:
        self.conn.execute(
            update(emails)
            .where(emails.c.id == email_id)
            .values(status=status, status_reason=reason, lease_owner=None, updated_at=now)
        )

    def mark_first(self, email_id: int, column: str, at: float) -> bool:
        """Set ``opened_at`` or ``clicked_at`` unless set; whether this was the first."""
        target = emails.c[column]
        result = self.conn.execute(
            update(emails).where(emails.c.id == email_id, target.is_(None)).values({target: at})
        )
        return bool(result.rowcount)

    # -- the queue ----------------------------------------------------------------------------

    def claim_due(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[ClaimedEmail]:
        """Lease up to ``limit`` due emails, oldest due first."""
        due = (
            select(emails.c.id)
            .where(_DUE, emails.c.next_attempt_at <= now)
            .order_by(emails.c.next_attempt_at)
            .limit(limit)
        )
        if self._pg:
            due = due.with_for_update(skip_locked=True)
        ids = list(self.conn.execute(due).scalars())
        if not ids:
            return []
        self.conn.execute(
            update(emails)
            .where(emails.c.id.in_(ids))
            .values(lease_owner=owner, next_attempt_at=lease_until)
        )
        rows = self.conn.execute(select(emails).where(emails.c.id.in_(ids)))
        claimed = [ClaimedEmail(row_to_email(row), row.raw) for row in rows]
        claimed.sort(key=lambda c: c.email.id)
        return claimed

    def record(self, owner: str, updates: Sequence[EmailUpdate], now: float) -> set[int]:
        """Apply outcomes of emails ``owner`` still leases; the ids applied (an email whose
        lease expired and went to another worker is left to that worker)."""
        if not updates:
            return set()
        ids = [u.id for u in updates]
        held: set[int] = set()
        for chunk in in_chunks(ids):
            query = select(emails.c.id).where(emails.c.id.in_(chunk), emails.c.lease_owner == owner)
            held.update(self.conn.execute(query).scalars())
        when = datetime.fromtimestamp(now, UTC)
        rows = []
        for u in updates:
            if u.id not in held:
                continue
            rows.append(
                {
                    "b_id": u.id,
                    "b_status": u.status,
                    "b_reason": u.status_reason,
                    "b_attempts": u.attempt_count,
                    "b_next": u.next_attempt_at,
                    "b_subject": u.subject,
                    "b_raw": u.raw,
                    "b_links": jsoncodec.dumps(u.links).decode() if u.links is not None else None,
                    "b_sent_at": when if u.sent else None,
                    "b_now": now,
                }
            )
        if rows:
            self.conn.execute(_RECORD, rows)
        return held

    def release(self, owner: str) -> int:
        """Give back every email ``owner`` leases (a worker stopping): due again at once."""
        result = self.conn.execute(
            update(emails)
            .where(emails.c.lease_owner == owner, _DUE)
            .values(lease_owner=None, next_attempt_at=0.0)
        )
        return result.rowcount

    def next_due(self) -> float | None:
        """When the soonest queued or deferred email falls due (or its lease expires)."""
        query = select(func.min(emails.c.next_attempt_at)).where(_DUE)
        value = self.conn.execute(query).scalar()
        return float(value) if value is not None else None


_RECORD = (
    update(emails)
    .where(emails.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        status_reason=bindparam("b_reason"),
        attempt_count=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        lease_owner=None,
        subject=func.coalesce(bindparam("b_subject"), emails.c.subject),
        raw=func.coalesce(bindparam("b_raw"), emails.c.raw),
        links=func.coalesce(bindparam("b_links"), emails.c.links),
        sent_at=func.coalesce(emails.c.sent_at, bindparam("b_sent_at", type_=UTCDateTime())),
        updated_at=bindparam("b_now"),
    )
)
