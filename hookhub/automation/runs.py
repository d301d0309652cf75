"""One batch's runs, stepped together: every enrollment of the batch takes its next step in
the same round, and those on the same step of the same automation take it together.

A round groups the live runs by (automation, version, step). A group of a kind that has a
bulk form (``bulk_steps.py``: ``add_to_list``, ``update_contact``, ``track_event``) evaluates
each run's expressions (one failing fails that run alone), then does every change in one
savepoint with one statement per kind of row; should that raise, the group goes run by run.
Any other step with effects runs in a savepoint of its own; waits, ``if`` and ``exit`` write
nothing and need none. A step that fails rolls back only itself: what the run did before it
stays, and the run ends ``failed``. Each run stops when a wait begins, the program ends, or
after :data:`MAX_STEPS_PER_RUN` steps.

This module must never commit or write SQL, and never read a clock: "now" is the batch's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DataError, PendingRollbackError

from hookhub.automation.bulk_steps import BULK_STEPS
from hookhub.automation.definition import Step
from hookhub.automation.registry import Compiled
from hookhub.automation.steps import EFFECTS, Go, StepContext, Wait, run_step
from hookhub.core.origin import Origin
from hookhub.crm.operations import CrmTx
from hookhub.errors import HookhubError
from hookhub.inbound.rule_expressions import RuleError
from hookhub.outbound.outbox import Outbox, OutboxMessage
from hookhub.records.automations import ACTIVE
from hookhub.records.contacts import Contact
from hookhub.store.database import is_transient
from hookhub.store.enrollments import Advance, Held

MAX_STEPS_PER_RUN = 100
MAX_ERROR_LENGTH = 2000


def is_database_outage(exc: BaseException) -> bool:
    return is_transient(exc) or isinstance(exc, PendingRollbackError)


class StepFailed(Exception):
    """A step of one run could not be done: which, and why."""

    def __init__(self, step_id: str | None, cause: BaseException) -> None:
        super().__init__(step_id)
        self.step_id = step_id
        self.cause = cause

    @property
    def expected(self) -> bool:
        """Bad values or references (not a bug of ours)."""
        return isinstance(self.cause, HookhubError | DataError)

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
class Batch:
    """What the runs of one transaction share, and what they leave to be written at its end."""

    conn: Connection
    outbox: Outbox
    now: float
    at: datetime
    contacts: dict[int, Contact]
    email_from: str
    facts: dict[str, Any] = field(default_factory=dict)
    advances: list[Advance] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    exited: list[OutboxMessage] = field(default_factory=list)
    steps: int = 0

    def crm(self, origin: Origin) -> CrmTx:
        """A fresh CrmTx (and writer) for one savepoint's work: what one caches must not
        outlive a savepoint that is rolled back. ``origin``: the automation whose step it is."""
        return CrmTx(self.conn, self.outbox.writer(self.conn, self.facts, origin=origin), self.at)


@dataclass(slots=True)
class Run:
    """One enrollment going through its steps in this batch."""

    held: Held
    compiled: Compiled
    ctx: StepContext
    step_id: str
    started: float | None
    matched: bool
    steps: int = 0
    advance: Advance | None = None
    """Where it stopped (waiting, completed, cut short); None while it goes on."""
    failure: StepFailed | None = None

    @property
    def live(self) -> bool:
        return self.advance is None and self.failure is None


def step_all(batch: Batch, runs: list[Run]) -> None:
    """Take every run's steps, round by round, until each has stopped."""
    live = [run for run in runs if run.live]
    while live:
        for step, group in _groups(live):
            _take(batch, step, group)
        live = [run for run in live if run.live]
        for run in live:
            if run.steps >= MAX_STEPS_PER_RUN:  # due again at once, in a later batch
                run.advance = Advance(run.held.enrollment.id, ACTIVE, run.step_id, due_at=batch.now)
        live = [run for run in live if run.live]


