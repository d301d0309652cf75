"""Email's value objects and their public JSON shapes (DESIGN.md, "Email (contract)").

``Email`` is one message to one recipient, whatever sent it (the API, an inbound rule, a
campaign, an automation); its ``events`` are its timeline. Statuses: ``queued`` (waiting to be
sent, or to be sent again), ``sent`` (the mail server said 250), ``deferred`` (4xx or a lost
connection: retried), ``delivered`` (a provider reported delivery), ``bounced``, ``failed``
(retries used up, or it could not be rendered), ``skipped`` (never sent: blocked or
unsubscribed recipient, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hookhub.core.jsoncodec import isoformat

EmailStatus = Literal["queued", "sent", "deferred", "delivered", "bounced", "failed", "skipped"]
EmailKind = Literal["transactional", "campaign", "automation", "test"]
STATUSES: tuple[str, ...] = (
    "queued",
    "sent",
    "deferred",
    "delivered",
    "bounced",
    "failed",
    "skipped",
)
PENDING: tuple[str, ...] = ("queued", "deferred")
"""Statuses a worker still has to send."""


def _moment(epoch: float | None) -> str | None:
    return None if epoch is None else isoformat(datetime.fromtimestamp(epoch, UTC))


@dataclass(slots=True)
class EmailEvent:
    type: str
    at: float
    detail: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        return {"type": self.type, "at": _moment(self.at), "detail": self.detail}


@dataclass(slots=True)
class Email:
    id: int
    message_id: str
    kind: str
    contact_id: int | None
    to_email: str
    to_name: str | None
    sender: dict[str, Any]
    reply_to: str | None
    subject: str | None
    template_id: int | None
    campaign_id: int | None
    automation_id: int | None
    tags: list[str]
    params: dict[str, Any]
    content: dict[str, Any] | None
    headers: dict[str, str]
    track_opens: bool
    track_clicks: bool
    status: str
    status_reason: str | None
    attempt_count: int
    next_attempt_at: float | None
    opened_at: float | None
    clicked_at: float | None
    created_at: datetime
    sent_at: datetime | None
    links: list[str] | None = None
    events: list[EmailEvent] = field(default_factory=list)

    def event_data(self) -> dict[str, Any]:
        """The fields every ``email.*`` message carries (DESIGN.md, event catalog)."""
        return {
            "email_id": self.id,
            "message_id": self.message_id,
            "contact_id": self.contact_id,
            "email": self.to_email,
            "subject": self.subject,
            "template_id": self.template_id,
            "campaign_id": self.campaign_id,
            "automation_id": self.automation_id,
            "tags": self.tags,
        }

    def to_summary(self) -> dict[str, Any]:
        """The shape ``POST /emails`` answers with, one per recipient."""
        return {
            "id": self.id,
            "to": self.to_email,
            "status": self.status,
            "message_id": self.message_id,
            "status_reason": self.status_reason,
        }

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "kind": self.kind,
            "to": self.to_email,
            "to_name": self.to_name,
            "contact_id": self.contact_id,
            "sender": self.sender,
            "reply_to": self.reply_to,
            "subject": self.subject,
            "template_id": self.template_id,
            "campaign_id": self.campaign_id,
            "automation_id": self.automation_id,
            "tags": self.tags,
            "headers": self.headers,
            "status": self.status,
            "status_reason": self.status_reason,
            "attempt_count": self.attempt_count,
            "next_attempt_at": _moment(self.next_attempt_at) if self.status in PENDING else None,
            "opened": self.opened_at is not None,
            "clicked": self.clicked_at is not None,
            "created_at": isoformat(self.created_at),
            "sent_at": isoformat(self.sent_at) if self.sent_at else None,
            "events": [event.to_api() for event in self.events],
        }
