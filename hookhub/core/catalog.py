"""The outbound event catalog: every type Hookhub can send, with its schema and an example.

Every message body is ``{"type": ..., "timestamp": ..., "data": {...}, "origin": {...} | null}``;
``data`` names the contact (``contact_id``, ``email``) wherever there is one; ``origin`` is what
caused it (``hookhub.core.origin``). ``GET /api/v1/event-types`` serves
this table; ``POST /webhooks/{id}/test`` sends the example.
"""

from __future__ import annotations

from typing import Any

from hookhub.core.catalog_automation import AUTOMATION_EVENT_TYPES
from hookhub.core.catalog_types import CHANGE, CONTACT_REF, TS, EventType


def _contact_event(name: str, description: str, **extra: Any) -> EventType:
    props = {**CONTACT_REF, **extra.pop("properties", {})}
    example = {"contact_id": 42, "email": "ada@example.com", **extra.pop("example", {})}
    return EventType(
        name=name,
        description=description,
        properties=props,
        required=("contact_id", "email", *extra.pop("required", ())),
        example=example,
        **extra,
    )


_CONTACT_BODY = {
    "ext_id": {"type": ["string", "null"]},
    "attributes": {"type": "object"},
    "list_ids": {"type": "array", "items": {"type": "integer"}},
    "unsubscribed": {"type": "boolean"},
    "created_at": TS,
}
_EMAIL_BODY: dict[str, Any] = {
    "email_id": {"type": "integer"},
    "message_id": {"type": "string", "description": "the RFC 5322 Message-ID, without <>"},
    "contact_id": {"type": ["integer", "null"]},
    "email": {"type": "string", "format": "email"},
    "subject": {"type": ["string", "null"]},
    "template_id": {"type": ["integer", "null"]},
    "campaign_id": {"type": ["integer", "null"]},
    "automation_id": {"type": ["integer", "null"]},
    "tags": {"type": "array", "items": {"type": "string"}},
}
_EMAIL_REQUIRED = tuple(_EMAIL_BODY)
_EMAIL_EXAMPLE: dict[str, Any] = {
    "email_id": 311,
    "message_id": "311.k2v9@hookhub.example.com",
    "contact_id": 42,
    "email": "ada@example.com",
    "subject": "Your order 1001",
    "template_id": 2,
    "campaign_id": None,
    "automation_id": None,
    "tags": ["order"],
}


def _email_event(name: str, description: str, **extra: Any) -> EventType:
    """An ``email.*`` type: every one names the email, its contact (null when the recipient
    is not a contact) and what sent it; ``extra`` adds the type's own fields."""
    return EventType(
        name=name,
        description=description,
        properties={**_EMAIL_BODY, **extra.get("properties", {})},
        required=(*_EMAIL_REQUIRED, *extra.get("required", ())),
        example={**_EMAIL_EXAMPLE, **extra.get("example", {})},
    )


