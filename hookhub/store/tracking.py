"""Tracking hits as received (``tracking_hits``) and what the tracking routes read of emails.

Hits are appended in the receiver's group commits and taken, oldest first, by the tracking
processor: :meth:`TrackingHitStore.take` deletes the hits it returns in the caller's
transaction, so a batch rolled back leaves them for the next try, and on PostgreSQL workers
taking at once skip each other's rows (``FOR UPDATE SKIP LOCKED``) instead of applying a hit
twice. The SQL of hits lives here and nowhere else; it must never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from hookhub.core import jsoncodec
from hookhub.records.email import Email
from hookhub.store.email_rows import row_to_email
from hookhub.store.schema_email import emails, tracking_hits

MAX_USER_AGENT = 512
MAX_IP = 64
_EMAIL_COLUMNS = [c for c in emails.c if c.name != "raw"]


@dataclass(frozen=True, slots=True)
class TrackingHit:
    """One open, click or unsubscribe as received (``id`` is 0 until stored)."""

    kind: str  # o, c, u
    email_id: int
    link: int | None
    received_at: float
    user_agent: str | None
    ip: str | None
    id: int = 0

    def to_row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "email_id": self.email_id,
            "link": self.link,
            "received_at": self.received_at,
            "user_agent": _column_text(self.user_agent, MAX_USER_AGENT),
            "ip": _column_text(self.ip, MAX_IP),
        }


@dataclass(frozen=True, slots=True)
class EmailTarget:
    """What the tracking routes need of an email: whom it went to and the links it held."""

    email_id: int
    to_email: str
    links: tuple[str, ...]


class TrackingHitStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def append(self, hits: Sequence[TrackingHit]) -> None:
        if hits:
            self.conn.execute(insert(tracking_hits), [hit.to_row() for hit in hits])

    def take(self, limit: int) -> list[TrackingHit]:
        """Delete and return up to ``limit`` of the oldest hits (in the caller's transaction)."""
        oldest = select(tracking_hits.c.id).order_by(tracking_hits.c.id).limit(limit)
        if self._pg:
            oldest = oldest.with_for_update(skip_locked=True)
        statement = (
            delete(tracking_hits)
            .where(tracking_hits.c.id.in_(oldest.scalar_subquery()))
            .returning(*tracking_hits.c)
        )
        hits = [
            TrackingHit(
                kind=row.kind,
                email_id=row.email_id,
                link=row.link,
                received_at=row.received_at,
                user_agent=row.user_agent,
                ip=row.ip,
                id=row.id,
            )
            for row in self.conn.execute(statement)
        ]
        hits.sort(key=lambda hit: hit.id)
        return hits

    def count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(tracking_hits)).scalar_one())

    def emails(self, ids: Iterable[int]) -> dict[int, Email]:
        """The emails of ``ids`` that exist (without their bytes or timeline)."""
        wanted = sorted(set(ids))
        found: dict[int, Email] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(*_EMAIL_COLUMNS).where(emails.c.id.in_(chunk))
            found.update((row.id, row_to_email(row)) for row in self.conn.execute(query))
        return found

    def targets(self, ids: Iterable[int]) -> dict[int, EmailTarget]:
        """The addresses and links (none until rendered) of the emails of ``ids`` that exist."""
        wanted = sorted(set(ids))
        found: dict[int, EmailTarget] = {}
        columns = (emails.c.id, emails.c.to_email, emails.c.links)
        for start in range(0, len(wanted), 500):
            query = select(*columns).where(emails.c.id.in_(wanted[start : start + 500]))
            for row in self.conn.execute(query):
                links = jsoncodec.loads(row.links) if row.links else []
                kept = tuple(link if isinstance(link, str) else "" for link in links)
                found[row.id] = EmailTarget(row.id, row.to_email, kept)
        return found


def _column_text(value: str | None, limit: int) -> str | None:
    """Client-chosen text as a ``String(limit)`` column takes it on both databases (PostgreSQL
    refuses NUL, and one refused row would fail the whole group commit)."""
    if value is None:
        return None
    return value.replace("\x00", "\ufffd")[:limit]
