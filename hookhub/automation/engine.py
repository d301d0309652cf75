"""The step machine: runs due enrollments from the step they are on until a waiting step
begins or the run ends.

:meth:`AutomationEngine.claim` leases a batch of due enrollments (one short transaction);
:meth:`AutomationEngine.run` runs them in ONE write transaction: the batch's contacts are
locked (PostgreSQL) and read in one query, the enrollments read again (only those still
leased by this worker and active), and their steps taken with the program at the version
their automation has in this transaction (``runs.py``: round by round, those on the same step
together). Effects, step log rows, ``automation.exited`` messages and advances commit
together, so a crash at any moment repeats no step and skips none: uncommitted work is rolled
back and the enrollments fall due again when their lease runs out.

Failures stay with their enrollment: a step that cannot run for this contact (an expression
failing on its values, a deleted template or list) or anything unexpected fails that
enrollment (``failed``, the error and expression recorded, ``automation.exited`` reason
``failed``); what it did before the failing step is kept. Should the batch transaction itself
fail, its enrollments run again one transaction each. A database that cannot be reached is
nobody's fault: the error goes to the caller (the loop), which runs the same batch again.

This module must never sleep, read a clock other than the one it is given, or write SQL
(``store/enrollments.py`` has it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from hookhub.automation import events
from hookhub.automation.registry import AutomationRegistry, Compiled
from hookhub.automation.runs import (
    Batch,
    Run,
    StepFailed,
    is_database_outage,
    log_row,
    step_all,
)
from hookhub.automation.steps import StepContext
from hookhub.clock import Clock
from hookhub.core.origin import Origin
from hookhub.outbound.leases import default_worker_id
from hookhub.outbound.outbox import Outbox
from hookhub.records.automations import ACTIVE
from hookhub.store.contacts import ContactStore
from hookhub.store.database import Database
from hookhub.store.enrollments import Advance, Claimed, EnrollmentStore, Held

log = logging.getLogger("hookhub.automation")


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
        batch = Batch(
            conn, self.outbox, now, datetime.fromtimestamp(now, UTC), found, self.email_from
        )
        runs = [
            run
            for held in store.held(self.worker_id, [c.id for c in claimed])
            if (run := self._start(batch, held)) is not None
        ]
        step_all(batch, runs)
        for run in runs:
            if run.failure is not None:
                self._failed(batch, run, run.failure)
            elif run.advance is not None and run.advance.status == ACTIVE:
                batch.advances.append(run.advance)
            else:
                self._finish(batch, run.held, run.compiled, "completed", "completed", ended=True)
        if batch.exited:
            self.outbox.writer(conn, batch.facts).write(batch.exited)
        store.log_steps(batch.logs)
        store.advance(self.worker_id, batch.advances, now)
        return batch.steps

    def _start(self, batch: Batch, held: Held) -> Run | None:
        """The enrollment's run; None when it ends before any step (recorded here)."""
        enrollment = held.enrollment
        contact = batch.contacts.get(enrollment.contact_id)
        compiled = self.registry.compiled(batch.conn, enrollment.automation_id, held.version)
        if compiled is None:
            error = {"step_id": enrollment.step_id, "message": "the automation no longer compiles"}
            self._finish(batch, held, None, "failed", "failed", error=error)
            return None
        if contact is None:  # deleted without ending its enrollments (it should have)
            self._finish(batch, held, compiled, "exited", "contact_deleted")
            return None
        step_id = enrollment.step_id
        if step_id is None or step_id not in compiled.definition.program.steps:
            self._finish(batch, held, compiled, "exited", "step_removed")
            return None
        ctx = StepContext(
            conn=batch.conn,
            outbox=self.outbox,
            facts=batch.facts,
            now=batch.now,
            at=batch.at,
            enrollment=enrollment,
            compiled=compiled,
            contact=contact,
            email_from=self.email_from,
        )
        return Run(held, compiled, ctx, step_id, enrollment.step_started_at, enrollment.matched)

    # -- endings -------------------------------------------------------------------------------

    def _failed(self, batch: Batch, run: Run, failed: StepFailed) -> None:
        held = run.held
        if not failed.expected:
            log.warning(
                "automation.step_crashed",
                exc_info=failed.cause,
                extra={"enrollment_id": held.enrollment.id, "step_id": failed.step_id},
            )
        error = failed.error()
        step = run.compiled.definition.program.steps[run.step_id]
        batch.logs.append(log_row(held, batch.now, step, "failed", error))
        self._finish(batch, held, run.compiled, "failed", "failed", error=error, step_id=step.id)

    def _finish(
        self,
        batch: Batch,
        held: Held,
        compiled: Compiled | None,
        status: str,
        reason: str,
        *,
        error: dict[str, Any] | None = None,
        ended: bool = False,
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
                step_id=step_id or (None if ended else enrollment.step_id),
                error=None if error is None else error["message"],
                at=batch.at,
                origin=compiled.origin
                if compiled
                else Origin("automation", enrollment.automation_id),
            )
        )

    def _fail_alone(self, one: Claimed, exc: BaseException) -> None:
        """The last resort for an enrollment whose own transaction failed: record the failure
        alone (no event: writing it may be what failed)."""
        error = StepFailed(None, exc).error()
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
