"""Typeform: ``Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>``.

No timestamp is signed, so there is no replay window; each response carries an ``event_id`` in
the body, which dedupes retries. The event type is the body's ``event_type`` (``form_response``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from hookhub.inbound.providers.base import (
    NO_OPTIONS,
    Provider,
    RawRequest,
    bounded_key,
    decode_base64,
    hmac_digest,
    text_field,
    verify_prefixed_body_hmac,
)

HEADER = "Typeform-Signature"
PREFIX = "sha256="


class TypeformProvider(Provider):
    name: ClassVar[str] = "typeform"
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "form answered",
            "when": "event_type == 'form_response'",
            "contact": {
                "email": "form_response.answers[?type=='email'].email | [0]",
                # Every answer becomes an attribute named after its field's ref, and every
                # hidden field after its name; refs that are not valid names are skipped.
                "attributes_from": [
                    "from_items(form_response.answers[].[field.ref, text || email || number "
                    "|| date || choice.label || join(', ', choices.labels || `[]`) || url "
                    "|| phone_number || boolean])",
                    "form_response.hidden",
                ],
                "mode": "upsert",
            },
            "event": {
                "name": "form_submitted",
                "properties": {
                    "form_id": "form_response.form_id",
                    "form_title": "form_response.definition.title",
                    "response": "form_response.token",
                },
                "date": "form_response.submitted_at",
            },
        },
    )
    signature_headers: ClassVar[tuple[str, ...]] = (HEADER,)
    replay_window: ClassVar[float | None] = None

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        verify_prefixed_body_hmac(
            request, secret, header=HEADER, prefix=PREFIX, decode=decode_base64, encoding="base64"
        )

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return bounded_key(text_field(payload, "event_id"))

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return text_field(payload, "event_type")

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        digest = base64.b64encode(hmac_digest(secret, body)).decode("ascii")
        return {"Content-Type": "application/json", HEADER: PREFIX + digest}
