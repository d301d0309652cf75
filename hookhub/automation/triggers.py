"""Automation triggers: an outbox fan-out that enrols contacts, ends their enrollments and
wakes ``wait_for`` steps, in the transaction that wrote the messages.

Every change to contacts, lists, events and emails writes its message through the outbox
(``crm/operations.py``, the importer, the email ledger for tracking hits and provider reports),
so one fan-out (:class:`AutomationTriggers`, registered in ``services.py``) sees them all, and an
enrollment commits or rolls back with the change that caused it. For each batch:

- ``contact.deleted`` ends the contact's active enrollments (``contact_deleted``);
- ``contact.unsubscribed`` ends those of automations with ``exit_on_unsubscribe``
  (``unsubscribed``), then enrols into automations triggered by ``contact.unsubscribed``;
- ``event.tracked`` whose name a ``wait_for`` step waits for wakes those enrollments;
- a message whose type is an enabled automation's trigger (with its ``list_id``,
  ``event_name`` or ``campaign_id`` if set) enrols the message's contact, the message's
  ``data`` being the trigger; the filter and ``reentry`` are :func:`enroll`'s.

It must stay cheap when nothing cares: one set lookup per message (the import of 100,000
contacts writes them in batches of a thousand), a batch's contacts read in one query, and it
never reacts to ``automation.*`` messages, so what it writes cannot trigger it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from hookhub.automation.batch_entry import Entry, enroll_many
from hookhub.automation.enroll import end_enrollments
from hookhub.automation.registry import AutomationRegistry, Compiled, Index
from hookhub.core import jsoncodec
from hookhub.crm.operations import CrmTx
from hookhub.outbound.outbox import Outbox, OutboxMessage
from hookhub.records.contacts import Contact
from hookhub.store.automation_triggers import contacts_by_id, live_automations
from hookhub.store.enrollments import EnrollmentStore

log = logging.getLogger("hookhub.automation")

ENROLLING = (
    "contact.created",
    "list.contact_added",
    "list.contact_removed",
    "event.tracked",
    "email.opened",
    "email.clicked",
    "contact.unsubscribed",
)
"""Message types that are also trigger types (``date`` and ``manual`` are not messages)."""
_CRM_TX = "automation_crm_tx"
_ENDS_OR_WAKES = frozenset({"contact.deleted", "contact.unsubscribed", "event.tracked"})


@dataclass(frozen=True, slots=True)
class _Interest:
    """What an index makes this fan-out look at."""

    types: frozenset[str]
    exit_on_unsubscribe: tuple[int, ...]


def interest(index: Index) -> _Interest:
    types = {kind for kind in ENROLLING if index.by_trigger.get(kind)}
    exits = tuple(c.id for c in index.by_id.values() if c.definition.exit_on_unsubscribe)
    if index.by_id:
        # Any automation may hold active enrollments (a disabled one holds them in place).
        types.add("contact.deleted")
    if exits:
        types.add("contact.unsubscribed")
    if index.waited_events:
        types.add("event.tracked")
    return _Interest(frozenset(types), exits)


def matches(compiled: Compiled, message_type: str, data: dict[str, Any]) -> bool:
    """Whether this message fires the automation's trigger (its type is already the trigger's)."""
    trigger = compiled.definition.trigger
    if message_type in ("list.contact_added", "list.contact_removed"):
        return trigger.list_id is None or trigger.list_id == data.get("list_id")
    if message_type == "event.tracked":
        return trigger.event_name == data.get("event_name")
    if message_type in ("email.opened", "email.clicked"):
        return trigger.campaign_id is None or trigger.campaign_id == data.get("campaign_id")
    return True


class AutomationTriggers:
    """The fan-out (``Outbox.add_fanout``); ``registry`` is the process's compiled automations."""

    def __init__(self, registry: AutomationRegistry, outbox: Outbox) -> None:
        self.registry = registry
        self.outbox = outbox
        self._interest: tuple[Index, _Interest] | None = None

    def _interest_of(self, index: Index) -> _Interest:
        cached = self._interest
        if cached is not None and cached[0] is index:
            return cached[1]
        found = interest(index)
        self._interest = (index, found)
        return found

    def __call__(
        self,
        conn: Connection,
        batch: list[OutboxMessage],
        scratch: dict[str, Any],
        facts: dict[str, Any],
    ) -> None:
        index = self.registry.index(conn)
        wanted = self._interest_of(index)
        if not wanted.types:
            return
        types = wanted.types
        relevant = [m for m in batch if m.type in types]
        if not relevant:
            return
        messages = [(m, jsoncodec.loads(m.payload)["data"]) for m in relevant]
        tx: CrmTx | None = scratch.get(_CRM_TX)
        if tx is None:
            # What the triggers write (automation.entered, ...) keeps the origin of what
            # triggered them: one request's messages share one origin.
            tx = scratch[_CRM_TX] = CrmTx(
                conn,
                self.outbox.writer(conn, facts, origin=relevant[0].origin),
                relevant[0].created_at,
            )
        _Run(self.registry, tx, index, wanted, messages).run()


