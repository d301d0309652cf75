"""Outbound endpoints and deliveries as value objects, and their public JSON shapes.

Secrets (the signing secret, auth tokens and passwords) are never part of ``to_api``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hookhub.core.catalog import subscription_matches
from hookhub.core.jsoncodec import isoformat
from hookhub.core.origin import IgnoreRules, rules_json

MAX_PREVIOUS_SECRETS = 10


def _iso_epoch(value: float | None) -> str | None:
    return None if value is None else isoformat(datetime.fromtimestamp(value, UTC))


@dataclass(slots=True)
class Endpoint:
    id: int
    url: str
    description: str
    event_types: list[str]
    headers: dict[str, str]
    auth: dict[str, str] | None
    secret: str
    previous_secrets: list[tuple[str, float]]
    """Secrets replaced by rotations, newest first, each with when it stops signing."""
    batched: bool
    enabled: bool
    disabled_reason: str | None
    rate_limit: float | None
    max_concurrency: int | None
    failing_since: float | None
    created_at: datetime
    updated_at: datetime
    filter: str | None = None
    """A JMESPath expression over the message: only messages it matches are delivered."""
    transform: dict[str, Any] | None = None
    """``{"preset": name}`` or ``{"template": source}``: the body sent instead of the message."""
    ignore_origins: IgnoreRules = ()
    """Origins whose messages this endpoint never gets (``hookhub.core.origin``)."""
    ordering: str | None = None
    """``"contact"``: one contact's messages are sent one at a time, in order."""
    collapse: dict[str, Any] | None = None
    """``{"event_types": [...], "window_ms": n}``: a contact's bursts become one delivery."""

    def subscribes_to(self, event_type: str) -> bool:
        return subscription_matches(self.event_types, event_type)

    def signing_secrets(self, now: float) -> list[str]:
        """The current secret, plus every replaced one still in its rotation overlap."""
        return [self.secret, *(secret for secret, until in self.previous_secrets if until > now)]

    def rotate(self, new_secret: str, now: float, overlap: float) -> None:
        """Sign with ``new_secret`` from now on; the current one keeps signing for ``overlap``.

        Secrets an earlier rotation left in their overlap stay until their own expiry; expired
        ones are dropped, and at most :data:`MAX_PREVIOUS_SECRETS` are kept (the newest).
        """
        kept = [(secret, until) for secret, until in self.previous_secrets if until > now]
        if overlap > 0:
            kept.insert(0, (self.secret, now + overlap))
        self.previous_secrets = kept[:MAX_PREVIOUS_SECRETS]
        self.secret = new_secret

    def drop_expired_secrets(self, now: float) -> None:
        self.previous_secrets = [(s, until) for s, until in self.previous_secrets if until > now]

    def to_api(self) -> dict[str, Any]:
        auth: dict[str, Any] | None = None
        if self.auth is not None:
            auth = {"type": self.auth["type"]}
            if self.auth["type"] == "basic":
                auth["username"] = self.auth.get("username")
        return {
            "id": self.id,
            "url": self.url,
            "events": self.event_types,
            "description": self.description,
            "headers": self.headers,
            "auth": auth,
            "batched": self.batched,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "rate_limit": self.rate_limit,
            "max_concurrency": self.max_concurrency,
            "filter": self.filter,
            "transform": self.transform,
            "failing_since": _iso_epoch(self.failing_since),
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
            "ignore_origins": rules_json(self.ignore_origins),
            "ordering": self.ordering,
            "collapse": self.collapse,
        }


@dataclass(slots=True)
class Attempt:
    at: float
    status_code: int | None
    duration_ms: float
    error: str | None
    error_detail: str | None
    response_body: str | None

    def to_api(self, *, with_body: bool = True) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "at": _iso_epoch(self.at),
            "status_code": self.status_code,
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error,
            "error_detail": self.error_detail,
        }
        if with_body:
            shape["response_body"] = self.response_body
        return shape


@dataclass(slots=True)
class Delivery:
    id: int
    message_id: str
    endpoint_id: int
    status: str
    attempt_count: int
    next_attempt_at: float | None
    in_flight: bool
    created_at: float
    updated_at: float
    attempts: list[Attempt] = field(default_factory=list)

    def to_api(self, *, with_bodies: bool = True) -> dict[str, Any]:
        """``with_bodies=False`` leaves the attempts' response bodies out (lists)."""
        return {
            "id": self.id,
            "message_id": self.message_id,
            "webhook_id": self.endpoint_id,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "next_attempt_at": _iso_epoch(self.next_attempt_at)
            if self.status in ("pending", "failed")
            else None,
            "in_flight": self.in_flight,
            "created_at": _iso_epoch(self.created_at),
            "updated_at": _iso_epoch(self.updated_at),
            "attempts": [a.to_api(with_body=with_bodies) for a in self.attempts],
        }
