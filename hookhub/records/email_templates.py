"""An email template as stored, and its public JSON shape (DESIGN.md, "Email (contract)")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hookhub.core.jsoncodec import isoformat


@dataclass(slots=True)
class StoredTemplate:
    """The source of a template; ``version`` changes with every edit (compiled-cache key)."""

    id: int
    name: str
    subject: str
    html: str
    text: str | None
    sender: dict[str, Any] | None  # {"email", "name"}; None: HOOKHUB_EMAIL_FROM
    reply_to: str | None
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def cache_key(self) -> tuple[int, int]:
        return (self.id, self.version)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "sender": self.sender,
            "reply_to": self.reply_to,
            "tags": self.tags,
            "version": self.version,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }
