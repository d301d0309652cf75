"""Several API creates in one write transaction: what the contacts API's group commit runs.

:func:`create_many` does for each request exactly what ``CrmTx.create_contact`` does (the same
validation, rows, outbox messages and answers), but the common case, a new contact whose
attributes are all declared, costs a share of a few statements rather than its own: one
multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the contacts, one for their list
memberships and one outbox write for all their messages. Every other request (an email that
exists or appears twice in the group, an attribute to declare, an ext_id or list that may be
refused) goes through ``create_contact`` after them, each in a savepoint of its own, so that a
refused request leaves nothing behind and the others commit.

The caller answers each request only after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hookhub.core import jsoncodec
from hookhub.core.contacts import normalize_attribute_name, normalize_email, normalize_ext_id
from hookhub.core.origin import Origin
from hookhub.crm.operations import CrmTx
from hookhub.crm.service import CrmService
from hookhub.errors import HookhubError
from hookhub.outbound.outbox import OutboxMessage, build_message
from hookhub.records.contacts import Contact


@dataclass(slots=True)
class CreateRequest:
    """One ``POST /api/v1/contacts`` body (validated by its schema), its flag and its origin."""

    email: str
    ext_id: str | None = None
    attributes: Mapping[str, Any] | None = None
    list_ids: Sequence[int] = ()
    unsubscribed: bool = False
    upsert: bool = False
    origin: Origin | None = None


Outcome = tuple[Contact, bool] | BaseException
"""The contact and whether it was created, or why the request was refused."""


@dataclass(slots=True)
class _Plain:
    index: int
    request: CreateRequest
    email: str
    ext_id: str | None
    attributes: dict[str, Any]
    list_ids: list[int] = field(default_factory=list)


def create_many(crm: CrmService, requests: Sequence[CreateRequest]) -> list[Outcome]:
    """Run every request in one transaction; an outcome per request, in their order.

    Raises (and commits nothing) only when the transaction itself fails.
    """
    outcomes: list[Outcome | None] = [None] * len(requests)
    with crm.db.write() as conn:
        now = crm.clock()
        facts: dict[str, Any] = {}
        tx = CrmTx(conn, crm.outbox.writer(conn, facts), now)
        plain, deferred = _sort(tx, requests, outcomes)
        deferred.extend(_insert_plain(crm, tx, plain, outcomes, facts))
        for index in sorted(deferred):
            request = requests[index]
            try:
                with conn.begin_nested():
                    one = CrmTx(conn, crm.outbox.writer(conn, facts, origin=request.origin), now)
                    outcomes[index] = one.create_contact(
                        request.email,
                        ext_id=request.ext_id,
                        attributes=request.attributes,
                        list_ids=request.list_ids,
                        unsubscribed=request.unsubscribed,
                        upsert=request.upsert,
                    )
            except Exception as exc:  # answered to that request; the others go on
                outcomes[index] = exc
    return [o if o is not None else RuntimeError("no outcome") for o in outcomes]


def _sort(
    tx: CrmTx, requests: Sequence[CreateRequest], outcomes: list[Outcome | None]
) -> tuple[list[_Plain], list[int]]:
    """Requests the multi-row insert can take, and the indexes of the others."""
    plain: list[_Plain] = []
    deferred: list[int] = []
    emails: set[str] = set()
    ext_ids: set[str] = set()
    types = tx.attribute_types()
    for index, request in enumerate(requests):
        try:
            email = normalize_email(request.email)
            ext_id = normalize_ext_id(request.ext_id)
        except HookhubError as exc:
            outcomes[index] = exc
            continue
        raw = request.attributes or {}
        try:
            undeclared = any(
                normalize_attribute_name(k) not in types and v is not None for k, v in raw.items()
            )
        except HookhubError:
            undeclared = True  # create_contact says what is wrong with the name
        # A request that shares an email or ext_id with an earlier one (plain or not) waits
        # for it: the deferred run in request order, after the plain ones.
        shares = email in emails or (ext_id is not None and ext_id in ext_ids)
        emails.add(email)
        if ext_id is not None:
            ext_ids.add(ext_id)
        if undeclared or shares:
            deferred.append(index)
            continue
        try:
            # Every name is declared: preparing writes nothing, it only checks and converts.
            prepared = tx.prepare_attributes(request.attributes)
        except HookhubError as exc:
            outcomes[index] = exc
            continue
        values = {k: v for k, v in prepared.items() if v is not None}
        lists = list(dict.fromkeys(request.list_ids))
        plain.append(_Plain(index, request, email, ext_id, values, lists))
    return plain, deferred


def _insert_plain(
    crm: CrmService,
    tx: CrmTx,
    plain: list[_Plain],
    outcomes: list[Outcome | None],
    facts: dict[str, Any],
) -> list[int]:
    """Insert the new contacts, their memberships and messages; answers the indexes of those
    that must go the one-by-one way after all (email taken, ext_id taken, unknown list)."""
    if not plain:
        return []
    deferred: list[int] = []
    wanted_lists = {lid for p in plain for lid in p.list_ids}
    names = tx.lists.names(sorted(wanted_lists)) if wanted_lists else {}
    owned = tx.contacts.ext_id_owners([p.ext_id for p in plain if p.ext_id is not None])
    ready: list[_Plain] = []
    for p in plain:
        if (p.ext_id is not None and p.ext_id in owned) or any(
            lid not in names for lid in p.list_ids
        ):
            deferred.append(p.index)
        else:
            ready.append(p)
    new_ids = tx.contacts.insert_new(
        [
            {
                "email": p.email,
                "ext_id": p.ext_id,
                "attributes": jsoncodec.dumps(p.attributes).decode(),
                "unsubscribed": p.request.unsubscribed,
                "created_at": tx.now,
                "updated_at": tx.now,
            }
            for p in ready
        ]
    )
    created_at = jsoncodec.isoformat(tx.now)
    members: list[dict[str, Any]] = []
    by_origin: dict[tuple[Any, ...], tuple[Origin | None, list[OutboxMessage]]] = {}
    for p in ready:
        new_id = new_ids.get(p.email)
        if new_id is None:  # the email or ext_id exists (taken by a concurrent writer)
            deferred.append(p.index)
            continue
        contact = Contact(
            id=new_id,
            email=p.email,
            ext_id=p.ext_id,
            attributes=p.attributes,
            unsubscribed=p.request.unsubscribed,
            created_at=tx.now,
            updated_at=tx.now,
            list_ids=sorted(p.list_ids),
        )
        members.extend(
            {"list_id": lid, "contact_id": new_id, "added_at": tx.now} for lid in p.list_ids
        )
        origin = p.request.origin
        key = (origin.type, origin.id, origin.name) if origin is not None else ()
        batch = by_origin.setdefault(key, (origin, []))[1]
        batch.extend(_messages(contact, created_at, names, tx, origin))
        outcomes[p.index] = (contact, True)
    tx.lists.add_members(members)
    for origin, batch in by_origin.values():
        # One writer per origin: what automation triggers write keeps its batch's origin.
        crm.outbox.writer(tx.conn, facts, origin=origin).write(batch)
    return deferred


def _messages(
    contact: Contact,
    created_at: str,
    names: dict[int, str],
    tx: CrmTx,
    origin: Origin | None,
) -> list[OutboxMessage]:
    """What create_contact emits for a new contact, in its order."""
    ident = {"contact_id": contact.id, "email": contact.email}
    out = [
        build_message(
            "contact.created",
            {
                **ident,
                "ext_id": contact.ext_id,
                "attributes": contact.attributes,
                "list_ids": contact.list_ids,
                "unsubscribed": contact.unsubscribed,
                "created_at": created_at,
            },
            tx.now,
            origin=origin,
        )
    ]
    out.extend(
        build_message(
            "list.contact_added",
            {**ident, "list_id": lid, "list_name": names.get(lid)},
            tx.now,
            origin=origin,
        )
        for lid in contact.list_ids
    )
    if contact.unsubscribed:
        out.append(
            build_message("contact.unsubscribed", {**ident, "source": "api"}, tx.now, origin=origin)
        )
    return out