class _Run:
    """One batch's work, in message order."""

    def __init__(
        self,
        registry: AutomationRegistry,
        tx: CrmTx,
        index: Index,
        wanted: _Interest,
        messages: list[tuple[OutboxMessage, dict[str, Any]]],
    ) -> None:
        self.registry = registry
        self.tx = tx
        self.index = index
        self.wanted = wanted
        self.messages = messages
        self._contacts: dict[int, Contact] | None = None
        self._live: dict[int, Compiled | None] = {}
        self._pending: dict[int, tuple[Compiled, str, list[Entry]]] = {}
        """Entries not yet made, by automation: made together, before anything that ends or
        wakes enrollments (so the batch's order holds) and at the end."""

    def run(self) -> None:
        enrollments = EnrollmentStore(self.tx.conn)
        for message, data in self.messages:
            contact_id = data.get("contact_id")
            if not isinstance(contact_id, int):
                continue  # an email to an address that is no contact
            kind = message.type
            if kind in _ENDS_OR_WAKES:
                self._flush()
                self.tx.now = message.created_at
            if kind == "contact.deleted":
                end_enrollments(
                    self.tx,
                    contact_id=contact_id,
                    email=str(data.get("email", "")),
                    reason="contact_deleted",
                )
                continue
            if kind == "contact.unsubscribed" and self.wanted.exit_on_unsubscribe:
                end_enrollments(
                    self.tx,
                    contact_id=contact_id,
                    email=str(data.get("email", "")),
                    reason="unsubscribed",
                    automation_ids=self.wanted.exit_on_unsubscribe,
                )
            if kind == "event.tracked":
                name = data.get("event_name")
                if name in self.index.waited_events:
                    enrollments.match_waiting(contact_id, str(name), message.created_at.timestamp())
            self._enrol(kind, contact_id, data, message.created_at)
        self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for compiled, kind, entries in pending.values():
            enroll_many(self.tx, compiled, entries, trigger_type=kind)

    def _enrol(self, kind: str, contact_id: int, data: dict[str, Any], at: datetime) -> None:
        candidates = [c for c in self.index.by_trigger.get(kind, ()) if matches(c, kind, data)]
        if not candidates:
            return
        contact = self._contact(contact_id)
        if contact is None:
            return  # deleted later in this transaction
        for candidate in candidates:
            compiled = self._current(candidate)
            if compiled is None or compiled.definition.trigger.type != kind:
                continue
            if compiled is candidate or matches(compiled, kind, data):
                _, _, entries = self._pending.setdefault(compiled.id, (compiled, kind, []))
                entries.append(Entry(contact, data, at))

    def _contact(self, contact_id: int) -> Contact | None:
        if self._contacts is None:
            # Every contact the batch may enrol, in one read (the state after the batch).
            ids = {
                d["contact_id"]
                for m, d in self.messages
                if isinstance(d.get("contact_id"), int) and self.index.by_trigger.get(m.type)
            }
            self._contacts = contacts_by_id(self.tx.conn, ids)
        return self._contacts.get(contact_id)

    def _current(self, cached: Compiled) -> Compiled | None:
        """The automation as this transaction sees it: None when deleted or disabled since the
        index was loaded, reloaded when edited since."""
        if cached.id not in self._live:
            kinds = {m.type for m, _ in self.messages}
            wanted = [c.id for kind in kinds for c in self.index.by_trigger.get(kind, ())]
            live = live_automations(self.tx.conn, wanted)
            for automation_id in wanted:
                row = live.get(automation_id)
                compiled = self.index.by_id.get(automation_id)
                if row is None or not row.enabled or compiled is None:
                    self._live[automation_id] = None
                elif compiled.automation.version != row.version:
                    self._live[automation_id] = self.registry.compiled(
                        self.tx.conn, automation_id, row.version
                    )
                else:
                    self._live[automation_id] = compiled
        return self._live.get(cached.id)
