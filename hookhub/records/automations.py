"""An automation and an enrollment as stored (DESIGN.md, "Automations").

``Automation.steps`` is the normalized step tree (every step with its id); the compiled program
is ``hookhub.automation.registry``'s, cached by ``(id, version)``. Times a worker compares are
epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hookhub.core.jsoncodec import isoformat

ACTIVE = "active"
FINISHED = ("completed", "exited", "failed")
EXIT_REASONS = (
    "completed",
    "unsubscribed",
    "contact_deleted",
    "removed",
    "step_removed",
    "failed",
)


def epoch_iso(value: float | None) -> str | None:
    return None if value is None else isoformat(datetime.fromtimestamp(value, UTC))


@dataclass(slots=True)
class Automation:
    id: int
    name: str
    enabled: bool
    trigger: dict[str, Any]
    filter: str | None
    reentry: str
    exit_on_unsubscribe: bool
    steps: list[dict[str, Any]]
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def cache_key(self) -> tuple[int, int]:
        return (self.id, self.version)

    def definition_body(self) -> dict[str, Any]:
        """What ``parse_definition`` reads (the stored definition, as a request body)."""
        return {
            "name": self.name,
            "trigger": self.trigger,
            "filter": self.filter,
            "reentry": self.reentry,
            "exit_on_unsubscribe": self.exit_on_unsubscribe,
            "steps": self.steps,
        }


@dataclass(slots=True)
class Enrollment:
    id: int
    automation_id: int
    contact_id: int
    status: str  # active, completed, exited, failed
    step_id: str | None
    step_started_at: float | None
    waiting_for: str | None
    matched: bool
    due_at: float | None
    trigger: dict[str, Any] = field(default_factory=dict)
    entry_key: str | None = None
    exit_reason: str | None = None
    error: dict[str, Any] | None = None
    entered_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    lease_owner: str | None = None
