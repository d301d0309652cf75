"""Managing outbound endpoints and their deliveries: what ``/api/v1/webhooks`` does.

Validation of what users send (URL, event types, headers, auth) happens here so that the API,
the CLI and the dashboard apply the same rules. Secrets are generated here and only leave
through ``create``, ``rotate_secret`` and ``secret`` answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from hookhub import ids
from hookhub.config import Settings
from hookhub.core import jsoncodec
from hookhub.core.catalog import CATALOG, WILDCARD
from hookhub.core.origin import ignored_json, parse_ignore_origins
from hookhub.core.urlguard import DestinationPolicy, check_url
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.outbound.filters import matches, validate_filter
from hookhub.outbound.keying import validate_collapse, validate_ordering
from hookhub.outbound.outbox import Outbox, build_message
from hookhub.outbound.preview import preview
from hookhub.outbound.transforms import validate_transform
from hookhub.records.outbound import Delivery, Endpoint
from hookhub.store.database import Database, after_commit
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.endpoints import EndpointStore
from hookhub.store.messages import MessageStore

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}\Z")
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "authorization",
        "connection",
        "transfer-encoding",
    }
)
MAX_HEADERS = 20
# HTTP field values allow tab but no other control character; the sender would refuse them on
# every attempt, so they are refused here, once, with a clear error.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NOT_RETRIED = {
    "waiting": "The delivery waits for the contact's earlier delivery to finish (ordering).",
    "collapsed": "The message was merged into its burst's delivery (collapse); retry that one.",
}
_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{32,}={0,2}\Z")


def _known_pattern(event: str) -> bool:
    if event == WILDCARD or event in CATALOG:
        return True
    # A family pattern never matches operational events, so one that names only those (e.g.
    # "webhook.*") would silently match nothing.
    return event.endswith(".*") and any(
        name.startswith(event[:-1]) and not kind.operational for name, kind in CATALOG.items()
    )


def validate_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events:
        raise ValidationFailed(
            "events must be a non-empty list of event types.", details={"field": "events"}
        )
    unknown = []
    for event in events:
        if not isinstance(event, str):
            unknown.append(repr(event))
        elif not _known_pattern(event):
            unknown.append(event)
    if unknown:
        raise ValidationFailed(
            f"Unknown event types: {', '.join(unknown[:10])}. See GET /api/v1/event-types.",
            details={"field": "events", "unknown": unknown[:50]},
        )
    return list(dict.fromkeys(events))


def validate_headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping) or len(headers) > MAX_HEADERS:
        raise ValidationFailed(
            f"headers must be an object of at most {MAX_HEADERS} headers.",
            details={"field": "headers"},
        )
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValidationFailed(
                f"{name!r} is not a valid header name.", details={"field": "headers"}
            )
        if name.lower() in RESERVED_HEADERS:
            raise ValidationFailed(
                f"Header {name} is set by Hookhub (use auth for credentials).",
                details={"field": "headers", "header": name},
            )
        if not isinstance(value, str) or len(value) > 4096 or _CONTROL.search(value):
            raise ValidationFailed(
                f"Header {name} must be a single-line string without control characters.",
                details={"field": "headers", "header": name},
            )
        clean[name] = value
    return clean


def validate_auth(auth: Any) -> dict[str, str] | None:
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        raise ValidationFailed("auth must be an object.", details={"field": "auth"})
    kind = auth.get("type")
    if kind == "bearer":
        token = auth.get("token")
        if not isinstance(token, str) or not token or len(token) > 4096 or not token.isprintable():
            raise ValidationFailed(
                "auth.token must be a non-empty printable string.", details={"field": "auth.token"}
            )
        return {"type": "bearer", "token": token}
    if kind == "basic":
        username, password = auth.get("username"), auth.get("password")
        if (
            not isinstance(username, str)
            or not username
            or ":" in username
            or not username.isprintable()
            or len(username) > 1024
        ):
            raise ValidationFailed(
                "auth.username must be a printable string without ':'.",
                details={"field": "auth.username"},
            )
        if not isinstance(password, str) or not password.isprintable() or len(password) > 4096:
            raise ValidationFailed(
                "auth.password must be a printable string.", details={"field": "auth.password"}
            )
        return {"type": "basic", "username": username, "password": password}
    raise ValidationFailed("auth.type must be 'bearer' or 'basic'.", details={"field": "auth"})


def validate_secret(secret: Any) -> str:
    if not isinstance(secret, str) or not _SECRET.match(secret):
        raise ValidationFailed(
            "secret must be whsec_ followed by base64 of at least 24 bytes.",
            details={"field": "secret"},
        )
    return secret


def _ignored(messages: MessageStore, message_id: str, endpoint: Endpoint) -> bool:
    """Whether ``endpoint``'s ignore_origins match the stored message's origin (read from
    its payload: recover has no in-memory message)."""
    if not endpoint.ignore_origins:
        return False
    row = messages.get(message_id)
    return row is not None and ignored_json(
        endpoint.ignore_origins, jsoncodec.loads(row.payload).get("origin")
    )


def _about_endpoint(
    messages: MessageStore, message_id: str, event_type: str, endpoint_id: int
) -> bool:
    """Whether an operational message is about ``endpoint_id``, which must never receive it.

    Fan-out knows this when it runs; afterwards only the payload's ``webhook_id`` tells.
    """
    kind = CATALOG.get(event_type)
    if kind is None or not kind.operational:
        return False
    row = messages.get(message_id)
    if row is None:
        return False
    data = jsoncodec.loads(row.payload).get("data")
    return isinstance(data, dict) and data.get("webhook_id") == endpoint_id


def _passes_filter(messages: MessageStore, message_id: str, endpoint: Endpoint) -> bool:
    """Whether a backfilled message passes the endpoint's filter (as fan-out would decide)."""
    if endpoint.filter is None:
        return True
    row = messages.get(message_id)
    if row is None:
        return False
    parsed = jsoncodec.loads(row.payload)
    return matches(endpoint.filter, parsed, webhook_id=endpoint.id, message_id=message_id)


