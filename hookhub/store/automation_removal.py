"""What removing an automation, or steps of it, takes: ending its active enrollments a batch at
a time, and deleting the hidden endpoints its webhook steps post through.

Ending here is :meth:`EnrollmentStore.end_active` for many contacts at once (an edit can strand
thousands on a removed step); each ended enrollment comes back with its contact's email for its
``automation.exited``, which the caller writes in the same transaction. This module must never
commit, and never end an enrollment that is not active.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from hookhub.records.automations import ACTIVE
from hookhub.store.config_versions import ConfigKind, bump
from hookhub.store.enrollments import mark_ended
from hookhub.store.schema import contacts, endpoints
from hookhub.store.schema_automation import automation_enrollments as enrollments


@dataclass(frozen=True, slots=True)
class EndedEnrollment:
    id: int
    contact_id: int
    email: str
    step_id: str | None


def end_active_batch(
    conn: Connection,
    automation_id: int,
    *,
    reason: str,
    now: float,
    limit: int,
    keep_step_ids: Collection[str] | None = None,
) -> list[EndedEnrollment]:
    """End up to ``limit`` of the automation's active enrollments (with ``keep_step_ids``:
    only those on a step not among them); answers those ended, oldest first."""
    query = (
        select(
            enrollments.c.id,
            enrollments.c.contact_id,
            enrollments.c.step_id,
            contacts.c.email,
        )
        .select_from(enrollments.outerjoin(contacts, contacts.c.id == enrollments.c.contact_id))
        .where(enrollments.c.automation_id == automation_id, enrollments.c.status == ACTIVE)
        .order_by(enrollments.c.id)
        .limit(limit)
    )
    if keep_step_ids is not None:
        query = query.where(enrollments.c.step_id.not_in(sorted(keep_step_ids)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=enrollments)
    ended = [
        EndedEnrollment(row.id, row.contact_id, row.email or "", row.step_id)
        for row in conn.execute(query)
    ]
    mark_ended(conn, [e.id for e in ended], reason, now)
    return ended


def delete_owned_endpoints(conn: Connection, automation_id: int) -> int:
    """Delete the hidden endpoints of the automation's webhook steps (their pending deliveries
    go with them); answers how many."""
    result = conn.execute(delete(endpoints).where(endpoints.c.automation_id == automation_id))
    if result.rowcount:
        bump(conn, ConfigKind.ENDPOINTS)
    return int(result.rowcount)
