"""Postmark: it signs nothing, so the secret is basic auth, ``user:password``, which Postmark sends
in ``Authorization: Basic ...`` when the webhook URL is ``https://user:password@host/in/<token>``.

The credentials are compared in constant time; no timestamp is sent, so there is no replay
window. A webhook created without a secret gets generated credentials (shown once). Events are
typed by ``RecordType`` (``Delivery``, ``Bounce``, ``SpamComplaint``, ``Open``, ``Click``,
``SubscriptionChange``); bounces and complaints dedupe on their ``ID``, the others on what stays
the same on each retry of one event (message, recipient, time, and the link of a click).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from hookhub.errors import SignatureInvalid, ValidationFailed
from hookhub.inbound.providers.base import (
    NO_OPTIONS,
    Provider,
    RawRequest,
    bounded_key,
    decode_base64,
    matches_any,
    signature_value,
    text_field,
)

HEADER = "Authorization"
# What identifies one event of each record type, whatever the number of retries.
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "Bounce": ("ID",),
    "SpamComplaint": ("ID",),
    "Delivery": ("MessageID", "Recipient", "DeliveredAt"),
    "Open": ("MessageID", "Recipient", "ReceivedAt"),
    "Click": ("MessageID", "Recipient", "ReceivedAt", "OriginalLink"),
    "SubscriptionChange": ("MessageID", "Recipient", "ChangedAt"),
}

# Bounce types (the Bounce record's Type): the address is gone, or the message merely failed;
# the others (an auto-responder, an address change, ...) are no failure of the email.
_HARD = '`["HardBounce", "BadEmailAddress", "ManuallyDeactivated"]`'
_NOT_BOUNCES = (
    '`["HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unsubscribe", "Subscribe", '
    '"AutoResponder", "AddressChange", "OpenRelayTest", "SpamComplaint"]`'
)


def _report(name: str, record: str, when: str | None = None, **fields: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name, "event_types": [record]}
    if when is not None:
        rule["when"] = when
    rule["email_event"] = {**fields, "message_id": "MessageID", "email": "Recipient || Email"}
    return rule


def _credentials(secret: str) -> bytes:
    user, sep, password = secret.partition(":")
    if not sep or not user or not password:
        raise ValidationFailed(
            "A postmark source's secret is the basic-auth 'user:password' of its webhook URL.",
            details={"field": "secret"},
        )
    return secret.encode("utf-8")


class PostmarkProvider(Provider):
    name: ClassVar[str] = "postmark"
    # Every record type Postmark posts about a sent email, applied to that email (DESIGN.md,
    # "Email provider events"). Postmark's MessageID is its own, not the Message-ID header, so
    # the email is mostly found by its recipient.
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        _report("delivered", "Delivery", type="'delivered'"),
        _report(
            "hard bounce",
            "Bounce",
            f"contains({_HARD}, Type)",
            type="'bounced'",
            bounce_type="'hard'",
            reason="Details || Description",
        ),
        _report(
            "soft bounce",
            "Bounce",
            f"!contains({_NOT_BOUNCES}, Type)",
            type="'bounced'",
            bounce_type="'soft'",
            reason="Details || Description",
        ),
        _report("unsubscribe request", "Bounce", "Type == 'Unsubscribe'", type="'unsubscribed'"),
        _report("spam complaint", "SpamComplaint", type="'complained'"),
        _report("opened", "Open", type="'opened'"),
        _report("clicked", "Click", type="'clicked'", url="OriginalLink"),
        _report(
            "unsubscribed",
            "SubscriptionChange",
            "SuppressSending == `true` && SuppressionReason == 'ManualSuppression'",
            type="'unsubscribed'",
        ),
    )
    signature_headers: ClassVar[tuple[str, ...]] = (HEADER,)
    replay_window: ClassVar[float | None] = None
    echoes_secret: ClassVar[bool] = False

    def check_secret(self, secret: str | None, options: Mapping[str, Any] = NO_OPTIONS) -> None:
        if secret is not None:
            _credentials(secret)

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        expected = _credentials(secret)
        scheme, _, token = signature_value(request, HEADER).partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            raise SignatureInvalid("The Authorization header must be 'Basic <credentials>'.")
        offered = decode_base64(token)
        if offered is None or not matches_any(expected, [offered]):
            raise SignatureInvalid("The basic-auth credentials are wrong.")

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        record = text_field(payload, "RecordType")
        fields = _KEY_FIELDS.get(record or "")
        if record is None or fields is None:
            return None
        values = [text_field(payload, field) for field in fields]
        if any(value is None for value in values):
            return None
        return bounded_key(":".join([record, *(str(value) for value in values)]))

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return text_field(payload, "RecordType")

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        encoded = base64.b64encode(_credentials(secret)).decode("ascii")
        return {"Content-Type": "application/json", HEADER: f"Basic {encoded}"}
