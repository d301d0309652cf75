"""Request bodies and response shapes of /api/v1/campaigns (what /openapi.json documents).

Shapes only: whether lists and templates exist, addresses are valid and content compiles is
checked by :class:`hookhub.email.campaigns.CampaignService`, as for every entry point.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from hookhub.api.schemas import Body, Email, Id, Name, Text, UTCDate

Tag = Annotated[Text, StringConstraints(min_length=1, max_length=64)]
Content = Annotated[Text, Field(max_length=1024 * 1024)]
Subject = Annotated[Text, Field(min_length=1, max_length=998)]
ListIds = Annotated[list[Id], Field(max_length=100)]
SomeListIds = Annotated[list[Id], Field(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Field(max_length=20)]


class Sender(Body):
    email: Email
    name: Text | None = Field(default=None, max_length=255)


class CampaignCreate(Body):
    name: Name
    template_id: Id | None = None
    subject: Subject | None = None
    html: Content | None = None
    text: Content | None = None
    list_ids: SomeListIds
    exclude_list_ids: ListIds = Field(default_factory=list)
    sender: Sender | None = None
    reply_to: Email | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="In templates: `params`.")
    tags: Tags = Field(default_factory=list)
    track_opens: bool = True
    track_clicks: bool = True


class CampaignPatch(Body):
    """Only a draft or scheduled campaign; fields given replace the campaign's. A template_id
    replaces inline content, inline content replaces the template."""

    # Fields a campaign cannot be without take no null (the document says so): omit them to
    # keep them.
    name: Name | SkipJsonSchema[None] = None
    template_id: Id | None = Field(
        default=None, description="null: the campaign's own subject and html (give them)."
    )
    subject: Subject | SkipJsonSchema[None] = None
    html: Content | SkipJsonSchema[None] = None
    text: Content | None = Field(default=None, description="null: made from the html.")
    list_ids: SomeListIds | SkipJsonSchema[None] = None
    exclude_list_ids: ListIds | SkipJsonSchema[None] = None
    sender: Sender | None = Field(default=None, description="null: the default sender.")
    reply_to: Email | None = None
    params: dict[str, Any] | SkipJsonSchema[None] = None
    tags: Tags | SkipJsonSchema[None] = None
    track_opens: bool | SkipJsonSchema[None] = None
    track_clicks: bool | SkipJsonSchema[None] = None


class CampaignSend(Body):
    scheduled_at: UTCDate | None = Field(
        default=None, description="When to start (default, or a past time: now)."
    )


class CampaignTest(Body):
    emails: list[Email] = Field(min_length=1, max_length=50)


class CampaignStats(BaseModel):
    recipients: int
    sent: int
    delivered: int
    opened_unique: int
    clicked_unique: int
    bounced_hard: int
    bounced_soft: int
    complained: int
    unsubscribed: int
    failed: int
    skipped: int


class CampaignOut(BaseModel):
    id: int
    name: str
    status: Literal["draft", "scheduled", "sending", "paused", "sent", "cancelled"]
    template_id: int | None
    subject: str | None = Field(description="Inline, or the template's once sending started.")
    html: str | None
    text: str | None
    sender: dict[str, Any] | None
    reply_to: str | None
    params: dict[str, Any]
    tags: list[str]
    list_ids: list[int]
    exclude_list_ids: list[int]
    track_opens: bool
    track_clicks: bool
    scheduled_at: str | None
    snapshot_done: bool = Field(description="Every recipient's email is queued.")
    started_at: str | None
    finished_at: str | None
    created_at: str
    updated_at: str
    stats: CampaignStats | None = Field(description="Live; null in lists.")


class TestEmailOut(BaseModel):
    id: int
    to: str
    status: str
    message_id: str
    status_reason: str | None


class TestEmailsOut(BaseModel):
    data: list[TestEmailOut]
