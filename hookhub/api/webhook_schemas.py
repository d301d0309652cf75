"""Request and response bodies of /api/v1/webhooks: outbound endpoints and their options."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from hookhub.api.schemas import Body, EventPattern, Headers, Text, WebhookSecret


class BearerAuth(Body):
    type: Literal["bearer"]
    token: str = Field(min_length=1, max_length=4096)


class BasicAuth(Body):
    type: Literal["basic"]
    username: str = Field(min_length=1, max_length=1024)
    password: str = Field(max_length=4096)


FilterExpression = Annotated[
    str,
    Field(
        max_length=1000,
        description="JMESPath over the message; only messages it matches are delivered.",
        examples=["type == 'list.contact_added' && data.list_id == `3`"],
    ),
]


class WebhookTransform(Body):
    """Exactly one of ``preset`` and ``template``."""

    preset: Literal["slack", "discord", "teams", "google_sheets", "brevo"] | None = None
    template: str | None = Field(
        default=None,
        max_length=20_000,
        description="Jinja2 rendering JSON; sees type, timestamp, data, origin and tojson.",
    )


class IgnoreOrigin(Body):
    type: Literal["api", "inbound", "automation", "campaign", "import", "tracking"]
    id: Annotated[int, Field(ge=1)] | Annotated[str, Field(min_length=1, max_length=64)] | None = (
        Field(default=None, description="Absent: every origin of the type; imports' are strings.")
    )


class WebhookCollapse(Body):
    event_types: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Types about a contact whose bursts become one delivery.",
        examples=[["contact.updated"]],
    )
    window_ms: int = Field(
        ge=1, le=3_600_000, description="How long a burst's first delivery waits for more."
    )


Ordering = Literal["contact"]


class WebhookCreate(Body):
    url: str = Field(min_length=1, max_length=2048)
    events: list[EventPattern] = Field(min_length=1, max_length=100)
    description: Text = Field(default="", max_length=1000)
    headers: Headers | None = None
    auth: Annotated[BearerAuth | BasicAuth, Field(discriminator="type")] | None = None
    batched: bool = False
    enabled: bool = True
    rate_limit: float | None = Field(
        default=None, ge=0.001, le=100_000, description="Messages per second, per worker."
    )
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    secret: WebhookSecret | None = Field(
        default=None, description="Bring your own whsec_ secret (default: generated)."
    )
    filter: FilterExpression | None = None
    transform: WebhookTransform | None = None
    ignore_origins: list[IgnoreOrigin] | None = Field(
        default=None,
        max_length=50,
        description='Origins whose messages it never gets: [{"type": "inbound", "id": 3}].',
    )
    ordering: Ordering | None = Field(
        default=None, description='"contact": one contact\'s messages arrive in order.'
    )
    collapse: WebhookCollapse | None = None


class WebhookPatch(Body):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[EventPattern] | None = Field(default=None, min_length=1, max_length=100)
    description: Text | None = Field(default=None, max_length=1000)
    headers: Headers | None = None
    auth: Annotated[BearerAuth | BasicAuth, Field(discriminator="type")] | None = None
    batched: bool | None = None
    enabled: bool | None = None
    rate_limit: float | None = Field(default=None, ge=0.001, le=100_000)
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    filter: FilterExpression | None = Field(default=None, description="null removes it.")
    transform: WebhookTransform | None = Field(default=None, description="null removes it.")
    ignore_origins: list[IgnoreOrigin] | None = Field(
        default=None,
        max_length=50,
        description='Origins whose messages it never gets: [{"type": "inbound", "id": 3}].',
    )
    ordering: Ordering | None = Field(default=None, description="null removes it.")
    collapse: WebhookCollapse | None = Field(default=None, description="null removes it.")


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    headers: dict[str, str]
    auth: dict[str, Any] | None = Field(description="type (and username); never the secret.")
    batched: bool
    enabled: bool
    disabled_reason: str | None
    rate_limit: float | None
    max_concurrency: int | None
    filter: str | None = None
    transform: dict[str, str] | None = None
    failing_since: str | None = Field(description="Start of the current run of failures.")
    created_at: str
    updated_at: str
    secret: str | None = Field(default=None, description="Only in create and rotate answers.")
    ignore_origins: list[dict[str, Any]] = Field(default_factory=list)
    ordering: Ordering | None = None
    collapse: WebhookCollapse | None = None


class SecretOut(BaseModel):
    secret: str


class RotateSecret(Body):
    secret: WebhookSecret | None = None
