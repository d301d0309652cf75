"""Request bodies and response shapes of the REST API (what /openapi.json documents).

Bodies are checked here for shape only; domain rules (email syntax, attribute types, existence
of lists) are checked by the services so that every entry point applies the same rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)

from hookhub.core.catalog import CATALOG, subscription_patterns

MAX_ID = 2**53 - 1
"""Ids stay within the integers every JSON parser reads exactly."""


Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _storable(value: str) -> str:
    """Text both databases can store: PostgreSQL refuses NUL, and lone surrogates (which JSON's
    \\uD800 escapes can produce) are not UTF-8 at all."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range") from None


Text = Annotated[str, AfterValidator(_storable)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_storable),
]
"""A list's name: trimmed on create and rename alike, never blank."""


def _date_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    return value


UTCDate = Annotated[datetime, BeforeValidator(_date_text), AfterValidator(_utc), Strict(False)]
Email = Annotated[Text, Field(max_length=320, json_schema_extra={"format": "email"})]
"""An email address; the services check its syntax (the document says so with ``format``)."""
EventName = Annotated[str, Field(max_length=255, pattern=r"^[A-Za-z0-9_-]{1,255}$")]
AttributeName = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
Attributes = Annotated[
    dict[str, Any],
    Field(
        # The services check names and values (and answer which attribute is wrong and what
        # type it needs); the document states the same rules.
        json_schema_extra={
            "propertyNames": {"pattern": r"^[A-Za-z][A-Za-z0-9_]{0,63}$"},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": 10_000},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        },
        description="Attribute values by name (a string, number, boolean, or null to remove).",
    ),
]
EventPattern = Annotated[
    str,
    Field(
        max_length=64,
        json_schema_extra={"enum": subscription_patterns()},
        description="An event type, a family such as contact.*, or * (GET /api/v1/event-types).",
    ),
]


class Body(BaseModel):
    """A request body: unknown fields refused, and no coercion (``"enabled": 0`` is not false)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ContactCreate(Body):
    email: Email
    ext_id: Text | None = Field(default=None, min_length=1, max_length=255)
    attributes: Attributes | None = None
    list_ids: list[Id] = Field(default_factory=list, max_length=1000)
    unsubscribed: bool = False


class EmailBlockIn(Body):
    reason: Literal["manual"]


class ContactPatch(Body):
    email: Email | None = None
    ext_id: Text | None = Field(default=None, min_length=1, max_length=255)
    attributes: Attributes | None = None
    unsubscribed: bool | None = None
    list_ids: list[Id] = Field(
        default_factory=list, max_length=1000, description="Lists to add the contact to."
    )
    unlink_list_ids: list[Id] = Field(
        default_factory=list, max_length=1000, description="Lists to remove the contact from."
    )
    email_blocked: EmailBlockIn | None = Field(
        default=None,
        description='null clears a block (after a bounce or complaint); {"reason": "manual"} '
        "blocks the contact from email.",
    )


class EmailBlockedOut(BaseModel):
    reason: Literal["hard_bounce", "complaint", "manual"]
    at: str


class ContactOut(BaseModel):
    id: int
    email: str
    ext_id: str | None
    attributes: dict[str, Any]
    list_ids: list[int]
    unsubscribed: bool
    email_blocked: EmailBlockedOut | None = Field(
        description="Why and since when the contact gets no email (null: it does)."
    )
    created_at: str
    updated_at: str


class ListCreate(Body):
    name: Name


class ListOut(BaseModel):
    id: int
    name: str
    contact_count: int
    created_at: str


class ListMembersAdd(Body):
    emails: list[Email] = Field(default_factory=list, max_length=10_000)
    contact_ids: list[Id] = Field(default_factory=list, max_length=10_000)


class ListMembersAdded(BaseModel):
    added: list[int]
    already_members: list[int]


class Identifiers(Body):
    email: Email | None = None
    contact_id: Id | None = None
    ext_id: Text | None = Field(default=None, min_length=1, max_length=255)


class EventCreate(Body):
    event_name: EventName
    identifiers: Identifiers
    contact_properties: Attributes | None = None
    event_properties: dict[str, Any] | None = None
    event_date: UTCDate | None = None


class EventOut(BaseModel):
    id: int
    event_name: str
    contact_id: int
    event_properties: dict[str, Any]
    event_date: str
    created_at: str


class AttributeCreate(Body):
    name: AttributeName
    type: Literal["string", "number", "boolean", "date"]


class AttributeOut(BaseModel):
    name: str
    type: str
    created_at: str


class MessageOut(BaseModel):
    id: str
    type: str
    payload: dict[str, Any] = Field(description="The exact body sent to endpoints.")
    created_at: str


T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorDetail


HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
HeaderValue = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00-\x08\x0a-\x1f\x7f]*$")]
"""HTTP field values: tab allowed, no other control character."""
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    Field(
        max_length=20,
        json_schema_extra={"additionalProperties": False},
        description="Extra headers sent with every delivery (not the signature headers).",
    ),
]


WebhookSecret = Annotated[str, Field(max_length=128, pattern=r"^whsec_[A-Za-z0-9+/]{32,}={0,2}$")]
"""``whsec_`` and the base64 of at least 24 random bytes (Standard Webhooks)."""


class WebhookPreview(Body):
    """One of ``event_type`` (the catalog's example) and ``message_id`` (a stored message)."""

    event_type: (
        Annotated[str, Field(max_length=64, json_schema_extra={"enum": sorted(CATALOG)})] | None
    ) = None
    message_id: str | None = Field(default=None, max_length=64)


class WebhookPreviewOut(BaseModel):
    body: Any = Field(description="The JSON body that would be sent.")
    headers: dict[str, str] = Field(description="Its headers (credentials masked).")


class TestSend(Body):
    event_type: Annotated[str, Field(max_length=64, json_schema_extra={"enum": sorted(CATALOG)})]


class TestSent(BaseModel):
    message_id: str
    delivery_id: int


class Recover(Body):
    since: UTCDate
    until: UTCDate | None = None


class Recovered(BaseModel):
    requeued: int = Field(description="Failed and exhausted deliveries queued again.")
    backfilled: int = Field(description="Deliveries created for messages the webhook missed.")


class AttemptSummaryOut(BaseModel):
    at: str
    status_code: int | None
    duration_ms: float
    error: str | None
    error_detail: str | None


class AttemptOut(AttemptSummaryOut):
    response_body: str | None


class _DeliveryFields(BaseModel):
    id: int
    message_id: str
    webhook_id: int
    status: Literal[
        "pending", "succeeded", "failed", "exhausted", "waiting", "collapsed", "cancelled"
    ] = Field(
        description="waiting: behind the contact's earlier delivery (ordering); collapsed:"
        " merged into its burst's delivery (collapse); cancelled: the contact was erased."
    )
    attempt_count: int = Field(description="Attempts since it was last queued (retry resets it).")
    next_attempt_at: str | None
    in_flight: bool = Field(description="A worker is attempting it right now.")
    created_at: str
    updated_at: str


class DeliverySummaryOut(_DeliveryFields):
    """A delivery as lists show it: its attempts without their response bodies."""

    attempts: list[AttemptSummaryOut]


class DeliveryOut(_DeliveryFields):
    """A delivery with every attempt's response body (GET /deliveries/{id}, a message)."""

    attempts: list[AttemptOut]


class MessageDetailOut(MessageOut):
    deliveries: list[DeliveryOut] = Field(description="Each endpoint's delivery of the message.")
