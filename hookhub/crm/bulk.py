"""Changes to many contacts at once, inside a :class:`~hookhub.crm.operations.CrmTx`: what the
automation engine does for a batch of enrollments on the same step.

Each function does what the one-contact operation does (the same validation, the same rows, the
same outbox messages) with one statement per kind of row instead of one per contact. Either
all of it happens or it raises (the caller's savepoint rolls it back, and the caller may then
go contact by contact to find whose change was refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from hookhub.core import jsoncodec
from hookhub.core.contacts import check_event_name
from hookhub.crm.events import MAX_EVENT_PROPERTIES_BYTES
from hookhub.errors import ValidationFailed
from hookhub.outbound.outbox import OutboxMessage
from hookhub.records.contacts import Contact

if TYPE_CHECKING:
    from hookhub.crm.operations import CrmTx


def merge_attributes(contact: Contact, prepared: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Apply prepared attribute values to ``contact`` (None removes one); answers the changes
    (``{name: {old, new}}``), as ``contact.updated`` reports them."""
    changes: dict[str, dict[str, Any]] = {}
    merged = dict(contact.attributes)
    for name, value in prepared.items():
        old = merged.get(name)
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
        if old != value or type(old) is not type(value):
            if old is None and value is None:
                continue
            changes[name] = {"old": old, "new": value}
    contact.attributes = merged
    return changes


def add_to_list_many(tx: CrmTx, list_id: int, contacts: Sequence[Contact]) -> list[Contact]:
    """Add contacts (read in this transaction) to a list, each with its
    ``list.contact_added``; answers those that joined (the others were members already)."""
    tx.require_lists([list_id])
    already = tx.lists.members_among(list_id, [c.id for c in contacts])
    joining = list({c.id: c for c in contacts if c.id not in already}.values())
    tx.lists.add_members(
        [{"list_id": list_id, "contact_id": c.id, "added_at": tx.now} for c in joining]
    )
    name = tx.lists.names([list_id]).get(list_id)
    tx.outbox.write(
        [
            tx.outbox_message(
                "list.contact_added",
                {"contact_id": c.id, "email": c.email, "list_id": list_id, "list_name": name},
            )
            for c in joining
        ]
    )
    for contact in joining:
        contact.list_ids = sorted({*contact.list_ids, list_id})
    return joining


def update_attributes_many(
    tx: CrmTx, items: Sequence[tuple[Contact, Mapping[str, Any]]], *, coerce: bool = False
) -> None:
    """``update_contact(contact, attributes=values)`` for each item: contacts whose attributes
    change are saved in one statement, their ``contact.updated`` written in one batch."""
    rows: list[dict[str, Any]] = []
    messages: list[OutboxMessage] = []
    for contact, values in items:
        changes = merge_attributes(contact, tx.prepare_attributes(values, coerce=coerce))
        if not changes:
            continue
        contact.updated_at = tx.now
        rows.append(
            {
                "b_id": contact.id,
                "b_attributes": jsoncodec.dumps(contact.attributes).decode(),
                "b_ext_id": contact.ext_id,
                "b_updated_at": tx.now,
            }
        )
        messages.append(
            tx.outbox_message(
                "contact.updated",
                {
                    "contact_id": contact.id,
                    "email": contact.email,
                    "previous_email": contact.email,
                    "changes": changes,
                    "attributes": contact.attributes,
                },
            )
        )
    tx.contacts.save_many_attributes(rows)
    tx.outbox.write(messages)


def track_events_many(
    tx: CrmTx, event_name: str, items: Sequence[tuple[Contact, Mapping[str, Any]]]
) -> list[int]:
    """``track_event(event_name, contact=contact, event_properties=properties)`` for each item,
    dated now: the events in one statement, their ``event.tracked`` in one batch; their ids."""
    name = check_event_name(event_name)
    when = tx.now.astimezone(UTC)
    rows: list[dict[str, Any]] = []
    for _contact, properties in items:
        if not isinstance(properties, Mapping):
            raise ValidationFailed("event_properties must be an object.")
        encoded = jsoncodec.dumps(properties)
        if len(encoded) > MAX_EVENT_PROPERTIES_BYTES:
            raise ValidationFailed("event_properties is larger than 50 KB.")
        rows.append(
            {
                "event_name": name,
                "contact_id": _contact.id,
                "event_properties": encoded.decode(),
                "event_date": when,
                "created_at": tx.now,
            }
        )
    ids = tx.events.insert_many(rows)
    date = jsoncodec.isoformat(when)
    tx.outbox.write(
        [
            tx.outbox_message(
                "event.tracked",
                {
                    "contact_id": contact.id,
                    "email": contact.email,
                    "event_id": event_id,
                    "event_name": name,
                    "event_properties": dict(properties),
                    "event_date": date,
                },
            )
            for (contact, properties), event_id in zip(items, ids, strict=True)
        ]
    )
    return ids
