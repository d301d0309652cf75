"""The ``webhook`` step: a signed Standard Webhooks POST through the outbound queue.

Each webhook step owns a hidden endpoint (``endpoints.automation_id`` / ``automation_step``,
subscribed to nothing, never listed by ``/webhooks``) with a secret of its own, made in the
step's transaction the first time the step posts and pointed at the step's URL whenever an
edit changes it. A post is one ``automation.webhook`` message written without fan-out (only
this endpoint receives it, as a test send's one delivery) and one delivery to that endpoint,
which the delivery workers sign, send and retry like any other.

This module must never send anything itself, nor commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from hookhub import ids
from hookhub.automation.definition import WebhookSpec
from hookhub.outbound.fanout import NOTIFY_CHANNEL
from hookhub.outbound.outbox import OutboxWriter, build_message
from hookhub.records.automations import Enrollment
from hookhub.records.contacts import Contact
from hookhub.records.outbound import Endpoint
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.endpoints import EndpointStore
from hookhub.store.notify import notify

_FOUND = "automation_endpoints"


def webhook_body(
    spec: WebhookSpec, automation_id: int, enrollment: Enrollment, contact: Contact, step_id: str
) -> dict[str, Any]:
    """The message's ``data``: who and where, plus what ``include`` names."""
    data: dict[str, Any] = {
        "contact_id": contact.id,
        "email": contact.email,
        "automation_id": automation_id,
        "enrollment_id": enrollment.id,
        "step_id": step_id,
    }
    if "attributes" in spec.include:
        data["attributes"] = contact.attributes
    if "lists" in spec.include:
        data["list_ids"] = contact.list_ids
    if "trigger" in spec.include:
        data["trigger"] = enrollment.trigger
    return data


def post_webhook(
    conn: Connection,
    writer: OutboxWriter,
    facts: dict[str, Any],
    *,
    step_id: str,
    spec: WebhookSpec,
    automation_id: int,
    enrollment: Enrollment,
    contact: Contact,
    at: datetime,
) -> str:
    """Queue the step's POST in this transaction; the message's id."""
    endpoint_id = _endpoint(conn, facts, automation_id, step_id, spec.url, at)
    message = build_message(
        "automation.webhook", webhook_body(spec, automation_id, enrollment, contact, step_id), at
    )
    writer.write_test_send(message)
    now = at.timestamp()
    DeliveryStore(conn).insert_many(
        [
            {
                "message_id": message.id,
                "endpoint_id": endpoint_id,
                "next_attempt_at": now,
                "created_at": now,
            }
        ]
    )
    notify(conn, NOTIFY_CHANNEL)  # other processes' delivery workers; ours hear the commit
    return message.id


def _endpoint(
    conn: Connection,
    facts: dict[str, Any],
    automation_id: int,
    step_id: str,
    url: str,
    at: datetime,
) -> int:
    """The step's endpoint, made or re-pointed if need be. Only endpoints found (not made)
    are remembered for the batch: one made in a savepoint that is then rolled back is gone."""
    found: dict[tuple[int, str], tuple[int, str]] = facts.setdefault(_FOUND, {})
    key = (automation_id, step_id)
    known = found.get(key)
    if known is not None and known[1] == url:
        return known[0]
    store = EndpointStore(conn)
    current = store.automation_endpoint(automation_id, step_id)
    if current is None:
        store.lock_automation_endpoints(automation_id)
        current = store.automation_endpoint(automation_id, step_id)
    if current is None:
        return store.insert_for_automation(_new_endpoint(url, at), automation_id, step_id)
    if current[1] != url:
        store.set_url(current[0], url)
        return current[0]
    found[key] = current
    return current[0]


def _new_endpoint(url: str, at: datetime) -> Endpoint:
    return Endpoint(
        id=0,
        url=url,
        description="automation webhook step",
        event_types=[],
        headers={},
        auth=None,
        secret=ids.webhook_secret(),
        previous_secrets=[],
        batched=False,
        enabled=True,
        disabled_reason=None,
        rate_limit=None,
        max_concurrency=None,
        failing_since=None,
        created_at=at,
        updated_at=at,
    )
