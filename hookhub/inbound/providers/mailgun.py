"""Mailgun: the signature travels in the JSON body, ``{"signature": {timestamp, token, signature},
"event-data": {...}}``, as hex HMAC-SHA256 of ``timestamp + token`` keyed with the domain's HTTP
webhook signing key.

Mailgun signs the timestamp and a random token, not the event, so a captured signature could
carry another event: the timestamp is held to the replay window (``tolerance`` option, default
300 s, both directions) and each token is taken once (its ``token:`` key is claimed besides the
event's id, :meth:`MailgunProvider.body_key`). Events dedupe on ``event-data.id`` (the same on
Mailgun's retries) and are typed by ``event-data.event`` (``delivered``, ``failed``, ``opened``,
``clicked``, ``complained``, ``unsubscribed``). A subaccount's ``parent-signature`` is not
checked: the secret is the key of the account that owns the webhook.
The body is parsed to find the signature; that is the one parse before verification, and
whatever it meets is a 401.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

from hookhub.core import jsoncodec
from hookhub.core.signing import check_timestamp
from hookhub.errors import HookhubError, SignatureInvalid, ValidationFailed
from hookhub.inbound.providers.base import (
    NO_OPTIONS,
    Provider,
    RawRequest,
    bounded_key,
    decode_hex,
    hmac_digest,
    json_object,
    matches_any,
    text_field,
    tolerance,
)

MAX_TOKEN = 256  # Mailgun's tokens are 50 characters
_FIND = {
    "message_id": '"event-data".message.headers."message-id"',
    "email": '"event-data".recipient',
}
_REASON = (
    '"event-data"."delivery-status".message || "event-data"."delivery-status".description '
    '|| "event-data".reason'
)


def _report(name: str, event: str, when: str | None = None, **fields: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name, "event_types": [event]}
    if when is not None:
        rule["when"] = when
    rule["email_event"] = {**fields, **_FIND}
    return rule


def _signature_block(body: bytes) -> tuple[str, str, bytes]:
    """``(timestamp, token, signature)`` from the body; anything malformed is SignatureInvalid."""
    try:
        payload = json_object(body)
    except HookhubError as exc:
        raise SignatureInvalid("The body is no JSON object with Mailgun's signature.") from exc
    block = payload.get("signature")
    if not isinstance(block, dict):
        raise SignatureInvalid("The body's signature object is missing.")
    fields: list[str] = []
    for name in ("timestamp", "token", "signature"):
        value = block.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and name == "timestamp":
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise SignatureInvalid(f"The signature's {name} is missing.")
        if len(value) > MAX_TOKEN or not value.isascii():
            raise SignatureInvalid(f"The signature's {name} is malformed.")
        fields.append(value)
    signature = decode_hex(fields[2])
    if signature is None:
        raise SignatureInvalid("The signature is not hex.")
    return fields[0], fields[1], signature


class MailgunProvider(Provider):
    name: ClassVar[str] = "mailgun"
    # Every event Mailgun reports about a sent email, applied to that email (DESIGN.md,
    # "Email provider events"): a permanent failure is a hard bounce, a temporary one soft.
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        _report("delivered", "delivered", type="'delivered'"),
        _report(
            "failed permanently: hard bounce",
            "failed",
            "\"event-data\".severity != 'temporary'",
            type="'bounced'",
            bounce_type="'hard'",
            reason=_REASON,
        ),
        _report(
            "failed temporarily: soft bounce",
            "failed",
            "\"event-data\".severity == 'temporary'",
            type="'bounced'",
            bounce_type="'soft'",
            reason=_REASON,
        ),
        _report("complained", "complained", type="'complained'"),
        _report("opened", "opened", type="'opened'"),
        _report("clicked", "clicked", type="'clicked'", url='"event-data".url'),
        _report("unsubscribed", "unsubscribed", type="'unsubscribed'"),
    )
    signature_headers: ClassVar[tuple[str, ...]] = ()  # the signature is in the body
    replay_window: ClassVar[float | None] = 300.0
    echoes_secret: ClassVar[bool] = False

    def check_secret(self, secret: str | None, options: Mapping[str, Any] = NO_OPTIONS) -> None:
        if not secret or not secret.strip():
            raise ValidationFailed(
                "A mailgun source needs Mailgun's HTTP webhook signing key as its secret "
                "(Mailgun's dashboard: Sending, Webhooks).",
                details={"field": "secret"},
            )

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        window = tolerance(options, self.replay_window)
        timestamp, token, signature = _signature_block(request.body)
        check_timestamp(timestamp, now, window, header="signature")
        expected = hmac_digest(secret, (timestamp + token).encode("ascii"))
        if not matches_any(expected, [signature]):
            raise SignatureInvalid("The signature does not match the webhook signing key.")

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return bounded_key(text_field(payload, "event-data", "id"))

    def dedupes_body(self, options: Mapping[str, Any] = NO_OPTIONS) -> bool:
        return True  # on the token: the signature does not cover the event

    def body_key(self, request: RawRequest, payload: Any) -> str | None:
        token = text_field(payload, "signature", "token")
        return bounded_key("token:" + token) if token else super().body_key(request, payload)

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return text_field(payload, "event-data", "event")

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        """Mailgun sends no signature header; :meth:`signed_request` writes it into the body."""
        return {"Content-Type": "application/json"}

    def signed_request(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> tuple[bytes, dict[str, str]]:
        """``body`` with a fresh ``signature`` object (options: ``token``), as Mailgun posts it."""
        payload = json_object(body)
        timestamp = str(int(now))
        token = str(options.get("token") or secrets.token_hex(25))
        digest = hmac_digest(secret, (timestamp + token).encode("ascii")).hex()
        payload["signature"] = {"timestamp": timestamp, "token": token, "signature": digest}
        return jsoncodec.dumps(payload), self.sign(body, secret, now, options)
