"""State changes on contacts, lists and custom events, and the notifications they cause.

:class:`CrmTx` works inside one write transaction that its caller opened (an API call, one
inbound request's rules, one batch of an import): every change it makes and every outbox
message it emits commit together or not at all. A change that changes nothing emits nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection

from hookhub.core import jsoncodec
from hookhub.core.contacts import (
    AttributeType,
    check_value,
    coerce_value,
    infer_type,
    normalize_attribute_name,
    normalize_email,
    normalize_ext_id,
    parse_ref,
)
from hookhub.crm.bulk import merge_attributes
from hookhub.crm.events import record_event
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.outbound.outbox import OutboxMessage, OutboxWriter, build_message
from hookhub.records.contacts import Contact, CustomEvent
from hookhub.store.contacts import AttributeStore, ContactStore
from hookhub.store.events import EventStore
from hookhub.store.lists import ListStore

MAX_ATTRIBUTES_PER_WRITE = 200
RESERVED_ATTRIBUTES = frozenset({"EMAIL", "EXT_ID"})


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class CrmTx:
    def __init__(self, conn: Connection, outbox: OutboxWriter, now: datetime) -> None:
        self.conn = conn
        self.outbox = outbox
        self.now = now
        self.contacts = ContactStore(conn)
        self.lists = ListStore(conn)
        self.events = EventStore(conn)
        self.attribute_store = AttributeStore(conn)
        self._types: dict[str, AttributeType] | None = None

    # -- attributes ------------------------------------------------------------------------

    def attribute_types(self) -> dict[str, AttributeType]:
        if self._types is None:
            self._types = self.attribute_store.known()
        return self._types

    def define_attribute(self, raw_name: str, kind: AttributeType) -> AttributeType:
        name = normalize_attribute_name(raw_name)
        if name in RESERVED_ATTRIBUTES:
            raise ValidationFailed(f"{name} is reserved.", details={"attribute": name})
        actual = self.attribute_store.define(name, kind, self.now)
        self.attribute_types()[name] = actual
        return actual

    def prepare_attributes(self, raw: Any, *, coerce: bool = False) -> dict[str, Any]:
        """Validated attribute values by upper-case name; None marks an attribute to remove.

        ``coerce``: the values come from a payload (inbound rules): they are converted to the
        declared types, and an undeclared attribute is declared as text.
        """
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise ValidationFailed("attributes must be an object.", details={"field": "attributes"})
        if len(raw) > MAX_ATTRIBUTES_PER_WRITE:
            raise ValidationFailed(f"At most {MAX_ATTRIBUTES_PER_WRITE} attributes per write.")
        types = self.attribute_types()
        prepared: dict[str, Any] = {}
        for key, value in raw.items():
            name = normalize_attribute_name(key)
            if name in RESERVED_ATTRIBUTES:
                raise ValidationFailed(
                    f"{name} is not an attribute; use the field of that name.",
                    details={"attribute": name},
                )
            if name in prepared:
                raise ValidationFailed(
                    f"Attribute {name} is given twice.", details={"attribute": name}
                )
            kind = types.get(name)
            if kind is None:
                if value is None:
                    prepared[name] = None
                    continue
                # A payload's value says nothing reliable about the attribute's type (one
                # `"first_name": 1` would make FIRSTNAME a number for good): text, unless
                # declared. The API's own writes keep typing by their first value.
                inferred = AttributeType.STRING if coerce else infer_type(name, value)
                kind = self.define_attribute(name, inferred)
            convert = coerce_value if coerce else check_value
            prepared[name] = convert(name, kind, value)
        return prepared

    # -- contacts --------------------------------------------------------------------------

    def find_contact(self, ref: str | int, *, lock: bool = False) -> Contact:
        kind, value = parse_ref(ref)
        if kind == "id":
            contact = self.contacts.get(int(value), lock=lock)
        else:
            contact = self.contacts.get_by_email(str(value), lock=lock)
        if contact is None:
            raise NotFound(f"No contact {ref!r}.", details={"ref": str(ref)})
        return contact

    def create_contact(
        self,
        email: Any,
        *,
        ext_id: Any = None,
        attributes: Any = None,
        list_ids: Sequence[int] = (),
        unsubscribed: bool = False,
        upsert: bool = False,
        coerce: bool = False,
        looked_up: bool = False,
    ) -> tuple[Contact, bool]:
        """Create a contact, or with ``upsert`` update the one with this email.

        Answers the contact and whether it was created. ``looked_up``: the caller has just
        looked for this email in this transaction and found nothing, so it is inserted
        straight away (should the email exist after all, the insert finds out and the
        contact is read then).
        """
        email = normalize_email(email)
        ext = normalize_ext_id(ext_id)
        prepared = self.prepare_attributes(attributes, coerce=coerce)
        self.require_lists(list_ids)
        existing = None if looked_up else self.contacts.get_by_email(email, lock=True)
        if existing is None:
            if ext is not None:
                self._require_free_ext_id(ext, None)
            values = {k: v for k, v in prepared.items() if v is not None}
            contact = self.contacts.insert(
                email=email,
                ext_id=ext,
                attributes=values,
                unsubscribed=unsubscribed,
                now=self.now,
            )
            if contact is None:  # a concurrent transaction took the email or ext_id first
                existing = self.contacts.get_by_email(email, lock=True)
                if existing is None:
                    raise Conflict(
                        f"ext_id {ext!r} belongs to another contact.", details={"field": "ext_id"}
                    )
            else:
                added = self._add_memberships(contact, list_ids, announce=False)
                contact.list_ids = sorted(added)
                self._emit_contact(
                    "contact.created",
                    contact,
                    {
                        "ext_id": contact.ext_id,
                        "attributes": contact.attributes,
                        "list_ids": contact.list_ids,
                        "unsubscribed": contact.unsubscribed,
                        "created_at": jsoncodec.isoformat(contact.created_at),
                    },
                )
                for list_id in contact.list_ids:
                    self._emit_membership("list.contact_added", contact, list_id)
                if unsubscribed:
                    # Whoever keeps a suppression list from contact.unsubscribed must hear of
                    # this address too; no contact.updated: nothing changed (docs/DESIGN.md).
                    self._emit_contact("contact.unsubscribed", contact, {"source": "api"})
                return contact, True
        if not upsert:
            raise Conflict(
                f"A contact with email {email} exists.",
                details={"field": "email", "contact_id": existing.id},
            )
        updated = self.update_contact(
            existing,
            ext_id=ext if ext is not None else UNSET,
            prepared_attributes=prepared,
            add_list_ids=list_ids,
            unsubscribed=True if unsubscribed else None,
        )
        return updated, False

    def update_contact(
        self,
        contact: Contact,
        *,
        email: Any = UNSET,
        ext_id: Any = UNSET,
        attributes: Any = None,
        prepared_attributes: dict[str, Any] | None = None,
        unsubscribed: bool | None = None,
        unsubscribe_source: dict[str, Any] | None = None,
        add_list_ids: Sequence[int] = (),
        remove_list_ids: Sequence[int] = (),
        coerce: bool = False,
    ) -> Contact:
        prepared = (
            prepared_attributes
            if prepared_attributes is not None
            else self.prepare_attributes(attributes, coerce=coerce)
        )
        self.require_lists([*add_list_ids, *remove_list_ids])
        changes: dict[str, dict[str, Any]] = {}
        old_email = contact.email
        if not isinstance(email, _Unset):
            new_email = normalize_email(email)
            if new_email != contact.email:
                other = self.contacts.get_by_email(new_email)
                if other is not None:
                    raise Conflict(
                        f"A contact with email {new_email} exists.",
                        details={"field": "email", "contact_id": other.id},
                    )
                changes["email"] = {"old": contact.email, "new": new_email}
                contact.email = new_email
        if not isinstance(ext_id, _Unset):
            new_ext = normalize_ext_id(ext_id)
            if new_ext != contact.ext_id:
                if new_ext is not None:
                    self._require_free_ext_id(new_ext, contact.id)
                changes["ext_id"] = {"old": contact.ext_id, "new": new_ext}
                contact.ext_id = new_ext
        changes.update(merge_attributes(contact, prepared))
        newly_unsubscribed = False
        if unsubscribed is not None and unsubscribed != contact.unsubscribed:
            changes["unsubscribed"] = {"old": contact.unsubscribed, "new": unsubscribed}
            contact.unsubscribed = unsubscribed
            newly_unsubscribed = unsubscribed
        if changes:
            contact.updated_at = self.now
            self.contacts.save(contact)
            self.outbox.emit(
                "contact.updated",
                {
                    "contact_id": contact.id,
                    "email": contact.email,
                    "previous_email": old_email,
                    "changes": changes,
                    "attributes": contact.attributes,
                },
                self.now,
            )
            if newly_unsubscribed:
                source = unsubscribe_source or {"source": "api"}
                self._emit_contact("contact.unsubscribed", contact, source)
        self.contacts.attach_list_ids([contact])
        added = self._add_memberships(contact, add_list_ids, announce=True)
        removed = [
            lid for lid in dict.fromkeys(remove_list_ids) if self._remove_membership(contact, lid)
        ]
        if added or removed:
            contact.list_ids = sorted((set(contact.list_ids) | added) - set(removed))
        return contact

    def delete_contact(self, contact: Contact) -> None:
        """Delete the contact; ``contact.deleted`` names the lists it left (``list_ids``).

        Leaving its lists this way is said by that one message, not a ``list.contact_removed``
        per list: the contact is gone, not moved.
        """
        self.contacts.attach_list_ids([contact])
        self.contacts.delete(contact.id)
        self._emit_contact(
            "contact.deleted",
            contact,
            {
                "ext_id": contact.ext_id,
                "attributes": contact.attributes,
                "list_ids": contact.list_ids,
            },
        )

    def delete_list(self, list_id: int) -> None:
        """Delete a list and its memberships; one ``list.deleted`` says so (with how many)."""
        found = self.lists.get(list_id)
        if found is None:
            raise NotFound(f"No list {list_id}.", details={"list_id": list_id})
        self.lists.delete(list_id)
        self.outbox.emit(
            "list.deleted",
            {
                "list_id": found.id,
                "list_name": found.name,
                "contact_count": found.contact_count,
            },
            self.now,
        )

    # -- lists -----------------------------------------------------------------------------

    def add_contacts_to_list(
        self, list_id: int, *, emails: Sequence[Any] = (), contact_ids: Sequence[int] = ()
    ) -> dict[str, list[int]]:
        """Add every referenced contact, or nothing if any of them is unknown."""
        self.require_lists([list_id])
        normalized = [normalize_email(e) for e in emails]
        by_email = self.contacts.get_many_by_email(normalized)
        missing_emails = sorted(set(normalized) - set(by_email))
        known_ids = self.contacts.existing_ids(contact_ids)
        missing_ids = sorted(set(contact_ids) - known_ids)
        if missing_emails or missing_ids:
            raise NotFound(
                "Some contacts do not exist; nothing was added.",
                details={"emails": missing_emails, "contact_ids": missing_ids},
            )
        wanted = list(dict.fromkeys([*(c.id for c in by_email.values()), *contact_ids]))
        already = self.lists.members_among(list_id, wanted)
        new_ids = [cid for cid in wanted if cid not in already]
        self.lists.add_members(
            [{"list_id": list_id, "contact_id": cid, "added_at": self.now} for cid in new_ids]
        )
        if new_ids:
            emails_by_id = {c.id: c.email for c in by_email.values()}
            unknown = [cid for cid in new_ids if cid not in emails_by_id]
            for cid in unknown:
                found = self.contacts.get(cid)
                if found is not None:
                    emails_by_id[cid] = found.email
            list_name = self.lists.names([list_id]).get(list_id)
            batch = [
                self.outbox_message(
                    "list.contact_added",
                    {
                        "contact_id": cid,
                        "email": emails_by_id[cid],
                        "list_id": list_id,
                        "list_name": list_name,
                    },
                )
                for cid in new_ids
            ]
            self.outbox.write(batch)
        return {"added": new_ids, "already_members": sorted(already)}

    def remove_from_list(self, list_id: int, contact: Contact) -> None:
        self.require_lists([list_id])
        if not self._remove_membership(contact, list_id):
            raise NotFound(
                f"Contact {contact.id} is not in list {list_id}.",
                details={"list_id": list_id, "contact_id": contact.id},
            )

    # -- custom events ---------------------------------------------------------------------

    def track_event(
        self,
        event_name: Any,
        *,
        identifiers: Mapping[str, Any] | None = None,
        contact: Contact | None = None,
        contact_properties: Any = None,
        event_properties: Any = None,
        event_date: datetime | None = None,
        coerce: bool = False,
    ) -> tuple[CustomEvent, Contact]:
        """Record a custom event (:func:`hookhub.crm.events.record_event` says how)."""
        return record_event(
            self,
            event_name,
            identifiers=identifiers,
            contact=contact,
            contact_properties=contact_properties,
            event_properties=event_properties,
            event_date=event_date,
            coerce=coerce,
        )

    # -- helpers ---------------------------------------------------------------------------

    def outbox_message(self, event_type: str, data: dict[str, Any]) -> OutboxMessage:
        return build_message(event_type, data, self.now)

    def require_lists(self, list_ids: Iterable[int]) -> None:
        wanted = set(list_ids)
        if not wanted:
            return
        found = set(self.lists.names(list(wanted)))
        missing = sorted(wanted - found)
        if missing:
            raise NotFound(
                f"No list with id {', '.join(map(str, missing))}.", details={"list_ids": missing}
            )

    def _require_free_ext_id(self, ext_id: str, owner: int | None) -> None:
        holder = self.contacts.ext_id_owners([ext_id]).get(ext_id)
        if holder is not None and holder != owner:
            raise Conflict(
                f"ext_id {ext_id!r} belongs to contact {holder}.",
                details={"field": "ext_id", "contact_id": holder},
            )

    def _add_memberships(
        self, contact: Contact, list_ids: Sequence[int], *, announce: bool
    ) -> set[int]:
        wanted = [lid for lid in dict.fromkeys(list_ids) if lid not in contact.list_ids]
        if not wanted:
            return set()
        present = {lid for lid in wanted if self.lists.members_among(lid, [contact.id])}
        new = [lid for lid in wanted if lid not in present]
        self.lists.add_members(
            [{"list_id": lid, "contact_id": contact.id, "added_at": self.now} for lid in new]
        )
        if announce:
            for list_id in new:
                self._emit_membership("list.contact_added", contact, list_id)
        return set(new)

    def _remove_membership(self, contact: Contact, list_id: int) -> bool:
        if not self.lists.remove_member(list_id, contact.id):
            return False
        self._emit_membership("list.contact_removed", contact, list_id)
        return True

    def _emit_membership(self, event_type: str, contact: Contact, list_id: int) -> None:
        name = self.lists.names([list_id]).get(list_id)
        self._emit_contact(event_type, contact, {"list_id": list_id, "list_name": name})

    def _emit_contact(self, event_type: str, contact: Contact, extra: dict[str, Any]) -> None:
        self.outbox.emit(
            event_type, {"contact_id": contact.id, "email": contact.email, **extra}, self.now
        )
