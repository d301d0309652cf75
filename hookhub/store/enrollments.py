"""Enrollments: the statements that create, end and wake them, and what workers claim.

An enrollment is *due* when it is active and ``due_at`` has passed; the claim leases it as the
email queue leases emails (``store/emails.py``): ``lease_owner`` names the worker and ``due_at``
becomes the lease's expiry, so a dead worker's enrollments fall due again. On PostgreSQL claims
use ``FOR UPDATE SKIP LOCKED``. This module must never commit (the caller's transaction decides)
nor wake a worker before its enrollments are committed: :meth:`EnrollmentStore.due_now` wakes
this process's workers after the commit (:func:`on_due`) and, on PostgreSQL, NOTIFYs the others.

The worker's statements (:meth:`EnrollmentStore.claim_due`, :meth:`~EnrollmentStore.held`,
:meth:`~EnrollmentStore.advance`, :meth:`~EnrollmentStore.release`,
:meth:`~EnrollmentStore.next_due`) only ever touch enrollments of *enabled* automations: a
disabled automation holds its enrollments where they are, due or not.

Reads for the API (listing, counts, journeys) are ``enrollment_reads.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    insert,
    select,
    text,
    true,
    update,
)

from hookhub.core import jsoncodec
from hookhub.records.automations import ACTIVE, Enrollment
from hookhub.store.notify import CommitWakers
from hookhub.store.schema_automation import automation_enrollments as enrollments
from hookhub.store.schema_automation import automation_step_log, automations

AUTOMATION_CHANNEL = "hookhub_automation"
"""NOTIFY channel: a transaction made enrollments due (PostgreSQL); automation workers LISTEN."""

_WAKERS = CommitWakers(AUTOMATION_CHANNEL)
on_due = _WAKERS.on
"""``on_due(engine, wake)``: call ``wake()`` after every commit on ``engine`` that made
enrollments due; answers the function that stops it (:meth:`CommitWakers.on`)."""


def mark_ended(
    conn: Connection, ids: Sequence[int], reason: str, now: float, *, status: str = "exited"
) -> None:
    """Finish these enrollments (those still active) with ``reason``: no due time, no lease."""
    if not ids:
        return
    conn.execute(
        update(enrollments)
        .where(enrollments.c.id.in_(list(ids)), enrollments.c.status == ACTIVE)
        .values(
            status=status,
            exit_reason=reason,
            due_at=None,
            lease_owner=None,
            waiting_for=None,
            finished_at=now,
            updated_at=now,
        )
    )


def row_to_enrollment(row: Row[Any]) -> Enrollment:
    return Enrollment(
        id=row.id,
        automation_id=row.automation_id,
        contact_id=row.contact_id,
        status=row.status,
        step_id=row.step_id,
        step_started_at=row.step_started_at,
        waiting_for=row.waiting_for,
        matched=bool(row.matched),
        due_at=row.due_at,
        trigger=jsoncodec.loads(row.trigger) if row.trigger else {},
        entry_key=row.entry_key,
        exit_reason=row.exit_reason,
        error=jsoncodec.loads(row.error) if row.error else None,
        entered_at=row.entered_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        lease_owner=row.lease_owner,
    )


@dataclass(frozen=True, slots=True)
class NewEnrollment:
    automation_id: int
    contact_id: int
    step_id: str | None
    trigger: dict[str, Any]
    entry_key: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """An enrollment a worker has just leased: which, and for whom (contacts are locked
    first when the batch runs, in the order the API locks them)."""

    id: int
    contact_id: int


@dataclass(frozen=True, slots=True)
class Held:
    """A leased enrollment as the run transaction reads it, with its automation's version."""

    enrollment: Enrollment
    version: int


@dataclass(slots=True)
class Advance:
    """Where one run left an enrollment: the values its row takes (the lease given back)."""

    id: int
    status: str
    step_id: str | None
    step_started_at: float | None = None
    waiting_for: str | None = None
    matched: bool = False
    due_at: float | None = None
    exit_reason: str | None = None
    error: dict[str, Any] | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """An enrollment just ended (for its ``automation.exited``)."""

    id: int
    automation_id: int
    contact_id: int
    step_id: str | None


class EnrollmentStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # -- entry ---------------------------------------------------------------------------------

    def blocking_entry(self, automation_id: int, contact_id: int, reentry: str) -> bool:
        """Whether ``reentry`` keeps this contact out: ``never`` if it was ever enrolled,
        ``after_exit`` while it is enrolled, ``always`` never."""
        if reentry == "always":
            return False
        query = select(enrollments.c.id).where(
            enrollments.c.automation_id == automation_id,
            enrollments.c.contact_id == contact_id,
        )
        if reentry == "after_exit":
            query = query.where(enrollments.c.status == ACTIVE)
        return self.conn.execute(query.limit(1)).first() is not None

    def insert(self, new: NewEnrollment, now: float) -> int | None:
        """Insert an active enrollment due now; None when ``entry_key`` was already used."""
        values = {
            "automation_id": new.automation_id,
            "contact_id": new.contact_id,
            "status": ACTIVE if new.step_id is not None else "completed",
            "step_id": new.step_id,
            "matched": False,
            "due_at": now if new.step_id is not None else None,
            "trigger": jsoncodec.dumps(new.trigger).decode(),
            "entry_key": new.entry_key,
            "entered_at": now,
            "updated_at": now,
            "finished_at": None if new.step_id is not None else now,
            "exit_reason": None if new.step_id is not None else "completed",
        }
        if new.entry_key is not None:
            taken = select(enrollments.c.id).where(
                enrollments.c.automation_id == new.automation_id,
                enrollments.c.contact_id == new.contact_id,
                enrollments.c.entry_key == new.entry_key,
            )
            if self.conn.execute(taken).first() is not None:
                return None
        new_id = self.conn.execute(
            insert(enrollments).values(**values).returning(enrollments.c.id)
        ).scalar_one()
        if new.step_id is not None:
            self.due_now()
        return int(new_id)

    def get(self, enrollment_id: int) -> Enrollment | None:
        row = self.conn.execute(
            select(enrollments).where(enrollments.c.id == enrollment_id)
        ).first()
        return None if row is None else row_to_enrollment(row)

    # -- ending --------------------------------------------------------------------------------

    def end_active(
        self,
        *,
        contact_id: int,
        reason: str,
        now: float,
        automation_ids: Iterable[int] | None = None,
        enrollment_id: int | None = None,
        status: str = "exited",
    ) -> list[Ended]:
        """End the contact's active enrollments (of ``automation_ids`` if given, or the one
        ``enrollment_id``); answers those ended."""
        where = [enrollments.c.contact_id == contact_id, enrollments.c.status == ACTIVE]
        if automation_ids is not None:
            wanted = list(automation_ids)
            if not wanted:
                return []
            where.append(enrollments.c.automation_id.in_(wanted))
        if enrollment_id is not None:
            where.append(enrollments.c.id == enrollment_id)
        query = select(
            enrollments.c.id,
            enrollments.c.automation_id,
            enrollments.c.contact_id,
            enrollments.c.step_id,
        ).where(and_(*where))
        if self._pg:
            query = query.with_for_update()
        ended = [
            Ended(r.id, r.automation_id, r.contact_id, r.step_id) for r in self.conn.execute(query)
        ]
        mark_ended(self.conn, [e.id for e in ended], reason, now, status=status)
        return ended

    # -- wait_for ------------------------------------------------------------------------------

    def match_waiting(self, contact_id: int, event_name: str, now: float) -> int:
        """Mark the contact's enrollments waiting for ``event_name`` matched and due now."""
        result = self.conn.execute(
            update(enrollments)
            .where(
                enrollments.c.contact_id == contact_id,
                enrollments.c.status == ACTIVE,
                enrollments.c.waiting_for == event_name,
                enrollments.c.matched.is_(False),
            )
            .values(matched=True, due_at=now, updated_at=now)
        )
        if result.rowcount:
            self.due_now()
        return int(result.rowcount)

    # -- the step log --------------------------------------------------------------------------

    def log_steps(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append to the step log: dicts of enrollment_id, automation_id, step_id, kind,
        outcome, at and detail (a JSON-able value or None)."""
        if not rows:
            return
        self.conn.execute(
            insert(automation_step_log),
            [
                {
                    **row,
                    "detail": None
                    if row.get("detail") is None
                    else jsoncodec.dumps(row["detail"]).decode(),
                }
                for row in rows
            ],
        )

    # -- the worker's queue --------------------------------------------------------------------

    def claim_due(self, owner: str, now: float, lease_until: float, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due enrollments of enabled automations, the longest due first:
        one ``UPDATE ... RETURNING`` (rows locked with ``SKIP LOCKED`` on PostgreSQL; SQLite's
        ``BEGIN IMMEDIATE`` already keeps others out)."""
        due = (
            select(enrollments.c.id)
            .join(automations, automations.c.id == enrollments.c.automation_id)
            .where(_ACTIVE, enrollments.c.due_at <= now, automations.c.enabled == true())
            .order_by(enrollments.c.due_at)
            .limit(limit)
        )
        if self._pg:
            due = due.with_for_update(of=enrollments, skip_locked=True)
        statement = (
            update(enrollments)
            .where(enrollments.c.id.in_(due.scalar_subquery()))
            .values(lease_owner=owner, due_at=lease_until)
            .returning(enrollments.c.id, enrollments.c.contact_id)
        )
        claimed = [Claimed(row.id, row.contact_id) for row in self.conn.execute(statement)]
        claimed.sort(key=lambda c: c.id)
        return claimed

    def held(self, owner: str, ids: Sequence[int]) -> list[Held]:
        """The enrollments among ``ids`` that ``owner`` still leases and that are still
        active, locked for this transaction on PostgreSQL, in id order. One whose lease ran
        out and went to another worker, or that ended meanwhile (its contact deleted), is
        not among them; nor one whose automation was disabled or deleted since the claim."""
        if not ids:
            return []
        query = (
            select(enrollments, automations.c.version)
            .join(automations, automations.c.id == enrollments.c.automation_id)
            .where(
                enrollments.c.id.in_(list(ids)),
                enrollments.c.lease_owner == owner,
                _ACTIVE,
                automations.c.enabled == true(),
            )
            .order_by(enrollments.c.id)
        )
        if self._pg:
            query = query.with_for_update(of=enrollments)
        return [Held(row_to_enrollment(row), int(row.version)) for row in self.conn.execute(query)]

    def advance(self, owner: str, advances: Sequence[Advance], now: float) -> int:
        """Record where runs left their enrollments, for those ``owner`` still leases; the
        lease is given back. Answers how many rows took it."""
        if not advances:
            return 0
        rows = [
            {
                "b_id": a.id,
                "b_owner": owner,
                "b_status": a.status,
                "b_step_id": a.step_id,
                "b_started": a.step_started_at,
                "b_waiting_for": a.waiting_for,
                "b_matched": a.matched,
                "b_due_at": a.due_at,
                "b_exit_reason": a.exit_reason,
                "b_error": None if a.error is None else jsoncodec.dumps(a.error).decode(),
                "b_finished_at": a.finished_at,
                "b_now": now,
            }
            for a in advances
        ]
        result = self.conn.execute(_ADVANCE, rows)
        if any(a.status == ACTIVE and a.due_at is not None and a.due_at <= now for a in advances):
            self.due_now()  # more steps to run at once (a run cut short by its step cap)
        return int(result.rowcount)

    def release(self, owner: str, ids: Sequence[int] | None = None) -> int:
        """Give back ``owner``'s leases (all, or of ``ids``): due again at once, so a worker
        that stops or drops a batch holds nothing up. A waiting enrollment claimed again
        before its time just goes back to waiting."""
        statement = (
            update(enrollments)
            .where(enrollments.c.lease_owner == owner, _ACTIVE)
            .values(lease_owner=None, due_at=0.0)
        )
        if ids is not None:
            if not ids:
                return 0
            statement = statement.where(enrollments.c.id.in_(list(ids)))
        return int(self.conn.execute(statement).rowcount)

    def next_due(self) -> float | None:
        """When the soonest active enrollment of an enabled automation falls due (or its
        lease runs out): the due index walked in order, stopping at the first enabled one."""
        query = (
            select(enrollments.c.due_at)
            .join(automations, automations.c.id == enrollments.c.automation_id)
            .where(_ACTIVE, enrollments.c.due_at.is_not(None), automations.c.enabled == true())
            .order_by(enrollments.c.due_at)
            .limit(1)
        )
        value = self.conn.execute(query).scalar()
        return float(value) if value is not None else None

    # -- waking --------------------------------------------------------------------------------

    def due_now(self) -> None:
        """Wake automation workers once this transaction commits: this process's (see
        :func:`on_due`) and, on PostgreSQL, every other process's (NOTIFY)."""
        _WAKERS.after_commit(self.conn)


_ACTIVE = text("automation_enrollments.status = 'active'")  # literal: the due index's condition

_ADVANCE = (
    update(enrollments)
    .where(
        enrollments.c.id == bindparam("b_id"),
        enrollments.c.lease_owner == bindparam("b_owner"),
        _ACTIVE,
    )
    .values(
        status=bindparam("b_status"),
        step_id=bindparam("b_step_id"),
        step_started_at=bindparam("b_started"),
        waiting_for=bindparam("b_waiting_for"),
        matched=bindparam("b_matched"),
        due_at=bindparam("b_due_at"),
        lease_owner=None,
        exit_reason=bindparam("b_exit_reason"),
        error=bindparam("b_error"),
        finished_at=bindparam("b_finished_at"),
        updated_at=bindparam("b_now"),
    )
)
