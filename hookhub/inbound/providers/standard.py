"""Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>``.

Verification is :func:`hookhub.core.signing.verify` (the same code that signs Hookhub's own
deliveries), so any sender using the ``standardwebhooks`` or ``svix`` libraries works. The secret
is a ``whsec_`` secret; several, separated by spaces, are all accepted (a sender rotating its
secret). ``webhook-id`` dedupes; the event type is the payload's ``type``.
Options: ``tolerance`` (seconds, default 300, both directions); signing: ``msg_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hookhub import ids
from hookhub.core import signing
from hookhub.inbound.providers.base import (
    NO_OPTIONS,
    Provider,
    RawRequest,
    header_key,
    signature_value,
    text_field,
    tolerance,
)


class StandardWebhooksProvider(Provider):
    name: ClassVar[str] = "standard"
    # Senders share the signature scheme, not a payload shape; the one shape known here is
    # Hookhub's own (DESIGN.md, "Outbound event catalog"), so one Hookhub can feed another.
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "contact from Hookhub",
            "event_types": ["contact.created", "contact.updated"],
            "contact": {
                "email": "data.email",
                "attributes_from": ["data.attributes"],
                "mode": "upsert",
            },
        },
    )
    signature_headers: ClassVar[tuple[str, ...]] = (
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    )
    replay_window: ClassVar[float | None] = signing.DEFAULT_TOLERANCE

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        headers = {
            "webhook-id": request.single_header("webhook-id"),
            "webhook-timestamp": request.single_header("webhook-timestamp"),
            "webhook-signature": signature_value(request, "webhook-signature"),
        }
        window = tolerance(options, self.replay_window)
        signing.verify(secret.split(), headers, request.body, now, window)

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return header_key(request, "webhook-id")

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return text_field(payload, "type")

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        msg_id = str(options.get("msg_id") or ids.message_id(now))
        headers = signing.headers(secret.split(), msg_id, int(now), body)
        return {"Content-Type": "application/json", **headers}
