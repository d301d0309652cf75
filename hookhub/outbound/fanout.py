"""Fan-out: each outbox message becomes one delivery per subscribed, enabled endpoint.

It runs inside the transaction that writes the message, so a message and its deliveries exist
together or not at all: no crash can skip or double a fan-out, and an endpoint created later
never receives older messages (unless asked to, by recover). An endpoint's filter is evaluated
on the message parsed once, and only when some subscribed endpoint has one. Endpoints with
``ordering`` or ``collapse`` get their deliveries from ``keyed_fanout``. On PostgreSQL it
also queues a ``NOTIFY`` that wakes delivery workers when the transaction commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from hookhub.core import jsoncodec
from hookhub.core.catalog import subscription_matches
from hookhub.core.origin import ignored
from hookhub.outbound.filters import matches
from hookhub.outbound.keyed_fanout import KeyedTarget, fan_out_keyed
from hookhub.outbound.outbox import OutboxMessage
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.endpoints import EndpointStore
from hookhub.store.notify import notify

NOTIFY_CHANNEL = "hookhub_deliveries"
_SUBSCRIPTIONS = "subscriptions"
_UNPARSED = object()


class Fanout:
    def __init__(self, *, batch_window: float) -> None:
        self.batch_window = batch_window

    def __call__(
        self,
        conn: Connection,
        batch: list[OutboxMessage],
        scratch: dict[str, Any],
        facts: dict[str, Any],
    ) -> None:
        subscriptions = facts.get(_SUBSCRIPTIONS)
        if subscriptions is None:
            subscriptions = facts[_SUBSCRIPTIONS] = EndpointStore(conn).subscriptions()
        if not subscriptions:
            return
        rows: list[dict[str, Any]] = []
        keyed: dict[int, KeyedTarget] = {}
        for message in batch:
            now = message.created_at.timestamp()
            about = message.about_endpoint
            parsed: Any = _UNPARSED  # parsed once, and only for an endpoint that needs it
            for endpoint_id, patterns, batched, filter_, ignore, keying in subscriptions:
                if endpoint_id == about or not subscription_matches(patterns, message.type):
                    continue
                if ignore and ignored(ignore, message.origin):
                    continue  # the endpoint ignores what caused it (a sync loop's other half)
                if filter_ is not None:
                    if parsed is _UNPARSED:
                        parsed = jsoncodec.loads(message.payload)
                    if not matches(filter_, parsed, webhook_id=endpoint_id, message_id=message.id):
                        continue
                if keying is not None:  # ordering or collapse: keyed by the message's contact
                    if parsed is _UNPARSED:
                        parsed = jsoncodec.loads(message.payload)
                    target = keyed.get(endpoint_id)
                    if target is None:
                        target = keyed[endpoint_id] = KeyedTarget(endpoint_id, keying, batched, [])
                    target.messages.append((message, parsed))
                    continue
                rows.append(
                    {
                        "message_id": message.id,
                        "endpoint_id": endpoint_id,
                        # Batched endpoints gather messages for up to the batch window.
                        "next_attempt_at": now + self.batch_window if batched else now,
                        "created_at": now,
                    }
                )
        if rows:
            DeliveryStore(conn).insert_many(rows)
        for target in keyed.values():
            fan_out_keyed(conn, target, self.batch_window)
        if (rows or keyed) and not scratch.get("notified"):
            notify(conn, NOTIFY_CHANNEL)
            scratch["notified"] = True
