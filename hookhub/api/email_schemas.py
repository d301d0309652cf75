"""Request and response shapes of /api/v1/emails and /api/v1/bounces (DESIGN.md, "Email").

Shapes only: addresses, templates and headers are checked by ``hookhub.email.service``, which
answers which recipient or header is wrong.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from hookhub.api.schemas import Body, Email, Id, Text, UTCDate

Tag = Annotated[Text, Field(min_length=1, max_length=64)]
MailHeaderName = Annotated[str, Field(pattern=r"^[!-9;-~]{1,76}$")]
MailHeaderValue = Annotated[Text, Field(max_length=998)]


class RecipientIn(Body):
    email: Email
    name: Text | None = Field(default=None, max_length=255)


class SenderIn(Body):
    email: Email
    name: Text | None = Field(default=None, max_length=255)


class EmailSend(Body):
    to: list[RecipientIn] = Field(min_length=1, max_length=1000)
    template_id: Id | None = None
    subject: Text | None = Field(default=None, min_length=1, max_length=998)
    html: Text | None = Field(default=None, max_length=1_000_000)
    text: Text | None = Field(default=None, max_length=1_000_000)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Values the template reads as {{ params.name }}."
    )
    sender: SenderIn | None = Field(
        default=None, description="Default: the template's sender, else HOOKHUB_EMAIL_FROM."
    )
    reply_to: Email | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    headers: dict[MailHeaderName, MailHeaderValue] = Field(
        default_factory=dict,
        max_length=50,
        description="Extra message headers (no line breaks; From, To, Subject and the other "
        "headers Hookhub writes cannot be given).",
    )
    scheduled_at: UTCDate | None = Field(default=None, description="Send at (default: now).")
    track_opens: bool = True
    track_clicks: bool = True


class EmailSummaryOut(BaseModel):
    id: int
    to: str
    status: str
    message_id: str
    status_reason: str | None


class EmailsQueuedOut(BaseModel):
    data: list[EmailSummaryOut]


class EmailEventOut(BaseModel):
    type: str
    at: str | None
    detail: dict[str, Any] | None


class EmailOut(BaseModel):
    id: int
    message_id: str
    kind: str
    to: str
    to_name: str | None
    contact_id: int | None
    sender: dict[str, Any]
    reply_to: str | None
    subject: str | None
    template_id: int | None
    campaign_id: int | None
    automation_id: int | None
    tags: list[str]
    headers: dict[str, str]
    status: str
    status_reason: str | None
    attempt_count: int
    next_attempt_at: str | None
    opened: bool
    clicked: bool
    created_at: str
    sent_at: str | None
    events: list[EmailEventOut]


class BounceIn(Body):
    email: Email | None = None
    message_id: Text | None = Field(default=None, min_length=1, max_length=255)
    type: Literal["hard", "soft", "complaint"]
    reason: Text | None = Field(default=None, max_length=1000)


class BounceOut(BaseModel):
    type: str
    email_id: int | None = Field(description="The email it was applied to (null: none found).")
    contact_blocked: bool = False
