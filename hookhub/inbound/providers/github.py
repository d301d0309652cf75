"""GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.

No timestamp is signed, so there is no replay window; ``X-GitHub-Delivery`` (a GUID, the same
on redelivery) dedupes. The event type is ``X-GitHub-Event`` plus ``.<action>`` when the payload
has one (``push``, ``issues.opened``). Bodies are JSON, or a form whose ``payload`` field is the
JSON (the "application/x-www-form-urlencoded" content type of GitHub's hook settings).
Signing options: ``event`` (default ``push``), ``delivery`` (generated when absent).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from hookhub.errors import InvalidJSON
from hookhub.inbound.providers.base import (
    FORM,
    NO_OPTIONS,
    Provider,
    RawRequest,
    decode_hex,
    form_fields,
    header_key,
    hmac_digest,
    json_object,
    text_field,
    verify_prefixed_body_hmac,
)

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


class GitHubProvider(Provider):
    name: ClassVar[str] = "github"
    # Of GitHub's events only a push names a person by email (the pusher's, which may be a
    # users.noreply.github.com address); the others name accounts by login alone.
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "pushed",
            "event_types": ["push"],
            "contact": {
                "email": "pusher.email",
                "attributes": {"GITHUB_LOGIN": "sender.login"},
                "mode": "upsert",
            },
            "event": {
                "name": "github_push",
                "properties": {
                    "repository": "repository.full_name",
                    "ref": "ref",
                    "commits": "length(commits || `[]`)",
                    "head": "after",
                },
                "date": "head_commit.timestamp",
            },
        },
    )
    signature_headers: ClassVar[tuple[str, ...]] = (HEADER,)
    replay_window: ClassVar[float | None] = None

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        verify_prefixed_body_hmac(
            request, secret, header=HEADER, prefix=PREFIX, decode=decode_hex, encoding="hexadecimal"
        )

    def parse(self, request: RawRequest) -> Any:
        if request.media_type != FORM:
            return json_object(request.body)
        payloads = [value for key, value in form_fields(request.body) if key == "payload"]
        if len(payloads) != 1:
            raise InvalidJSON("A form-encoded GitHub body needs exactly one 'payload' field.")
        return json_object(payloads[0].encode("utf-8"))

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return header_key(request, "X-GitHub-Delivery")

    def dedupes_body(self, options: Mapping[str, Any] = NO_OPTIONS) -> bool:
        return True  # the id header is not signed

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        event = (request.header("X-GitHub-Event") or "").strip()
        if not event:
            return None
        action = text_field(payload, "action")
        return f"{event}.{action}" if action else event

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        legacy = hmac_digest(secret, body, "sha1").hex()
        return {
            "Content-Type": "application/json",
            "X-GitHub-Event": str(options.get("event", "push")),
            "X-GitHub-Delivery": str(options.get("delivery") or uuid.uuid4()),
            "X-Hub-Signature": f"sha1={legacy}",
            HEADER: PREFIX + hmac_digest(secret, body).hex(),
        }