def _groups(live: list[Run]) -> Iterator[tuple[Step, list[Run]]]:
    groups: dict[tuple[int, int, str], list[Run]] = {}
    for run in live:
        key = (run.compiled.id, run.held.version, run.step_id)
        groups.setdefault(key, []).append(run)
    for group in groups.values():
        first = group[0]
        yield first.compiled.definition.program.steps[first.step_id], group


def _take(batch: Batch, step: Step, group: list[Run]) -> None:
    bulk = BULK_STEPS.get(step.kind)
    one_by_one = group
    if bulk is not None and len(group) > 1:
        together: list[Run] = []
        one_by_one = []
        seen: set[int] = set()
        for run in group:  # a contact twice in one statement would be counted once
            (one_by_one if run.ctx.contact.id in seen else together).append(run)
            seen.add(run.ctx.contact.id)
        prepared = []
        for run in together:
            run.ctx.changed()
            try:
                prepared.append((run.ctx, bulk.prepare(run.ctx, step)))
            except Exception as exc:
                if is_database_outage(exc):
                    raise
                run.failure = StepFailed(step.id, exc)
        if prepared:
            kept = [_snapshot(ctx.contact) for ctx, _ in prepared]
            try:
                with batch.conn.begin_nested():
                    outcomes = bulk.apply(batch.crm(together[0].compiled.origin), step, prepared)
            except Exception as exc:
                if is_database_outage(exc):
                    raise
                for snapshot in kept:
                    _restore(snapshot)
                one_by_one = [*one_by_one, *(r for r in together if r.live)]
            else:
                runs = [r for r in together if r.live]
                for run, (outcome, detail) in zip(runs, outcomes, strict=True):
                    _went(batch, run, step, Go(step.next, outcome, detail))
    for run in one_by_one:
        _take_one(batch, step, run)


def _take_one(batch: Batch, step: Step, run: Run) -> None:
    ctx = run.ctx
    ctx.changed()
    writes = step.kind in EFFECTS
    kept = _snapshot(ctx.contact) if writes else None
    try:
        with batch.conn.begin_nested() if writes else contextlib.nullcontext():
            if writes:
                ctx.use(batch.crm(run.compiled.origin))
            result = run_step(ctx, step, run.started, run.matched)
    except Exception as exc:
        if is_database_outage(exc):
            raise
        if kept is not None:
            _restore(kept)
        run.failure = StepFailed(step.id, exc)
        return
    _went(batch, run, step, result)


def _went(batch: Batch, run: Run, step: Step, result: Go | Wait) -> None:
    enrollment = run.held.enrollment
    if isinstance(result, Wait):
        run.advance = Advance(
            enrollment.id,
            ACTIVE,
            step.id,
            step_started_at=result.started_at,
            waiting_for=result.waiting_for,
            due_at=result.due_at,
        )
        return
    run.steps += 1
    batch.steps += 1
    batch.logs.append(log_row(run.held, batch.now, step, result.outcome, result.detail))
    following = None if result.end else result.next
    if following is None:
        run.advance = Advance(enrollment.id, "completed", None)
        return
    run.step_id, run.started, run.matched = following, None, False


def log_row(
    held: Held, at: float, step: Step, outcome: str, detail: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "enrollment_id": held.enrollment.id,
        "automation_id": held.enrollment.automation_id,
        "step_id": step.id,
        "kind": step.kind,
        "outcome": outcome,
        "at": at,
        "detail": detail,
    }


Snapshot = tuple[Contact, dict[str, Any], list[int], Any]


def _snapshot(contact: Contact) -> Snapshot:
    """What a step may change of a contact in memory, to put back when it is rolled back."""
    return (contact, dict(contact.attributes), list(contact.list_ids), contact.updated_at)


def _restore(snapshot: Snapshot) -> None:
    contact, attributes, list_ids, updated_at = snapshot
    contact.attributes, contact.list_ids, contact.updated_at = attributes, list_ids, updated_at
