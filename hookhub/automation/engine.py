"""The step machine: runs due enrollments from the step they are on until a waiting step
begins or the run ends.

:meth:`AutomationEngine.claim` leases a batch of due enrollments (one short transaction);
:meth:`AutomationEngine.run` runs them in ONE write transaction: the batch's contacts are
locked (PostgreSQL) and read in one query, the enrollments read again (only those still
leased by this worker and active), and each enrollment runs in a savepoint of its own, with
the program at the version its automation has in this transaction. Its effects, its step log
rows, its ``automation.exited`` and its advance commit together, so a crash at any moment
repeats no step and skips none: uncommitted work is rolled back and the enrollment falls due
again when its lease runs out.

Failures stay with their enrollment: a step that cannot run for this contact (an expression
failing on its values, a deleted template or list) or anything unexpected fails that
enrollment (``failed``, the error and expression recorded, ``automation.exited`` reason
``failed``); the steps it completed earlier in the same run are kept (the run is replayed up
to the failing step). Should the batch transaction itself fail, its enrollments run again one
transaction each. A database that cannot be reached is nobody's fault: the error goes to the
caller (the loop), which runs the same batch again later.

A run stops after :data:`MAX_STEPS_PER_RUN` steps (due again at once), so no definition can
hold a worker. This module must never sleep, read a clock other than the one it is given, or
write SQL (``store/enrollments.py`` has it).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DataError, PendingRollbackError

from hookhub.automation import events
from hookhub.automation.registry import AutomationRegistry, Compiled
from hookhub.automation.steps import EFFECTS, Go, StepContext, run_step
from hookhub.clock import Clock
from hookhub.errors import HookhubError
from hookhub.inbound.rule_expressions import RuleError
from hookhub.outbound.leases import default_worker_id
from hookhub.outbound.outbox import Outbox, OutboxMessage
from hookhub.records.automations import ACTIVE
from hookhub.records.contacts import Contact
from hookhub.store.contacts import ContactStore
from hookhub.store.database import Database, is_transient
from hookhub.store.enrollments import Advance, Claimed, EnrollmentStore, Held

log = logging.getLogger("hookhub.automation")

MAX_STEPS_PER_RUN = 100
MAX_ERROR_LENGTH = 2000


def is_database_outage(exc: BaseException) -> bool:
    return is_transient(exc) or isinstance(exc, PendingRollbackError)


class StepFailed(Exception):
    """A step of one run could not be done: which, after how many steps, and why."""

    def __init__(self, step_id: str, done: int, cause: BaseException) -> None:
        super().__init__(step_id)
        self.step_id = step_id
        self.done = done
        self.cause = cause

    def error(self) -> dict[str, Any]:
        cause = self.cause
        if isinstance(cause, HookhubError):
            message = cause.message
        elif isinstance(cause, DataError):
            first = str(cause.orig).splitlines()[0] if cause.orig is not None else ""
            message = f"the database refused a value: {first or type(cause).__name__}"
        else:
            detail = str(cause).splitlines()[0][:200] if str(cause) else ""
            message = f"unexpected error ({type(cause).__name__}{': ' + detail if detail else ''})"
        error: dict[str, Any] = {
            "step_id": self.step_id,
            "message": message.replace("\x00", "\ufffd")[:MAX_ERROR_LENGTH],
        }
        if isinstance(cause, RuleError) and cause.expression is not None:
            error["expression"] = cause.expression
        return error


@dataclass(slots=True)
class Walk:
    """Where one run left its enrollment, and what it logged on the way."""

    advance: Advance
    logs: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0


@dataclass(slots=True)
class Batch:
    conn: Connection
    now: float
    at: datetime
    contacts: dict[int, Contact]
    facts: dict[str, Any] = field(default_factory=dict)
    advances: list[Advance] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    exited: list[OutboxMessage] = field(default_factory=list)
    steps: int = 0


class AutomationEngine:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        registry: AutomationRegistry,
        clock: Clock,
        *,
        email_from: str,
        batch: int = 500,
        lease: float = 60.0,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.registry = registry
        self.clock = clock
        self.email_from = email_from
        self.batch = batch
        self.lease = lease
        self.worker_id = "automation-" + (worker_id or default_worker_id())

    # -- the queue -----------------------------------------------------------------------------

    def run_due(self, limit: int | None = None) -> int:
        """Claim one batch of due enrollments and run it; the number of steps run."""
        return self.run(self.claim(limit))

    def claim(self, limit: int | None = None) -> list[Claimed]:
        now = self.clock.now()
        with self.db.write() as conn:
            return EnrollmentStore(conn).claim_due(
                self.worker_id, now, now + self.lease, limit or self.batch
            )

    def next_due(self) -> float | None:
        with self.db.read() as conn:
            return EnrollmentStore(conn).next_due()

    def release(self, ids: Sequence[int] | None = None) -> int:
        """Give back this worker's leases (all, or of ``ids``)."""
        with self.db.write() as conn:
            return EnrollmentStore(conn).release(self.worker_id, ids)

    # -- running -------------------------------------------------------------------------------

    def run(self, claimed: Sequence[Claimed]) -> int:
        """Run a claimed batch; the number of steps run. A database outage is raised (run the
        same batch again later); anything else costs at most the enrollment it came from."""
        if not claimed:
            return 0
        try:
            with self.db.write() as conn:
                return self._run_batch(conn, claimed)
        except Exception as exc:
            if is_database_outage(exc):
                raise
            log.warning(
                "automation.batch_failed", exc_info=True, extra={"worker_id": self.worker_id}
            )
        steps = 0
        for one in claimed:
            try:
                with self.db.write() as conn:
                    steps += self._run_batch(conn, [one])
            except Exception as exc:
                if is_database_outage(exc):
                    raise
                log.exception("automation.enrollment_crashed", extra={"enrollment_id": one.id})
                self._fail_alone(one, exc)
        return steps

    def _run_batch(self, conn: Connection, claimed: Sequence[Claimed]) -> int:
        now = self.clock.now()
        contacts = ContactStore(conn)
        # Contacts first, then enrollments: the order in which deleting a contact locks them.
        found = contacts.get_many([c.contact_id for c in claimed], lock=True)
        contacts.attach_list_ids(list(found.values()))
        store = EnrollmentStore(conn)
        batch = Batch(conn, now, datetime.fromtimestamp(now, UTC), found)
        for held in store.held(self.worker_id, [c.id for c in claimed]):
            self._run_one(batch, held)
        if batch.exited:
            self.outbox.writer(conn, batch.facts).write(batch.exited)
        store.log_steps(batch.logs)
        store.advance(self.worker_id, batch.advances, now)
        return batch.steps

    def _run_one(self, batch: Batch, held: Held) -> None:
        enrollment = held.enrollment
        contact = batch.contacts.get(enrollment.contact_id)
        compiled = self.registry.compiled(batch.conn, enrollment.automation_id, held.version)
        if compiled is None:
            error = {"step_id": enrollment.step_id, "message": "the automation no longer compiles"}
            self._finish(batch, held, None, "failed", "failed", error=error)
            return
        if contact is None:  # deleted without ending its enrollments (it should have)
            self._finish(batch, held, compiled, "exited", "contact_deleted")
            return
        step_id = enrollment.step_id
        if step_id is None or step_id not in compiled.definition.program.steps:
            self._finish(batch, held, compiled, "exited", "step_removed")
            return
        try:
            walk = self._attempt(batch, held, compiled, contact, MAX_STEPS_PER_RUN)
        except StepFailed as failed:
            if failed.done:  # keep what the steps before the failing one did
                try:
                    walk = self._attempt(batch, held, compiled, contact, failed.done)
                except StepFailed as again:
                    failed, walk = again, Walk(Advance(enrollment.id, ACTIVE, step_id))
            else:
                walk = Walk(Advance(enrollment.id, ACTIVE, step_id))
            self._failed(batch, held, compiled, walk, failed)
            return
        batch.steps += walk.steps
        batch.logs.extend(walk.logs)
        if walk.advance.status == ACTIVE:
            batch.advances.append(walk.advance)
        else:
            self._finish(batch, held, compiled, walk.advance.status, "completed", walk=walk)

    def _attempt(
        self, batch: Batch, held: Held, compiled: Compiled, contact: Contact, limit: int
    ) -> Walk:
        """Run from the enrollment's step for at most ``limit`` steps; effects in a savepoint
        opened before the first step that writes (rolled back if a step fails)."""
        enrollment = held.enrollment
        ctx = StepContext(
            conn=batch.conn,
            outbox=self.outbox,
            facts=batch.facts,
            now=batch.now,
            at=batch.at,
            enrollment=enrollment,
            compiled=compiled,
            contact=copy.deepcopy(contact),  # a failed attempt's changes must not linger
            email_from=self.email_from,
        )
        program = compiled.definition.program
        step_id: str | None = enrollment.step_id
        started, matched = enrollment.step_started_at, enrollment.matched
        walk = Walk(Advance(enrollment.id, ACTIVE, step_id))
        # Leaving the stack commits the savepoint, or rolls it back when a step raised.
        with contextlib.ExitStack() as savepoint:
            opened = False
            while step_id is not None:
                if walk.steps >= limit:
                    walk.advance = Advance(enrollment.id, ACTIVE, step_id, due_at=batch.now)
                    break
                step = program.steps[step_id]
                if not opened and step.kind in EFFECTS:
                    savepoint.enter_context(batch.conn.begin_nested())
                    opened = True
                try:
                    result = run_step(ctx, step, started, matched)
                except Exception as exc:
                    if is_database_outage(exc):
                        raise
                    raise StepFailed(step.id, walk.steps, exc) from exc
                if not isinstance(result, Go):
                    walk.advance = Advance(
                        enrollment.id,
                        ACTIVE,
                        step.id,
                        step_started_at=result.started_at,
                        waiting_for=result.waiting_for,
                        due_at=result.due_at,
                    )
                    break
                walk.steps += 1
                walk.logs.append(
                    _log(held, batch.now, step.id, step.kind, result.outcome, result.detail)
                )
                step_id, started, matched = (None if result.end else result.next), None, False
            else:
                walk.advance = Advance(enrollment.id, "completed", None)
        return walk

    # -- endings -------------------------------------------------------------------------------

    def _failed(
        self, batch: Batch, held: Held, compiled: Compiled, walk: Walk, failed: StepFailed
    ) -> None:
        if not isinstance(failed.cause, HookhubError | DataError):
            log.warning(
                "automation.step_crashed",
                exc_info=failed.cause,
                extra={"enrollment_id": held.enrollment.id, "step_id": failed.step_id},
            )
        error = failed.error()
        kind = compiled.definition.program.steps[failed.step_id].kind
        batch.steps += walk.steps
        batch.logs.extend(walk.logs)
        batch.logs.append(_log(held, batch.now, failed.step_id, kind, "failed", error))
        self._finish(batch, held, compiled, "failed", "failed", error=error, step_id=failed.step_id)

    def _finish(
        self,
        batch: Batch,
        held: Held,
        compiled: Compiled | None,
        status: str,
        reason: str,
        *,
        error: dict[str, Any] | None = None,
        walk: Walk | None = None,
        step_id: str | None = None,
    ) -> None:
        enrollment = held.enrollment
        batch.advances.append(
            Advance(
                enrollment.id,
                status,
                None,
                exit_reason=reason,
                error=error,
                finished_at=batch.now,
            )
        )
        contact = batch.contacts.get(enrollment.contact_id)
        batch.exited.append(
            events.exited(
                automation_id=enrollment.automation_id,
                automation_name=compiled.automation.name if compiled else "",
                enrollment_id=enrollment.id,
                contact_id=enrollment.contact_id,
                email=contact.email if contact else "",
                reason=reason,
                step_id=step_id or (None if walk else enrollment.step_id),
                error=None if error is None else error["message"],
                at=batch.at,
            )
        )

    def _fail_alone(self, one: Claimed, exc: BaseException) -> None:
        """The last resort for an enrollment whose own transaction failed: record the failure
        alone (no event: writing it may be what failed)."""
        error = StepFailed("", 0, exc).error()
        error["step_id"] = None
        try:
            with self.db.write() as conn:
                store = EnrollmentStore(conn)
                now = self.clock.now()
                advance = Advance(
                    one.id, "failed", None, exit_reason="failed", error=error, finished_at=now
                )
                store.advance(self.worker_id, [advance], now)
        except Exception as again:
            if is_database_outage(again):
                raise
            log.exception("automation.record_failed", extra={"enrollment_id": one.id})


def _log(
    held: Held, at: float, step_id: str, kind: str, outcome: str, detail: dict[str, Any] | None
) -> dict[str, Any]:
    enrollment = held.enrollment
    return {
        "enrollment_id": enrollment.id,
        "automation_id": enrollment.automation_id,
        "step_id": step_id,
        "kind": kind,
        "outcome": outcome,
        "at": at,
        "detail": detail,
    }
