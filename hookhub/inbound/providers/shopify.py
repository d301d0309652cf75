"""Shopify: ``X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>``, keyed with the app secret.

The signature has no timestamp, so there is no replay window; duplicates are caught by
``X-Shopify-Event-Id`` (the same on every retry of one event), falling back to
``X-Shopify-Webhook-Id`` for older API versions. The event type is the ``X-Shopify-Topic`` header
(``orders/create``). Signing options: ``topic`` (default ``orders/create``), ``event_id``,
``webhook_id`` (generated when absent), ``shop_domain``, ``api_version``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from hookhub.core.jsoncodec import isoformat
from hookhub.errors import SignatureInvalid
from hookhub.inbound.providers.base import (
    NO_OPTIONS,
    Provider,
    RawRequest,
    decode_base64,
    header_key,
    hmac_digest,
    matches_any,
    signature_value,
)

HEADER = "X-Shopify-Hmac-Sha256"


class ShopifyProvider(Provider):
    name: ClassVar[str] = "shopify"
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "order placed",
            "event_types": ["orders/create"],
            "contact": {
                "email": "email || customer.email || contact_email",
                "attributes": {
                    "FIRSTNAME": "customer.first_name || billing_address.first_name",
                    "LASTNAME": "customer.last_name || billing_address.last_name",
                    "SMS": "phone || customer.phone",
                    "SHOPIFY_CUSTOMER_ID": "customer.id",
                },
                "mode": "upsert",
            },
            "event": {
                "name": "order_placed",
                "properties": {
                    "order_id": "id",
                    "order_number": "order_number",
                    "total": "to_number(total_price)",
                    "currency": "currency",
                    "items": "line_items[].{title: title, quantity: quantity, "
                    "price: to_number(price), sku: sku, product_id: product_id}",
                },
                "date": "created_at",
            },
        },
        {
            "name": "customer created",
            "event_types": ["customers/create"],
            "contact": {
                "email": "email",
                "attributes": {
                    "FIRSTNAME": "first_name",
                    "LASTNAME": "last_name",
                    "SMS": "phone",
                    "SHOPIFY_CUSTOMER_ID": "id",
                },
                "mode": "upsert",
            },
        },
    )
    signature_headers: ClassVar[tuple[str, ...]] = (HEADER,)
    replay_window: ClassVar[float | None] = None

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        signature = decode_base64(signature_value(request, HEADER))
        if signature is None:
            raise SignatureInvalid(f"The {HEADER} header is not base64.")
        if not matches_any(hmac_digest(secret, request.body), [signature]):
            raise SignatureInvalid(f"The {HEADER} signature does not match the app secret.")

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return header_key(request, "X-Shopify-Event-Id", "X-Shopify-Webhook-Id")

    def dedupes_body(self, options: Mapping[str, Any] = NO_OPTIONS) -> bool:
        return True  # the id header is not signed

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return (request.header("X-Shopify-Topic") or "").strip() or None

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            HEADER: base64.b64encode(hmac_digest(secret, body)).decode("ascii"),
            "X-Shopify-Topic": str(options.get("topic", "orders/create")),
            "X-Shopify-Event-Id": str(options.get("event_id") or uuid.uuid4()),
            "X-Shopify-Webhook-Id": str(options.get("webhook_id") or uuid.uuid4()),
            "X-Shopify-Triggered-At": isoformat(datetime.fromtimestamp(now, UTC)),
        }
        for option, header in (
            ("shop_domain", "X-Shopify-Shop-Domain"),
            ("api_version", "X-Shopify-API-Version"),
        ):
            if options.get(option):
                headers[header] = str(options[option])
        return headers
