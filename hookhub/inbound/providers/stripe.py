"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`` over ``"{t}." + body``.

The endpoint secret (``whsec_...``) is the HMAC key as-is, not base64-decoded like Standard
Webhooks. Several v1 signatures appear while a secret is being rolled; v0 (test mode) and unknown
schemes are ignored. Events dedupe on their ``id`` (``evt_...``) and are typed by ``type``
(``customer.created``). Options: ``tolerance`` (seconds, default 300, both directions).
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

# Names are optional in Stripe (a customer is often created from an email alone), so each
# split is guarded: split(null) is an error, and a one-word name has no last name.
_FIRST = "{0} && split({0}, ' ')[0]"
_LAST = "{0} && join(' ', split({0}, ' ')[1:]) || `null`"
_CUSTOMER = {
    "email": "data.object.email",
    "attributes": {
        "FIRSTNAME": _FIRST.format("data.object.name"),
        "LASTNAME": _LAST.format("data.object.name"),
        "SMS": "data.object.phone",
        "STRIPE_CUSTOMER_ID": "data.object.id",
    },
    "mode": "upsert",
}


class StripeProvider(TimestampedHexScheme):
    name: ClassVar[str] = "stripe"
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "customer created",
            "when": "type == 'customer.created'",
            "contact": _CUSTOMER,
            "event": {
                "name": "stripe_customer_created",
                "properties": {"customer": "data.object.id", "livemode": "livemode"},
                "date": "created",
            },
        },
        {
            "name": "customer updated",
            "when": "type == 'customer.updated'",
            "contact": _CUSTOMER,
            "event": {
                "name": "stripe_customer_updated",
                "properties": {"customer": "data.object.id", "livemode": "livemode"},
                "date": "created",
            },
        },
        {
            "name": "checkout completed",
            "when": "type == 'checkout.session.completed'",
            "contact": {
                "email": "data.object.customer_details.email || data.object.customer_email",
                "attributes": {
                    "FIRSTNAME": _FIRST.format("data.object.customer_details.name"),
                    "LASTNAME": _LAST.format("data.object.customer_details.name"),
                    "STRIPE_CUSTOMER_ID": "data.object.customer",
                },
                "mode": "upsert",
            },
            "event": {
                "name": "checkout_completed",
                "properties": {
                    "session": "data.object.id",
                    "amount_total": "data.object.amount_total",
                    "currency": "data.object.currency",
                    "payment_status": "data.object.payment_status",
                },
                "date": "created",
            },
        },
    )
    header_name: ClassVar[str] = "Stripe-Signature"
    signature_headers: ClassVar[tuple[str, ...]] = ("Stripe-Signature",)
    replay_window: ClassVar[float | None] = 300.0

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return bounded_key(text_field(payload, "id"))

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return text_field(payload, "type")