EVENT_TYPES: tuple[EventType, ...] = (
    _contact_event(
        "contact.created",
        "A contact was created (API, import, inbound rule or custom event).",
        properties=_CONTACT_BODY,
        required=("attributes", "list_ids"),
        example={
            "ext_id": None,
            "attributes": {"FIRSTNAME": "Ada"},
            "list_ids": [3],
            "unsubscribed": False,
            "created_at": "2026-01-15T09:30:00.000Z",
        },
    ),
    _contact_event(
        "contact.updated",
        "A contact's email, ext_id, attributes or subscription changed; `changes` holds each "
        "changed field (attribute names are upper-case) with its old and new value.",
        properties={
            "changes": {"type": "object", "additionalProperties": CHANGE},
            "attributes": {"type": "object"},
        },
        required=("changes",),
        example={
            "changes": {"FIRSTNAME": {"old": "Ada", "new": "Augusta"}},
            "attributes": {"FIRSTNAME": "Augusta"},
        },
    ),
    _contact_event(
        "contact.deleted",
        "A contact was deleted, with the fields it had and the lists it left (`list_ids`; "
        "no `list.contact_removed` is sent for them). A contact erased (`POST "
        "/contacts/{ref}/erase`) is announced with `{contact_id, erased: true}` only.",
        erasable=True,
        properties={
            "ext_id": {"type": ["string", "null"]},
            "attributes": {"type": "object"},
            "list_ids": {"type": "array", "items": {"type": "integer"}},
        },
        required=("list_ids",),
        example={"ext_id": None, "attributes": {"FIRSTNAME": "Ada"}, "list_ids": [3]},
    ),
    _contact_event(
        "contact.unsubscribed",
        "A contact unsubscribed from email (link in an email, or set through the API), or "
        "was created unsubscribed (its contact.created says `unsubscribed: true`).",
        properties={
            "source": {
                "type": "string",
                "description": "api, import, inbound, email (an unsubscribe link or one-click "
                "unsubscribe) or provider (an unsubscribe reported by the sending provider)",
            },
            "email_id": {"type": ["integer", "null"], "description": "the email it came from"},
            "campaign_id": {"type": ["integer", "null"]},
            "automation_id": {"type": ["integer", "null"]},
        },
        example={"source": "email", "email_id": 311, "campaign_id": 5, "automation_id": None},
    ),
    _contact_event(
        "list.contact_added",
        "A contact was added to a list.",
        properties={"list_id": {"type": "integer"}, "list_name": {"type": "string"}},
        required=("list_id",),
        example={"list_id": 3, "list_name": "Newsletter"},
    ),
    _contact_event(
        "list.contact_removed",
        "A contact was removed from a list.",
        properties={"list_id": {"type": "integer"}, "list_name": {"type": "string"}},
        required=("list_id",),
        example={"list_id": 3, "list_name": "Newsletter"},
    ),
    EventType(
        "list.deleted",
        "A list was deleted, with its members' memberships (`contact_count` of them; no "
        "`list.contact_removed` is sent for each). Its contacts remain.",
        properties={
            "list_id": {"type": "integer"},
            "list_name": {"type": "string"},
            "contact_count": {"type": "integer"},
        },
        required=("list_id", "list_name", "contact_count"),
        example={"list_id": 3, "list_name": "Newsletter", "contact_count": 120},
    ),
    _contact_event(
        "event.tracked",
        "A custom event was recorded for a contact.",
        properties={
            "event_id": {"type": "integer"},
            "event_name": {"type": "string"},
            "event_properties": {"type": "object"},
            "event_date": TS,
        },
        required=("event_id", "event_name"),
        example={
            "event_id": 7,
            "event_name": "order_placed",
            "event_properties": {"total": 42.5, "currency": "EUR"},
            "event_date": "2026-01-15T09:30:00.000Z",
        },
    ),
    _email_event("email.sent", "The mail server accepted an email (250 to DATA)."),
    _email_event(
        "email.deferred",
        "The mail server answered 4xx or the connection was lost: the email is retried on "
        "the email retry schedule.",
        properties={
            "reason": {"type": "string"},
            "attempts": {"type": "integer"},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
        },
        required=("reason",),
        example={
            "reason": "451 4.7.1 try again later",
            "attempts": 1,
            "next_attempt_at": "2026-01-15T09:31:00.000Z",
        },
    ),
    _email_event(
        "email.delivered",
        "The recipient's mail server accepted the email (reported by the sending provider).",
    ),
    _email_event(
        "email.opened",
        "The email was opened (its tracking pixel was loaded). `first` is the first open; "
        "`proxy` when a mail privacy proxy or a scanner loaded it, not surely a person.",
        properties={"first": {"type": "boolean"}, "proxy": {"type": "boolean"}},
        required=("first", "proxy"),
        example={"first": True, "proxy": False},
    ),
    _email_event(
        "email.clicked",
        "A tracked link in the email was clicked; `url` is the link that was in the email.",
        properties={
            "url": {"type": "string", "format": "uri"},
            "first": {"type": "boolean"},
            "proxy": {"type": "boolean"},
        },
        required=("url", "first"),
        example={"url": "https://example.com/orders/1001", "first": True, "proxy": False},
    ),
    _email_event(
        "email.bounced",
        "The email bounced. `hard` (5xx, or a provider's permanent failure) blocks the "
        "contact from further email; `soft` ones are temporary.",
        properties={
            "bounce_type": {"type": "string", "description": "hard or soft"},
            "reason": {"type": "string"},
        },
        required=("bounce_type", "reason"),
        example={"bounce_type": "hard", "reason": "550 5.1.1 mailbox unavailable"},
    ),
    _email_event(
        "email.failed",
        "The email could not be sent: its retries were used up (a soft bounce), or it could "
        "not be rendered.",
        properties={"reason": {"type": "string"}},
        required=("reason",),
        example={"reason": "451 4.7.1 try again later (after 7 attempts)"},
    ),
    _email_event(
        "email.complained",
        "The recipient marked the email as spam (reported by the sending provider); the "
        "contact is blocked from further email.",
    ),
    *AUTOMATION_EVENT_TYPES,
    EventType(
        "inbound.failed",
        "An inbound webhook request was accepted but its rules could not be applied.",
        properties={
            "inbound_webhook_id": {"type": "integer"},
            "request_id": {"type": "integer"},
            "error": {"type": "string"},
            "expression": {"type": ["string", "null"]},
            "rule": {"type": ["string", "null"]},
        },
        required=("inbound_webhook_id", "request_id", "error"),
        example={
            "inbound_webhook_id": 4,
            "request_id": 1234,
            "rule": "new customer",
            "error": "contact.email resolved to null",
            "expression": "data.object.email",
        },
        operational=True,
    ),
    EventType(
        "webhook.disabled",
        "An outbound webhook endpoint was disabled (410 Gone, or failing for too long).",
        properties={
            "webhook_id": {"type": "integer"},
            "url": {
                "type": "string",
                "description": "scheme://host[:port]/… only: path and query are redacted",
            },
            "reason": {"type": "string"},
        },
        required=("webhook_id", "reason"),
        example={
            "webhook_id": 9,
            "url": "https://hooks.example.com/…",
            "reason": "failing since 2026-01-10T09:30:00.000Z",
        },
        operational=True,
    ),
    EventType(
        "delivery.exhausted",
        "A delivery used up its retry schedule without success.",
        properties={
            "webhook_id": {"type": "integer"},
            "delivery_id": {"type": "integer"},
            "message_id": {"type": "string"},
            "event_type": {"type": "string"},
            "attempts": {"type": "integer"},
        },
        required=("webhook_id", "delivery_id", "message_id"),
        example={
            "webhook_id": 9,
            "delivery_id": 5512,
            "message_id": "msg_01",
            "event_type": "contact.created",
            "attempts": 8,
        },
        operational=True,
    ),
)

CATALOG: dict[str, EventType] = {event.name: event for event in EVENT_TYPES}
WILDCARD = "*"


def is_known(name: str) -> bool:
    return name in CATALOG


def subscription_matches(patterns: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``patterns`` receives ``event_type``.

    ``*`` is every business event and ``contact.*`` one family of them; operational events
    (``webhook.disabled``, ``delivery.exhausted``, ``inbound.failed``) only by their name.
    """
    if event_type in patterns:
        return True
    kind = CATALOG.get(event_type)
    if kind is None or kind.operational:
        return False
    return WILDCARD in patterns or event_type.split(".", 1)[0] + ".*" in patterns


def subscription_patterns() -> list[str]:
    """Every value an endpoint may subscribe to: ``*``, each family (``contact.*``) that holds a
    business event, and each event type by name (what the OpenAPI document lists as the enum)."""
    families = sorted(
        {name.split(".", 1)[0] + ".*" for name, kind in CATALOG.items() if not kind.operational}
    )
    return [WILDCARD, *families, *CATALOG]
