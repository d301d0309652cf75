"""How an email is a row of ``emails`` and back: :class:`NewEmail` (what queueing inserts) and
:func:`row_to_email` (what every read answers), shared by the queue and the reads.

JSON columns are text written by ``hookhub.core.jsoncodec``. This module must never run a
query: it only maps values (the queries are in ``emails.py`` and ``email_reads.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from hookhub.core import jsoncodec
from hookhub.records.email import Email
from hookhub.store.schema_email import emails

IN_CHUNK = 500  # keeps IN (...) lists under SQLite's bound-parameter limit
SUMMARY_COLUMNS = [c for c in emails.c if c.name not in ("raw",)]
"""Every column but the bytes sent: what reads select."""


def from_json(value: str | None, default: Any) -> Any:
    return jsoncodec.loads(value) if value else default


def in_chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def row_to_email(row: Row[Any]) -> Email:
    return Email(
        id=row.id,
        message_id=row.message_id,
        kind=row.kind,
        contact_id=row.contact_id,
        to_email=row.to_email,
        to_name=row.to_name,
        sender=from_json(row.sender, {}),
        reply_to=row.reply_to,
        subject=row.subject,
        template_id=row.template_id,
        campaign_id=row.campaign_id,
        automation_id=row.automation_id,
        tags=from_json(row.tags, []),
        params=from_json(row.params, {}),
        content=from_json(row.content, None),
        headers=from_json(row.headers, {}),
        track_opens=bool(row.track_opens),
        track_clicks=bool(row.track_clicks),
        status=row.status,
        status_reason=row.status_reason,
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at,
        opened_at=row.opened_at,
        clicked_at=row.clicked_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        links=from_json(row.links, None),
    )


@dataclass(slots=True)
class NewEmail:
    """An email to queue: whoever causes it (API, rule, campaign, automation) fills one in."""

    message_id: str
    kind: str  # transactional, campaign, automation, test
    to_email: str
    sender: dict[str, Any]
    created_at: datetime
    to_name: str | None = None
    contact_id: int | None = None
    reply_to: str | None = None
    template_id: int | None = None
    campaign_id: int | None = None
    automation_id: int | None = None
    tags: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] | None = None
    """``{subject, html, text?}`` given inline (no template)."""
    headers: dict[str, str] = field(default_factory=dict)
    track_opens: bool = True
    track_clicks: bool = True
    due_at: float | None = None
    """When to send (epoch seconds); None: at once."""
    status: str = "queued"
    status_reason: str | None = None

    def to_row(self) -> dict[str, Any]:
        def text(value: Any) -> str:
            return jsoncodec.dumps(value).decode()

        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "contact_id": self.contact_id,
            "to_email": self.to_email,
            "to_name": self.to_name,
            "sender": text(self.sender),
            "reply_to": self.reply_to,
            "subject": self.content.get("subject") if self.content else None,
            "template_id": self.template_id,
            "campaign_id": self.campaign_id,
            "automation_id": self.automation_id,
            "tags": text(self.tags),
            "params": text(self.params),
            "content": text(self.content) if self.content is not None else None,
            "headers": text(self.headers),
            "track_opens": self.track_opens,
            "track_clicks": self.track_clicks,
            "status": self.status,
            "status_reason": self.status_reason,
            "attempt_count": 0,
            "next_attempt_at": (self.due_at or self.created_at.timestamp())
            if self.status == "queued"
            else None,
            "created_at": self.created_at,
            "updated_at": self.created_at.timestamp(),
        }
