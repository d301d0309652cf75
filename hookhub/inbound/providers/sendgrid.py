"""SendGrid's Signed Event Webhook: ECDSA (P-256, SHA-256) over ``timestamp + body``.

``X-Twilio-Email-Event-Webhook-Signature`` carries the base64 DER signature and
``X-Twilio-Email-Event-Webhook-Timestamp`` the Unix time it signed, held to the replay window
(``tolerance`` option, default 300 s, both directions). The secret is the verification key as
SendGrid's Mail Settings show it: a base64 DER SubjectPublicKeyInfo (a PEM block is accepted too);
one that is not a P-256 public key is refused when saved (422), never at the first request.
The body is a JSON array of events, many in one request: it dedupes on the events'
``sg_event_id``s, and its type is the events' ``event`` names (``delivered``, or
``delivered,open`` for a mixed batch). Hookhub holds no private key, so it can only sign like
SendGrid with the ``private_key`` signing option (tests, ``hookhub inbound send``).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hookhub.core import jsoncodec
from hookhub.core.signing import check_timestamp
from hookhub.errors import BadRequest, InvalidJSON, SignatureInvalid, ValidationFailed
from hookhub.inbound.providers.base import (
    NO_OPTIONS,
    Provider,
    RawRequest,
    bounded_key,
    decode_base64,
    signature_value,
    text_field,
    tolerance,
)

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
_ECDSA = ec.ECDSA(hashes.SHA256())

# Drops of addresses that cannot receive mail block the contact; SendGrid's other drops
# (an address it holds as unsubscribed or as a complainer, ...) are soft: nothing was sent.
_DEAD_DROPS = '`["Bounced Address", "Invalid", "Invalid SMTPAPI header"]`'


def _report(name: str, when: str, **fields: str) -> dict[str, Any]:
    find = {"message_id": '"smtp-id"', "email": "email"}
    return {"name": name, "for_each": "@", "when": when, "email_event": {**fields, **find}}


def _der(text: str, kind: str) -> bytes:
    """The DER bytes of a base64 key, or of a PEM block's body."""
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    der = decode_base64("".join(body.split()))
    if not der:
        raise ValidationFailed(
            f"The {kind} must be base64 (DER), as SendGrid shows it.", details={"field": "secret"}
        )
    return der


@functools.lru_cache(maxsize=256)  # every request verifies; a key is parsed once
def public_key(secret: str) -> ec.EllipticCurvePublicKey:
    """The P-256 verification key in ``secret``; ValidationFailed says what is wrong with it."""
    der = _der(secret, "verification key")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValidationFailed(
            "The verification key is not a public key (base64 DER SubjectPublicKeyInfo).",
            details={"field": "secret"},
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValidationFailed(
            f"The verification key is not an elliptic-curve key ({type(key).__name__}); "
            "SendGrid's is ECDSA P-256.",
            details={"field": "secret"},
        )
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValidationFailed(
            f"The verification key is on curve {key.curve.name}; SendGrid's is P-256.",
            details={"field": "secret"},
        )
    return key


def _private_key(text: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_der_private_key(_der(text, "private key"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, ValidationFailed) as exc:
        raise BadRequest("The private_key option is not a PKCS#8 private key.") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadRequest("The private_key option is not an elliptic-curve key.")
    return key


def _events(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, list):
        return []
    return [event for event in payload if isinstance(event, dict)]


class SendGridProvider(Provider):
    name: ClassVar[str] = "sendgrid"
    # Each event of the batch, in the batch's order, applied to its email (DESIGN.md, "Email
    # provider events"). Opens and clicks carry no smtp-id: found by their recipient.
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        _report(
            "processed, deferred: SendGrid's own progress, nothing to record",
            "event == 'processed' || event == 'deferred'",
            type="`null`",
        ),
        _report("delivered", "event == 'delivered'", type="'delivered'"),
        _report(
            "bounce: hard",
            "event == 'bounce' && type != 'blocked'",
            type="'bounced'",
            bounce_type="'hard'",
            reason="reason",
        ),
        _report(
            "blocked: soft bounce",
            "event == 'bounce' && type == 'blocked'",
            type="'bounced'",
            bounce_type="'soft'",
            reason="reason",
        ),
        _report(
            "dropped",
            "event == 'dropped'",
            type="'bounced'",
            bounce_type=f"contains({_DEAD_DROPS}, reason) && 'hard' || 'soft'",
            reason="join(': ', ['dropped by SendGrid', reason || 'no reason given'])",
        ),
        _report("spam report", "event == 'spamreport'", type="'complained'"),
        _report("opened", "event == 'open'", type="'opened'", proxy="sg_machine_open"),
        _report("clicked", "event == 'click'", type="'clicked'", url="url"),
        _report(
            "unsubscribed",
            "event == 'unsubscribe' || event == 'group_unsubscribe'",
            type="'unsubscribed'",
        ),
    )
    signature_headers: ClassVar[tuple[str, ...]] = (SIGNATURE, TIMESTAMP)
    replay_window: ClassVar[float | None] = 300.0
    echoes_secret: ClassVar[bool] = False

    def check_secret(self, secret: str | None, options: Mapping[str, Any] = NO_OPTIONS) -> None:
        if secret is None:
            raise ValidationFailed(
                "A sendgrid source needs the Signed Event Webhook's verification key as its "
                "secret (SendGrid: Settings, Mail Settings, Event Webhook).",
                details={"field": "secret"},
            )
        public_key(secret)

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        key = public_key(secret)
        window = tolerance(options, self.replay_window)
        signature = decode_base64(signature_value(request, SIGNATURE))
        if not signature:
            raise SignatureInvalid(f"The {SIGNATURE} header is not base64.")
        timestamp = signature_value(request, TIMESTAMP)
        check_timestamp(timestamp, now, window, header=TIMESTAMP)
        try:
            key.verify(signature, timestamp.encode("ascii") + request.body, _ECDSA)
        except (InvalidSignature, ValueError) as exc:
            raise SignatureInvalid("The signature does not match the verification key.") from exc

    def parse(self, request: RawRequest) -> Any:
        payload = jsoncodec.loads(request.body)
        if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
            raise InvalidJSON("The body must be a JSON array of event objects.")
        return payload

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        ids = [text_field(event, "sg_event_id") for event in _events(payload)]
        if not ids or None in ids:
            return None  # without every event's id, two different batches could collide
        return bounded_key(",".join(str(i) for i in ids))

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        names = dict.fromkeys(text_field(event, "event") for event in _events(payload))
        return ",".join(name for name in names if name) or None

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        """Needs the ``private_key`` option (base64 DER PKCS#8, or PEM): SendGrid keeps its own."""
        text = options.get("private_key")
        if not isinstance(text, str) or not text:
            raise BadRequest(
                "Signing like SendGrid needs its private key (the private_key option): "
                "the webhook's secret is only the public half."
            )
        timestamp = str(int(now))
        signature = _private_key(text).sign(timestamp.encode("ascii") + body, _ECDSA)
        return {
            "Content-Type": "application/json",
            SIGNATURE: base64.b64encode(signature).decode("ascii"),
            TIMESTAMP: timestamp,
        }