class EndpointService:
    def __init__(self, db: Database, outbox: Outbox, settings: Settings) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.policy = DestinationPolicy(settings.allow_private_destinations)

    def _check_url(self, url: Any) -> str:
        if not isinstance(url, str):
            raise ValidationFailed("url must be a string.", details={"field": "url"})
        return check_url(url, policy=self.policy).url

    def _wake_after(self, conn: Connection) -> None:
        after_commit(conn, self.outbox.committed)

    @staticmethod
    def _require(store: EndpointStore, endpoint_id: int, *, lock: bool = False) -> Endpoint:
        endpoint = store.get(endpoint_id, lock=lock, listed_only=True)
        if endpoint is None:
            raise NotFound(f"No webhook {endpoint_id}.", details={"webhook_id": endpoint_id})
        return endpoint

    def create(self, spec: Mapping[str, Any]) -> Endpoint:
        now = datetime.now(UTC)
        batched = bool(spec.get("batched", False))
        endpoint = Endpoint(
            id=0,
            url=self._check_url(spec.get("url")),
            description=str(spec.get("description") or ""),
            event_types=validate_events(spec.get("events")),
            headers=validate_headers(spec.get("headers")),
            auth=validate_auth(spec.get("auth")),
            secret=validate_secret(spec["secret"]) if spec.get("secret") else ids.webhook_secret(),
            previous_secrets=[],
            batched=batched,
            enabled=bool(spec.get("enabled", True)),
            disabled_reason=None,
            rate_limit=spec.get("rate_limit"),
            max_concurrency=spec.get("max_concurrency"),
            failing_since=None,
            created_at=now,
            updated_at=now,
            filter=validate_filter(spec.get("filter")),
            transform=validate_transform(spec.get("transform"), batched=batched),
            ignore_origins=parse_ignore_origins(spec.get("ignore_origins") or []),
            ordering=validate_ordering(spec.get("ordering")),
            collapse=validate_collapse(spec.get("collapse")),
        )
        with self.db.write() as conn:
            endpoint.id = EndpointStore(conn).insert(endpoint)
        return endpoint

    def get(self, endpoint_id: int) -> Endpoint:
        with self.db.read() as conn:
            return self._require(EndpointStore(conn), endpoint_id)

    def page(self, *, after_id: int | None, limit: int) -> list[Endpoint]:
        with self.db.read() as conn:
            return EndpointStore(conn).page(after_id=after_id, limit=limit)

    def update(self, endpoint_id: int, changes: Mapping[str, Any]) -> Endpoint:
        with self.db.write() as conn:
            store = EndpointStore(conn)
            endpoint = self._require(store, endpoint_id, lock=True)
            if "url" in changes:
                endpoint.url = self._check_url(changes["url"])
            if "events" in changes:
                endpoint.event_types = validate_events(changes["events"])
            if "description" in changes:
                endpoint.description = str(changes["description"] or "")
            if "headers" in changes:
                endpoint.headers = validate_headers(changes["headers"])
            if "auth" in changes:
                endpoint.auth = validate_auth(changes["auth"])
            if "ignore_origins" in changes:  # null clears
                endpoint.ignore_origins = parse_ignore_origins(changes["ignore_origins"] or [])
            if changes.get("batched") is not None:  # null means "leave as is", like enabled
                endpoint.batched = bool(changes["batched"])
            if "filter" in changes:  # null clears it
                endpoint.filter = validate_filter(changes["filter"])
            if "transform" in changes or "batched" in changes:
                transform = changes.get("transform", endpoint.transform)
                endpoint.transform = validate_transform(transform, batched=endpoint.batched)
            if "ordering" in changes:  # null clears it
                endpoint.ordering = validate_ordering(changes["ordering"])
            if "collapse" in changes:  # null clears it
                endpoint.collapse = validate_collapse(changes["collapse"])
            for field in ("rate_limit", "max_concurrency"):  # null clears these
                if field in changes:
                    setattr(endpoint, field, changes[field])
            if "enabled" in changes and changes["enabled"] is not None:
                enabled = bool(changes["enabled"])
                if enabled and not endpoint.enabled:
                    endpoint.disabled_reason = None
                    endpoint.failing_since = None
                    self._wake_after(conn)
                elif not enabled and endpoint.enabled:
                    endpoint.disabled_reason = "disabled through the API"
                endpoint.enabled = enabled
            endpoint.updated_at = datetime.now(UTC)
            endpoint.drop_expired_secrets(endpoint.updated_at.timestamp())
            store.save(endpoint)
        return endpoint

    def delete(self, endpoint_id: int) -> None:
        with self.db.write() as conn:
            if not EndpointStore(conn).delete(endpoint_id, listed_only=True):
                raise NotFound(f"No webhook {endpoint_id}.", details={"webhook_id": endpoint_id})

    def rotate_secret(self, endpoint_id: int, new_secret: str | None = None) -> Endpoint:
        """A new secret signs from now on; the replaced ones keep signing for their overlap."""
        with self.db.write() as conn:
            store = EndpointStore(conn)
            endpoint = self._require(store, endpoint_id, lock=True)
            now = datetime.now(UTC)
            endpoint.rotate(
                validate_secret(new_secret) if new_secret else ids.webhook_secret(),
                now.timestamp(),
                self.settings.secret_rotation_overlap,
            )
            endpoint.updated_at = now
            store.save(endpoint)
        return endpoint

    def preview(
        self, endpoint_id: int, *, event_type: str | None, message_id: str | None
    ) -> dict[str, Any]:
        """The body and headers a delivery of the example or message would carry."""
        endpoint = self.get(endpoint_id)
        return preview(self.db, endpoint, event_type=event_type, message_id=message_id)

    def send_test(self, endpoint_id: int, event_type: str) -> tuple[str, int]:
        kind = CATALOG.get(event_type)
        if kind is None:
            raise ValidationFailed(
                f"Unknown event type {event_type!r}.", details={"field": "event_type"}
            )
        with self.db.write() as conn:
            endpoint = self._require(EndpointStore(conn), endpoint_id)
            now = datetime.now(UTC)
            message = build_message(event_type, dict(kind.example), now)
            self.outbox.writer(conn).write_test_send(message)
            deliveries = DeliveryStore(conn)
            at = now.timestamp()
            deliveries.insert_many(
                [
                    {
                        "message_id": message.id,
                        "endpoint_id": endpoint.id,
                        "next_attempt_at": at,
                        "created_at": at,
                    }
                ]
            )
            [delivery] = deliveries.page(message_id=message.id, limit=1)
        return message.id, delivery.id

    def recover(self, endpoint_id: int, since: datetime, until: datetime | None) -> dict[str, int]:
        """Requeue failed and exhausted deliveries since a time, and backfill missed messages."""
        now = datetime.now(UTC)
        end = until or now
        if end <= since:
            raise ValidationFailed("until must be after since.", details={"field": "until"})
        with self.db.write() as conn:
            endpoint = self._require(EndpointStore(conn), endpoint_id)
            deliveries = DeliveryStore(conn)
            at = now.timestamp()
            requeued = deliveries.requeue_failed(
                endpoint_id, since.timestamp(), end.timestamp(), at
            )
            messages = MessageStore(conn)
            subscribed = [
                row.id
                for row in messages.created_between(since, end)
                if endpoint.subscribes_to(row.type)
                and not _about_endpoint(messages, row.id, row.type, endpoint.id)
                and _passes_filter(messages, row.id, endpoint)
                and not _ignored(messages, row.id, endpoint)
            ]
            backfilled = deliveries.backfill(endpoint_id, message_ids=subscribed, now=at)
            if requeued or backfilled:
                self._wake_after(conn)
        return {"requeued": requeued, "backfilled": backfilled}

    def retry_delivery(self, delivery_id: int) -> Delivery:
        with self.db.write() as conn:
            deliveries = DeliveryStore(conn)
            if not deliveries.requeue(delivery_id, datetime.now(UTC).timestamp()):
                found = deliveries.get(delivery_id)
                if found is None:
                    raise NotFound(
                        f"No delivery {delivery_id}.", details={"delivery_id": delivery_id}
                    )
                if found.status in _NOT_RETRIED:
                    raise Conflict(
                        _NOT_RETRIED[found.status],
                        details={"delivery_id": delivery_id, "status": found.status},
                    )
                raise Conflict(
                    "The delivery is being attempted right now; retry it once the attempt is"
                    " recorded.",
                    details={"delivery_id": delivery_id},
                )
            self._wake_after(conn)
            delivery = deliveries.get(delivery_id)
        assert delivery is not None
        return delivery

    def delivery(self, delivery_id: int) -> Delivery:
        with self.db.read() as conn:
            delivery = DeliveryStore(conn).get(delivery_id)
        if delivery is None:
            raise NotFound(f"No delivery {delivery_id}.", details={"delivery_id": delivery_id})
        return delivery

    def deliveries(
        self, endpoint_id: int, *, status: str | None, before_id: int | None, limit: int
    ) -> list[Delivery]:
        with self.db.read() as conn:
            self._require(EndpointStore(conn), endpoint_id)
            return DeliveryStore(conn).page(
                endpoint_id=endpoint_id,
                status=status,
                after_id=before_id,
                limit=limit,
                with_bodies=False,
            )
