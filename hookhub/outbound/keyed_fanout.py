"""Fan-out to endpoints with ``ordering`` or ``collapse``: deliveries keyed by their contact.

Runs in the writing transaction, after the plain fan-out chose which messages an endpoint
gets. For each message about a contact (``data.contact_id``), in the order written:

- **collapse**: a message of a collapsing type whose contact's newest unfinished delivery to
  the endpoint is of the same type, never attempted, not leased and created less than the
  window ago merges into it (its stored body becomes the merged message); the message itself
  gets a delivery row ``collapsed`` (never sent, and never backfilled by recover). Otherwise
  its delivery is held: due when the window ends, so that the burst can gather.
- **ordering**: a delivery is ``waiting`` while the contact has an unfinished delivery to the
  endpoint; the acknowledgement that finishes it makes the next one pending.

Messages about no contact are delivered as by the plain fan-out. On PostgreSQL, each
(endpoint, contact) concerned is locked for the rest of the transaction first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from hookhub.core import jsoncodec
from hookhub.outbound.keying import contact_of, merge_bodies
from hookhub.outbound.outbox import OutboxMessage
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.delivery_keys import DeliveryKeys, Tail
from hookhub.store.endpoints import Keying

__all__ = ["KeyedTarget", "fan_out_keyed"]


@dataclass(slots=True)
class KeyedTarget:
    """The messages one keyed endpoint gets from one batch, each with its parsed body."""

    endpoint_id: int
    keying: Keying
    batched: bool
    messages: list[tuple[OutboxMessage, Any]]


@dataclass(slots=True)
class _Pending:
    """A delivery of this batch not yet inserted: later messages may still merge into it."""

    row: dict[str, Any]
    event_type: str
    body: Any
    created_at: float


def fan_out_keyed(conn: Connection, target: KeyedTarget, batch_window: float) -> None:
    keying = target.keying
    keys = DeliveryKeys(conn)
    contacts = [c for _, body in target.messages if (c := contact_of(body)) is not None]
    if contacts:
        keys.lock((target.endpoint_id, c) for c in contacts)
    collapsing = bool(keying.collapse_types)
    tails: dict[int, Tail | _Pending] = dict(
        keys.tails(target.endpoint_id, contacts, rows=collapsing) if contacts else {}
    )
    rows: list[dict[str, Any]] = []
    for message, body in target.messages:
        now = message.created_at.timestamp()
        due = now + batch_window if target.batched else now
        contact = contact_of(body)
        row: dict[str, Any] = {
            "message_id": message.id,
            "endpoint_id": target.endpoint_id,
            "status": "pending",
            "contact_id": contact,
            "payload": None,
            "next_attempt_at": due,
            "created_at": now,
        }
        rows.append(row)
        if contact is None:
            continue
        tail = tails.get(contact)
        if message.type in keying.collapse_types:
            merged = None if tail is None else _merge(keys, tail, message, body, now, keying.window)
            if merged is not None:
                tails[contact] = merged
                row.update(status="collapsed", next_attempt_at=None)
                continue
            row["next_attempt_at"] = max(due, now + keying.window)  # held for the burst
        if keying.ordered and tail is not None:
            row["status"] = "waiting"
        tails[contact] = _Pending(row, message.type, body, now)
    DeliveryStore(conn).insert_many(rows)


def _merge(
    keys: DeliveryKeys,
    tail: Tail | _Pending,
    message: OutboxMessage,
    body: Any,
    now: float,
    window: float,
) -> Tail | _Pending | None:
    """Merge ``message`` into ``tail`` if that is still its burst's open delivery; answers the
    tail as it now stands, or None (``message`` starts a delivery of its own)."""
    if tail.event_type != message.type or tail.created_at <= now - window:
        return None
    if isinstance(tail, _Pending):
        if tail.row["status"] not in ("pending", "waiting"):
            return None
        tail.body = merge_bodies(tail.body, body)
        tail.row["payload"] = jsoncodec.dumps(tail.body).decode()
        return tail
    if tail.attempt_count or tail.leased or tail.status not in ("pending", "waiting"):
        return None
    merged = jsoncodec.dumps(merge_bodies(jsoncodec.loads(tail.body), body))
    if not keys.merge(tail.id, merged, now):
        return None
    return replace(tail, body=merged.decode())
