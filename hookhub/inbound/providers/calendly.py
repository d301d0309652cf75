"""Calendly: ``Calendly-Webhook-Signature: t=<unix>,v1=<hex>`` over ``"{t}." + body``.

The same scheme as Stripe, keyed with the subscription's signing key, with Calendly's suggested
three-minute replay window. Calendly sends no event id, so the dedupe key is derived from what
stays the same on every retry of one event: its name, the resource URI and the event's
``created_at`` (``invitee.created`` and a later ``invitee.canceled`` of the same invitee differ).
Options: ``tolerance`` (seconds, default 180, both directions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hookhub.inbound.providers.base import (
    NO_OPTIONS,
    RawRequest,
    TimestampedHexScheme,
    bounded_key,
    text_field,
)


class CalendlyProvider(TimestampedHexScheme):
    name: ClassVar[str] = "calendly"
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "meeting booked",
            "when": "event == 'invitee.created'",
            "contact": {
                "email": "payload.email",
                "attributes": {
                    # first_name is null when the event type asks for one "name" field.
                    "FIRSTNAME": "payload.first_name "
                    "|| payload.name && split(payload.name, ' ')[0]",
                    "LASTNAME": "payload.last_name",
                },
                "mode": "upsert",
            },
            "event": {
                "name": "meeting_booked",
                "properties": {
                    "meeting": "payload.scheduled_event.name",
                    "start_time": "payload.scheduled_event.start_time",
                    "end_time": "payload.scheduled_event.end_time",
                    "invitee": "payload.uri",
                    "timezone": "payload.timezone",
                    "utm_source": "payload.tracking.utm_source",
                    "utm_campaign": "payload.tracking.utm_campaign",
                },
                "date": "payload.created_at",
            },
        },
        {
            "name": "meeting canceled",
            "when": "event == 'invitee.canceled'",
            "contact": {"email": "payload.email", "mode": "upsert"},
            "event": {
                "name": "meeting_canceled",
                "properties": {
                    "meeting": "payload.scheduled_event.name",
                    "start_time": "payload.scheduled_event.start_time",
                    "invitee": "payload.uri",
                    "reason": "payload.cancellation.reason",
                },
                "date": "payload.updated_at",
            },
        },
    )
    header_name: ClassVar[str] = "Calendly-Webhook-Signature"
    signature_headers: ClassVar[tuple[str, ...]] = ("Calendly-Webhook-Signature",)
    replay_window: ClassVar[float | None] = 180.0

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        event = text_field(payload, "event")
        uri = text_field(payload, "payload", "uri")
        created_at = text_field(payload, "created_at")
        if event is None or uri is None or created_at is None:
            return None
        return bounded_key(f"{event}:{created_at}:{uri}")

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return text_field(payload, "event")
