"""Entering one automation many contacts at a time: :func:`enroll`'s rules for a batch.

A trigger firing for a thousand contacts (a CSV import, a list filled at once, a date scan)
would cost :func:`~hookhub.automation.enroll.enroll`'s three statements and one outbox write per
contact; :func:`enroll_many` does the same in one query for ``reentry``, one for entry keys,
one insert and one outbox write for the batch. The rules are the same, in the order given: the
filter (per contact), ``reentry`` (``never``: never enrolled before, in the database or earlier
in this batch; ``after_exit``: not enrolled now; ``always``: no check) and ``entry_key`` (once
per automation, contact and key).

It must never commit, and must stay interchangeable with calling ``enroll`` once per entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hookhub.automation import events
from hookhub.automation.enroll import passes_filter
from hookhub.core import jsoncodec
from hookhub.records.automations import ACTIVE
from hookhub.store.automation_triggers import (
    entered_with_key,
    insert_enrollments,
    reentry_blocked,
)
from hookhub.store.enrollments import EnrollmentStore

if TYPE_CHECKING:
    from hookhub.automation.registry import Compiled
    from hookhub.crm.operations import CrmTx
    from hookhub.records.contacts import Contact


@dataclass(frozen=True, slots=True)
class Entry:
    contact: Contact
    trigger: dict[str, Any]
    """The trigger's data (``trigger`` in expressions)."""
    at: datetime


def enroll_many(
    tx: CrmTx,
    compiled: Compiled,
    entries: list[Entry],
    *,
    trigger_type: str,
    entry_key: str | None = None,
) -> list[int]:
    """Enrol each entry the filter, ``reentry`` and ``entry_key`` let in; their ids."""
    admitted = [e for e in entries if passes_filter(compiled, e.contact, e.trigger)]
    if not admitted:
        return []
    automation = compiled.automation
    reentry = compiled.definition.reentry
    ids = [e.contact.id for e in admitted]
    taken: set[int] = set()
    if reentry != "always":
        taken = reentry_blocked(tx.conn, automation.id, ids, active_only=reentry == "after_exit")
    if entry_key is not None:
        taken |= entered_with_key(tx.conn, automation.id, entry_key, ids)
    chosen: list[Entry] = []
    for entry in admitted:
        if entry.contact.id in taken:
            continue
        if reentry != "always" or entry_key is not None:
            taken.add(entry.contact.id)  # once per batch, as one enroll() after another
        chosen.append(entry)
    first = compiled.definition.program.first
    rows = [_row(automation.id, first, e, trigger_type, entry_key) for e in chosen]
    new_ids = insert_enrollments(tx.conn, rows)
    if not new_ids:
        return []
    if first is not None:
        EnrollmentStore(tx.conn).due_now()
    tx.outbox.write(
        [
            events.entered(
                automation_id=automation.id,
                automation_name=automation.name,
                enrollment_id=new_id,
                contact_id=entry.contact.id,
                email=entry.contact.email,
                trigger=trigger_type,
                at=entry.at,
            )
            for entry, new_id in zip(chosen, new_ids, strict=True)
        ]
    )
    return new_ids


def _row(
    automation_id: int,
    first: str | None,
    entry: Entry,
    trigger_type: str,
    entry_key: str | None,
) -> dict[str, Any]:
    """The row ``EnrollmentStore.insert`` writes for one entry."""
    now = entry.at.timestamp()
    running = first is not None
    return {
        "automation_id": automation_id,
        "contact_id": entry.contact.id,
        "status": ACTIVE if running else "completed",
        "step_id": first,
        "matched": False,
        "due_at": now if running else None,
        "trigger": jsoncodec.dumps({"type": trigger_type, "data": entry.trigger}).decode(),
        "entry_key": entry_key,
        "entered_at": now,
        "updated_at": now,
        "finished_at": None if running else now,
        "exit_reason": None if running else "completed",
    }
