"""Custom events: record one for a contact named by its identifiers, and say so in the outbox.

Called through :meth:`hookhub.crm.operations.CrmTx.track_event`, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hookhub.core import jsoncodec
from hookhub.core.contacts import check_event_name, normalize_email, normalize_ext_id
from hookhub.errors import NotFound, ValidationFailed
from hookhub.records.contacts import Contact, CustomEvent

if TYPE_CHECKING:
    from hookhub.crm.operations import CrmTx

MAX_EVENT_PROPERTIES_BYTES = 50 * 1024


def record_event(
    tx: CrmTx,
    event_name: Any,
    *,
    identifiers: Mapping[str, Any] | None = None,
    contact: Contact | None = None,
    contact_properties: Any = None,
    event_properties: Any = None,
    event_date: datetime | None = None,
    coerce: bool = False,
) -> tuple[CustomEvent, Contact]:
    """Record a custom event for the contact ``identifiers`` name (Brevo's body).

    ``contact`` instead of identifiers: a contact this transaction has just read or
    written, so it is not looked up again (``contact_properties`` is then not applied).
    """
    name = check_event_name(event_name)
    properties = event_properties if event_properties is not None else {}
    if not isinstance(properties, Mapping):
        raise ValidationFailed(
            "event_properties must be an object.", details={"field": "event_properties"}
        )
    properties_json = jsoncodec.dumps(properties)
    if len(properties_json) > MAX_EVENT_PROPERTIES_BYTES:
        raise ValidationFailed(
            "event_properties is larger than 50 KB.", details={"field": "event_properties"}
        )
    when = (event_date or tx.now).astimezone(UTC)
    if contact is None:
        contact = _contact_for(tx, identifiers, contact_properties, coerce=coerce)
    event_id = tx.events.insert(
        event_name=name,
        contact_id=contact.id,
        properties_json=properties_json.decode(),
        event_date=when,
        now=tx.now,
    )
    event = CustomEvent(
        id=event_id,
        event_name=name,
        contact_id=contact.id,
        event_properties=dict(properties),
        event_date=when,
        created_at=tx.now,
    )
    tx._emit_contact(
        "event.tracked",
        contact,
        {
            "event_id": event_id,
            "event_name": name,
            "event_properties": event.event_properties,
            "event_date": jsoncodec.isoformat(when),
        },
    )
    return event, contact


def _contact_for(
    tx: CrmTx, identifiers: Mapping[str, Any] | None, properties: Any, *, coerce: bool
) -> Contact:
    if not isinstance(identifiers, Mapping):
        raise ValidationFailed("identifiers must be an object.")
    contact_id = identifiers.get("contact_id")
    ext_id = normalize_ext_id(identifiers.get("ext_id"))
    email = identifiers.get("email")
    if email is not None:
        # Checked even when contact_id decides the contact: a bad address is an error.
        email = normalize_email(email)
    if contact_id is None and ext_id is None and email is None:
        raise ValidationFailed(
            "identifiers needs email, contact_id or ext_id.", details={"field": "identifiers"}
        )
    contact: Contact | None = None
    if contact_id is not None:
        if not isinstance(contact_id, int) or isinstance(contact_id, bool):
            raise ValidationFailed("identifiers.contact_id must be an integer.")
        contact = tx.contacts.get(contact_id, lock=True)
        if contact is None:
            raise NotFound(f"No contact {contact_id}.", details={"contact_id": contact_id})
    elif ext_id is not None:
        contact = tx.contacts.get_by_ext_id(ext_id, lock=True)
        if contact is None and email is None:
            raise NotFound(f"No contact with ext_id {ext_id!r}.", details={"ext_id": ext_id})
    if contact is None:
        contact, _ = tx.create_contact(
            email, ext_id=ext_id, attributes=properties, upsert=True, coerce=coerce
        )
        return contact
    if properties:
        contact = tx.update_contact(contact, attributes=properties, coerce=coerce)
    return contact
