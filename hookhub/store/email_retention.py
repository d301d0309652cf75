"""Queries that delete emails past their retention, with their timelines (the answers kept for
``Idempotency-Key`` are forgotten by ``store/email_idempotency.py``).

Like ``store/retention.py``: one small batch per call, in the caller's transaction; old emails
are found by walking the primary key (ids grow as emails are queued), checking each row's own
time and stopping at the first recent one, so no index is added to the queue for the purge.

Never deletes pending work: an email still ``queued`` or ``deferred`` stays, however old.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from hookhub.records.email import PENDING
from hookhub.store.schema import email_events, emails


@dataclass(frozen=True, slots=True)
class EmailBatch:
    """The next emails by id: which of them may go, and whether the walk reached new ones."""

    last_id: int | None
    expired: list[int]
    events: int
    reached_recent: bool


class EmailRetentionStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def email_batch(self, *, after_id: int, cutoff: datetime, limit: int) -> EmailBatch:
        """Of the next ``limit`` emails after ``after_id``, those queued before ``cutoff``
        that are final, and how many timeline events they have."""
        rows = self.conn.execute(
            select(emails.c.id, emails.c.created_at, emails.c.status)
            .where(emails.c.id > after_id)
            .order_by(emails.c.id)
            .limit(limit)
        ).all()
        expired: list[int] = []
        reached_recent = len(rows) < limit
        last_id = None
        for row in rows:
            if row.created_at >= cutoff:
                reached_recent = True
                break
            last_id = row.id
            if row.status not in PENDING:
                expired.append(row.id)
        events = 0
        if expired:
            events = self.conn.execute(
                select(func.count()).where(email_events.c.email_id.in_(expired))
            ).scalar_one()
        return EmailBatch(last_id, expired, int(events), reached_recent)

    def delete_emails(self, ids: Sequence[int]) -> tuple[int, int]:
        """Delete final emails with their events; how many of each. An email made pending
        again since the batch was read (a retry) stays, with its events."""
        if not ids:
            return 0, 0
        final = select(emails.c.id).where(
            emails.c.id.in_(list(ids)), emails.c.status.not_in(PENDING)
        )
        events = self.conn.execute(
            delete(email_events).where(email_events.c.email_id.in_(final))
        ).rowcount
        gone = self.conn.execute(
            delete(emails).where(emails.c.id.in_(list(ids)), emails.c.status.not_in(PENDING))
        ).rowcount
        return int(gone), int(events)
