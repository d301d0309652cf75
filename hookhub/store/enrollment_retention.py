"""Queries that delete finished automation enrollments past their retention, with their step
logs (``HOOKHUB_RETENTION_AUTOMATIONS``).

One small batch per call, in the caller's transaction, oldest finished first along the partial
index on ``finished_at`` (only finished enrollments have one). Never deletes an active
enrollment, however old: it still has steps to run.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select

from hookhub.store.schema_automation import automation_enrollments as enrollments
from hookhub.store.schema_automation import automation_step_log

_FINISHED = (enrollments.c.finished_at.is_not(None), enrollments.c.status != "active")


class EnrollmentRetentionStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def delete_finished(self, *, cutoff: float, limit: int, dry_run: bool) -> tuple[int, int]:
        """Delete up to ``limit`` enrollments finished before ``cutoff`` with their step log
        rows; how many of each (``dry_run``: how many would go, deleting nothing)."""
        oldest = (
            select(enrollments.c.id)
            .where(*_FINISHED, enrollments.c.finished_at < cutoff)
            .order_by(enrollments.c.finished_at)
            .limit(limit)
        )
        ids = list(self.conn.execute(oldest).scalars())
        if not ids:
            return 0, 0
        in_batch = automation_step_log.c.enrollment_id.in_(ids)
        if dry_run:
            logs = self.conn.execute(select(func.count()).where(in_batch)).scalar_one()
            return len(ids), int(logs)
        logs = self.conn.execute(delete(automation_step_log).where(in_batch)).rowcount
        gone = self.conn.execute(
            delete(enrollments).where(enrollments.c.id.in_(ids), *_FINISHED)
        ).rowcount
        return int(gone), int(logs)
