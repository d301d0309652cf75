"""What a journey says comes next, from an enrollment and its program (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hookhub.automation.definition import parse_definition
from hookhub.automation.views import counts_to_api, step_order, what_comes_next
from hookhub.records.automations import Automation, Enrollment
from hookhub.store.enrollment_reads import AutomationTally, StepTally

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEPS: list[dict[str, Any]] = [
    {"id": "pause", "wait": "1d"},
    {
        "id": "order",
        "wait_for": {"event_name": "order_placed", "timeout": "2d"},
        "then": [{"id": "thanks", "track_event": {"name": "converted"}}],
    },
    {"id": "last", "exit": True},
]
PROGRAM = parse_definition({"name": "x", "trigger": {"type": "manual"}, "steps": STEPS}).program


def enrollment(step_id: str | None, **fields: Any) -> Enrollment:
    values: dict[str, Any] = {
        "id": 1,
        "automation_id": 1,
        "contact_id": 1,
        "status": "active",
        "step_id": step_id,
        "step_started_at": None,
        "waiting_for": None,
        "matched": False,
        "due_at": T0,
    }
    values.update(fields)
    return Enrollment(**values)


def test_a_step_not_begun_is_what_runs_next_when_due() -> None:
    assert what_comes_next(enrollment("pause"), PROGRAM) == {
        "step_id": "pause",
        "kind": "wait",
        "at": "2026-01-01T00:00:00.000Z",
        "running": False,
        "waiting_for": None,
    }


def test_a_leased_enrollment_is_running_with_no_time() -> None:
    leased = enrollment("pause", lease_owner="automation-w1", due_at=T0 + 60)
    answer = what_comes_next(leased, PROGRAM)
    assert answer is not None
    assert (answer["step_id"], answer["at"], answer["running"]) == ("pause", None, True)


def test_a_wait_for_without_a_then_step_of_its_own_continues_after_it() -> None:
    waiting = enrollment("order", step_started_at=T0, due_at=T0 + 2 * 86400)
    answer = what_comes_next(waiting, PROGRAM)
    assert answer is not None
    assert answer["waiting_for"] == {
        "event_name": "order_placed",
        "timeout_at": "2026-01-03T00:00:00.000Z",
        "matched": False,
        "on_event": {"step_id": "thanks", "kind": "track_event", "at": None},
        "on_timeout": {"step_id": "last", "kind": "exit", "at": None},
    }
    assert (answer["step_id"], answer["at"]) == ("last", "2026-01-03T00:00:00.000Z")
    matched = enrollment("order", step_started_at=T0, due_at=T0 + 5, matched=True)
    answer = what_comes_next(matched, PROGRAM)
    assert answer is not None
    assert (answer["step_id"], answer["at"]) == ("thanks", "2026-01-01T00:00:05.000Z")
    assert answer["waiting_for"]["timeout_at"] is None


def test_nothing_comes_next_when_finished_or_on_a_removed_step() -> None:
    assert what_comes_next(enrollment(None, status="completed", due_at=None), PROGRAM) is None
    assert what_comes_next(enrollment("gone"), PROGRAM) is None
    assert what_comes_next(enrollment("pause"), None) is None


def test_counts_list_every_step_in_tree_order_with_zeros() -> None:
    now = datetime.now(UTC)
    automation = Automation(
        1, "x", True, {"type": "manual"}, None, "never", True, STEPS, 1, now, now
    )
    assert list(step_order(STEPS)) == ["pause", "order", "thanks", "last"]
    tally = AutomationTally(
        by_status={"active": 2, "failed": 1},
        steps={"order": StepTally(waiting=2, completed=3, exited=1), "old": StepTally(completed=9)},
    )
    counts = counts_to_api(automation, tally, PROGRAM)
    assert (counts["entered"], counts["active"], counts["failed"]) == (3, 2, 1)
    assert list(counts["steps"]) == ["pause", "order", "thanks", "last"]  # "old": edited away
    assert counts["steps"]["order"]["entered"] == 6
    assert counts["steps"]["pause"] == {
        "kind": "wait",
        "entered": 0,
        "waiting": 0,
        "completed": 0,
        "skipped": 0,
        "failed": 0,
        "exited": 0,
    }
