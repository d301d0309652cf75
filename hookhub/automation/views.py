"""The JSON the API answers for automations, enrollments and a contact's journey.

Pure: it shapes what the service read (rows, counts, the compiled program) and reads nothing
itself. Times are ISO 8601 in UTC. A journey says where an enrollment is (its step and since
when), what it did (its step log) and what comes next and when (DESIGN.md, "Automations").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from hookhub.automation.definition import Program, Step
from hookhub.core.jsoncodec import isoformat
from hookhub.records.automations import Automation, Enrollment, epoch_iso
from hookhub.store.enrollment_reads import AutomationTally, LoggedStep


def step_order(steps: Sequence[dict[str, Any]]) -> Iterator[str]:
    """Step ids in the order the tree is written (a branching step before its branches)."""
    for step in steps:
        yield step["id"]
        for branch in ("then", "else"):
            yield from step_order(step.get(branch) or [])


def automation_to_api(
    automation: Automation, tally: AutomationTally | None = None, program: Program | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": automation.id,
        "name": automation.name,
        "enabled": automation.enabled,
        "trigger": automation.trigger,
        "filter": automation.filter,
        "reentry": automation.reentry,
        "exit_on_unsubscribe": automation.exit_on_unsubscribe,
        "steps": automation.steps,
        "version": automation.version,
        "created_at": isoformat(automation.created_at),
        "updated_at": isoformat(automation.updated_at),
        "counts": None,
    }
    if tally is not None:
        out["counts"] = counts_to_api(automation, tally, program)
    return out


def counts_to_api(
    automation: Automation, tally: AutomationTally, program: Program | None
) -> dict[str, Any]:
    statuses = tally.by_status
    steps: dict[str, Any] = {}
    for step_id in step_order(automation.steps):
        step = tally.steps.get(step_id)
        known = program.steps.get(step_id) if program is not None else None
        steps[step_id] = {
            "kind": known.kind if known is not None else None,
            "entered": step.entered if step else 0,
            "waiting": step.waiting if step else 0,
            "completed": step.completed if step else 0,
            "skipped": step.skipped if step else 0,
            "failed": step.failed if step else 0,
            "exited": step.exited if step else 0,
        }
    return {
        "entered": sum(statuses.values()),
        "active": statuses.get("active", 0),
        "completed": statuses.get("completed", 0),
        "exited": statuses.get("exited", 0),
        "failed": statuses.get("failed", 0),
        "steps": steps,
    }


def enrollment_to_api(
    enrollment: Enrollment, email: str | None, program: Program | None = None
) -> dict[str, Any]:
    step = _step(program, enrollment.step_id)
    active = enrollment.status == "active"
    return {
        "id": enrollment.id,
        "automation_id": enrollment.automation_id,
        "contact_id": enrollment.contact_id,
        "email": email,
        "status": enrollment.status,
        "step_id": enrollment.step_id,
        "step_kind": step.kind if step is not None else None,
        "step_started_at": epoch_iso(enrollment.step_started_at) if active else None,
        "due_at": epoch_iso(enrollment.due_at) if active else None,
        "waiting_for": enrollment.waiting_for if active else None,
        "trigger": enrollment.trigger,
        "exit_reason": enrollment.exit_reason,
        "error": enrollment.error,
        "entered_at": epoch_iso(enrollment.entered_at),
        "updated_at": epoch_iso(enrollment.updated_at),
        "finished_at": epoch_iso(enrollment.finished_at),
    }


def _step(program: Program | None, step_id: str | None) -> Step | None:
    if program is None or step_id is None:
        return None
    return program.steps.get(step_id)


def _target(program: Program, step_id: str | None, at: float | None) -> dict[str, Any]:
    """A step that comes next (None: the automation completes there)."""
    step = _step(program, step_id)
    return {
        "step_id": step_id,
        "kind": step.kind if step is not None else None,
        "at": epoch_iso(at),
    }


def what_comes_next(enrollment: Enrollment, program: Program | None) -> dict[str, Any] | None:
    """The next step and when it runs; for a ``wait_for``, the event waited for, its timeout,
    and where each way leads. None once finished, or when the step is no longer in the
    automation (a worker ends it with ``step_removed``)."""
    if enrollment.status != "active" or program is None:
        return None
    step = _step(program, enrollment.step_id)
    if step is None:
        return None
    running = enrollment.lease_owner is not None
    due = None if running else enrollment.due_at
    if enrollment.step_started_at is None or not step.waits:
        # The step has not begun (or is running now): it is what runs next.
        return {**_target(program, step.id, due), "running": running, "waiting_for": None}
    if step.kind == "wait_for":
        matched = enrollment.matched
        follow = step.then_first if matched else step.else_first
        return {
            **_target(program, follow, due),
            "running": running,
            "waiting_for": {
                "event_name": step.spec.event_name,
                "timeout_at": epoch_iso(enrollment.due_at) if not matched else None,
                "matched": matched,
                "on_event": _target(program, step.then_first, None),
                "on_timeout": _target(program, step.else_first, None),
            },
        }
    return {**_target(program, step.next, due), "running": running, "waiting_for": None}


def logged_to_api(logged: LoggedStep) -> dict[str, Any]:
    return {
        "step_id": logged.step_id,
        "kind": logged.kind,
        "outcome": logged.outcome,
        "at": epoch_iso(logged.at),
        "detail": logged.detail,
    }


def journey_item(
    enrollment: Enrollment,
    automation: Automation | None,
    program: Program | None,
    done: Sequence[LoggedStep],
) -> dict[str, Any]:
    step = _step(program, enrollment.step_id)
    active = enrollment.status == "active"
    return {
        "enrollment_id": enrollment.id,
        "automation_id": enrollment.automation_id,
        "automation_name": automation.name if automation is not None else None,
        "status": enrollment.status,
        "exit_reason": enrollment.exit_reason,
        "error": enrollment.error,
        "trigger": enrollment.trigger,
        "entered_at": epoch_iso(enrollment.entered_at),
        "finished_at": epoch_iso(enrollment.finished_at),
        "current": {
            "step_id": enrollment.step_id,
            "kind": step.kind if step is not None else None,
            "started_at": epoch_iso(enrollment.step_started_at),
        }
        if active
        else None,
        "done": [logged_to_api(logged) for logged in done],
        "next": what_comes_next(enrollment, program),
    }
