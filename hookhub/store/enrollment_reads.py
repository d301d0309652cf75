"""Reads of enrollments for the API: an automation's counts, enrollment pages, a contact's
journey (its enrollments and what each step did).

Counting reads indexes, never a row's JSON: the enrollment totals and the enrollments on each
step come from ``ix_automation_enrollments_automation`` (automation, status, step), the step
outcomes from ``ix_automation_step_log_counts`` (automation, step, outcome); only enrollments
that were ended from outside while on a step are read as rows, for their reason. Pages are
keyset pages by id. This module must never write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, func, select

from hookhub.core import jsoncodec
from hookhub.records.automations import Enrollment
from hookhub.store.enrollments import row_to_enrollment
from hookhub.store.schema import contacts
from hookhub.store.schema_automation import automation_enrollments as enrollments
from hookhub.store.schema_automation import automation_step_log as step_log

OUTSIDE_REASONS = ("unsubscribed", "contact_deleted", "removed", "step_removed")
"""Ways out that end an enrollment where it stands, without its step logging anything."""

STEP_LOG_LIMIT = 200
"""At most this many step log rows per enrollment in a journey (the latest)."""


@dataclass
class StepTally:
    waiting: int = 0
    completed: int = 0
    skipped: int = 0
    failed: int = 0
    exited: int = 0

    @property
    def entered(self) -> int:
        return self.waiting + self.completed + self.skipped + self.failed + self.exited


@dataclass
class AutomationTally:
    by_status: dict[str, int] = field(default_factory=dict)
    steps: dict[str, StepTally] = field(default_factory=dict)

    def step(self, step_id: str) -> StepTally:
        return self.steps.setdefault(step_id, StepTally())


@dataclass(frozen=True, slots=True)
class LoggedStep:
    enrollment_id: int
    step_id: str
    kind: str
    outcome: str
    at: float
    detail: Any


def automation_tally(conn: Connection, automation_id: int) -> AutomationTally:
    """Enrollments by status, and per step: on it now, its outcomes, those ended on it."""
    tally = AutomationTally()
    by_status = (
        select(enrollments.c.status, enrollments.c.step_id, func.count())
        .where(enrollments.c.automation_id == automation_id)
        .group_by(enrollments.c.status, enrollments.c.step_id)
    )
    for status, step_id, count in conn.execute(by_status):
        tally.by_status[status] = tally.by_status.get(status, 0) + int(count)
        if status == "active" and step_id is not None:
            tally.step(step_id).waiting += int(count)
    outcomes = (
        select(step_log.c.step_id, step_log.c.outcome, func.count())
        .where(step_log.c.automation_id == automation_id)
        .group_by(step_log.c.step_id, step_log.c.outcome)
    )
    for step_id, outcome, count in conn.execute(outcomes):
        step = tally.step(step_id)
        if outcome in ("completed", "skipped", "failed"):
            setattr(step, outcome, getattr(step, outcome) + int(count))
    ended_on_step = (
        select(enrollments.c.step_id, func.count())
        .where(
            enrollments.c.automation_id == automation_id,
            enrollments.c.status == "exited",
            enrollments.c.step_id.is_not(None),
            enrollments.c.exit_reason.in_(OUTSIDE_REASONS),
        )
        .group_by(enrollments.c.step_id)
    )
    for step_id, count in conn.execute(ended_on_step):
        tally.step(step_id).exited += int(count)
    return tally


@dataclass(frozen=True, slots=True)
class EnrollmentRow:
    enrollment: Enrollment
    email: str | None
    """The contact's email; None once the contact is gone."""


def _with_email(rows: Sequence[Row[Any]]) -> list[EnrollmentRow]:
    return [EnrollmentRow(row_to_enrollment(row), row.contact_email) for row in rows]


def _joined() -> Any:
    return select(enrollments, contacts.c.email.label("contact_email")).select_from(
        enrollments.outerjoin(contacts, contacts.c.id == enrollments.c.contact_id)
    )


def enrollment_page(
    conn: Connection,
    automation_id: int,
    *,
    contact_id: int | None,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> list[EnrollmentRow]:
    """An automation's enrollments, oldest first (optionally of one contact, of one status)."""
    query = (
        _joined()
        .where(enrollments.c.automation_id == automation_id)
        .order_by(enrollments.c.id)
        .limit(limit)
    )
    if contact_id is not None:
        query = query.where(enrollments.c.contact_id == contact_id)
    if status is not None:
        query = query.where(enrollments.c.status == status)
    if after_id is not None:
        query = query.where(enrollments.c.id > after_id)
    return _with_email(conn.execute(query).all())


def get_enrollment(conn: Connection, enrollment_id: int) -> EnrollmentRow | None:
    row = conn.execute(_joined().where(enrollments.c.id == enrollment_id)).first()
    return None if row is None else _with_email([row])[0]


def contact_enrollments(
    conn: Connection, contact_id: int, *, before_id: int | None, limit: int
) -> list[Enrollment]:
    """A contact's enrollments in every automation, newest first."""
    query = (
        select(enrollments)
        .where(enrollments.c.contact_id == contact_id)
        .order_by(enrollments.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(enrollments.c.id < before_id)
    return [row_to_enrollment(row) for row in conn.execute(query)]


def step_logs(conn: Connection, enrollment_ids: Sequence[int]) -> dict[int, list[LoggedStep]]:
    """What each enrollment's steps did, in order (the latest ``STEP_LOG_LIMIT`` of each)."""
    found: dict[int, list[LoggedStep]] = {i: [] for i in enrollment_ids}
    if not enrollment_ids:
        return found
    query = (
        select(step_log)
        .where(step_log.c.enrollment_id.in_(sorted(set(enrollment_ids))))
        .order_by(step_log.c.enrollment_id, step_log.c.id)
    )
    for row in conn.execute(query):
        found[row.enrollment_id].append(
            LoggedStep(
                enrollment_id=row.enrollment_id,
                step_id=row.step_id,
                kind=row.kind,
                outcome=row.outcome,
                at=row.at,
                detail=None if row.detail is None else jsoncodec.loads(row.detail),
            )
        )
    return {key: steps[-STEP_LOG_LIMIT:] for key, steps in found.items()}
