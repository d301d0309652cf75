"""Entering and leaving automations, inside the caller's write transaction.

Every way in (a trigger firing in the outbox, ``POST /automations/{id}/enrollments``, the
inbound rule action ``start_automation``, a date trigger's scan) goes through :func:`enroll`;
every way out that is not a step finishing (the contact deleted or unsubscribed, removed by
hand, its step removed by an edit) through :func:`end_enrollments`. Both write their
``automation.entered``/``exited`` message in the same transaction as the change (``CrmTx``'s
outbox writer), so a trigger's enrollment commits or rolls back with the event that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hookhub.automation import events
from hookhub.core.expressions import is_truthy
from hookhub.errors import HookhubError
from hookhub.store.automations import AutomationStore
from hookhub.store.enrollments import Ended, EnrollmentStore, NewEnrollment

if TYPE_CHECKING:
    from hookhub.automation.registry import Compiled
    from hookhub.crm.operations import CrmTx
    from hookhub.records.contacts import Contact

log = logging.getLogger("hookhub.automation")


def contact_view(contact: Contact) -> dict[str, Any]:
    """The contact as expressions see it (``contact`` in ``{contact, trigger}``)."""
    return {
        "id": contact.id,
        "email": contact.email,
        "ext_id": contact.ext_id,
        "attributes": contact.attributes,
        "list_ids": contact.list_ids,
        "unsubscribed": contact.unsubscribed,
        "email_blocked": contact.email_blocked is not None,
    }


def passes_filter(compiled: Compiled, contact: Contact, trigger: dict[str, Any]) -> bool:
    """Whether the automation's ``filter`` lets this contact in; a filter that fails on this
    contact's values keeps it out (and says so in the log)."""
    expression = compiled.definition.filter
    if expression is None:
        return True
    try:
        value = expression.search({"contact": contact_view(contact), "trigger": trigger})
    except HookhubError as exc:
        log.warning(
            "automation.filter_failed",
            extra={"automation_id": compiled.id, "contact_id": contact.id, "error": exc.message},
        )
        return False
    return is_truthy(value)  # JMESPath truth, as if steps and rules: 0 is true


def enroll(
    tx: CrmTx,
    compiled: Compiled,
    contact: Contact,
    *,
    trigger_type: str,
    trigger: dict[str, Any],
    entry_key: str | None = None,
    apply_filter: bool = True,
) -> int | None:
    """Enrol ``contact``: answers the enrollment's id, or None when the filter, ``reentry`` or
    ``entry_key`` keeps it out. The first step runs as soon as a worker claims it."""
    if apply_filter and not passes_filter(compiled, contact, trigger):
        return None
    automation = compiled.automation
    store = EnrollmentStore(tx.conn)
    if store.blocking_entry(automation.id, contact.id, compiled.definition.reentry):
        return None
    enrollment_id = store.insert(
        NewEnrollment(
            automation_id=automation.id,
            contact_id=contact.id,
            step_id=compiled.definition.program.first,
            trigger={"type": trigger_type, "data": trigger},
            entry_key=entry_key,
        ),
        tx.now.timestamp(),
    )
    if enrollment_id is None:
        return None
    tx.outbox.write(
        [
            events.entered(
                automation_id=automation.id,
                automation_name=automation.name,
                enrollment_id=enrollment_id,
                contact_id=contact.id,
                email=contact.email,
                trigger=trigger_type,
                at=tx.now,
            )
        ]
    )
    return enrollment_id


def end_enrollments(
    tx: CrmTx,
    *,
    contact_id: int,
    email: str,
    reason: str,
    automation_ids: Iterable[int] | None = None,
    enrollment_id: int | None = None,
) -> list[Ended]:
    """End the contact's active enrollments (all, of ``automation_ids``, or one) with
    ``reason``, each with its ``automation.exited``."""
    ended = EnrollmentStore(tx.conn).end_active(
        contact_id=contact_id,
        reason=reason,
        now=tx.now.timestamp(),
        automation_ids=automation_ids,
        enrollment_id=enrollment_id,
    )
    if not ended:
        return ended
    names = AutomationStore(tx.conn).names(e.automation_id for e in ended)
    tx.outbox.write(
        [
            events.exited(
                automation_id=e.automation_id,
                automation_name=names.get(e.automation_id, ""),
                enrollment_id=e.id,
                contact_id=e.contact_id,
                email=email,
                reason=reason,
                step_id=e.step_id,
                at=tx.now,
            )
            for e in ended
        ]
    )
    return ended
