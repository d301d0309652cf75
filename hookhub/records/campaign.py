"""Campaigns' value objects and their public JSON shape (DESIGN.md, "Email (contract)").

A campaign is one email to the contacts of some lists. Statuses: ``draft`` (editable, nothing
queued), ``scheduled`` (starts at ``scheduled_at``), ``sending`` (its recipient snapshot is being
taken or its emails are being sent), ``paused`` (nothing of it is sent until resumed), ``sent``
(its snapshot is done and none of its emails waits to be sent), ``cancelled`` (what was not sent
never will be).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hookhub.core.jsoncodec import isoformat

CampaignStatus = Literal["draft", "scheduled", "sending", "paused", "sent", "cancelled"]
STATUSES: tuple[str, ...] = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
EDITABLE: tuple[str, ...] = ("draft", "scheduled")
"""Statuses in which a campaign's content, lists and settings may still change."""
STAT_NAMES: tuple[str, ...] = (
    "recipients",
    "sent",
    "delivered",
    "opened_unique",
    "clicked_unique",
    "bounced_hard",
    "bounced_soft",
    "complained",
    "unsubscribed",
    "failed",
    "skipped",
)


def _moment(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float | int):
        value = datetime.fromtimestamp(value, UTC)
    return isoformat(value)


@dataclass(slots=True)
class Campaign:
    id: int
    name: str
    status: str
    template_id: int | None
    subject: str | None
    html: str | None
    text: str | None
    sender: dict[str, Any] | None
    """``{email, name?}``; None: the template's, else ``HOOKHUB_EMAIL_FROM``."""
    reply_to: str | None
    params: dict[str, Any]
    tags: list[str]
    list_ids: list[int]
    exclude_list_ids: list[int]
    track_opens: bool
    track_clicks: bool
    scheduled_at: float | None
    snapshot_cursor: int | None
    snapshot_limit: int | None
    snapshot_done: bool
    lease_owner: str | None
    lease_until: float | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime
    stats: dict[str, int] | None = field(default=None)

    def content(self) -> dict[str, Any] | None:
        """``{subject, html, text}`` when the campaign has its own (inline, or copied)."""
        if self.subject is None or self.html is None:
            return None
        return {"subject": self.subject, "html": self.html, "text": self.text}

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "template_id": self.template_id,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "sender": self.sender,
            "reply_to": self.reply_to,
            "params": self.params,
            "tags": self.tags,
            "list_ids": self.list_ids,
            "exclude_list_ids": self.exclude_list_ids,
            "track_opens": self.track_opens,
            "track_clicks": self.track_clicks,
            "scheduled_at": _moment(self.scheduled_at),
            "snapshot_done": self.snapshot_done,
            "started_at": _moment(self.started_at),
            "finished_at": _moment(self.finished_at),
            "created_at": _moment(self.created_at),
            "updated_at": _moment(self.updated_at),
            "stats": self.stats,
        }
