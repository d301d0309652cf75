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


class StripeProvider(TimestampedHexScheme):
    name: ClassVar[str] = "stripe"
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
