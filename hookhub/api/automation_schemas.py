"""Request bodies and response shapes of /api/v1/automations and a contact's journey (what
/openapi.json documents).

Shapes only: the trigger and the step tree are checked by ``automation.definition`` (a 422
naming the place, such as ``steps[2].else[0].wait``), and templates and lists must exist
(``automation.service``), as for every entry point. The document says what a definition looks
like without being stricter than that parser, so a body it refuses is refused by the API too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from hookhub.api.schemas import MAX_ID, Body, Email, Name, Text
from hookhub.automation.definition import MAX_STEPS, STEP_KINDS, TRIGGER_TYPES

Status = Literal["active", "completed", "exited", "failed"]
Reentry = Literal["never", "after_exit", "always"]

_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TriggerIn = Annotated[
    dict[str, Any],
    Field(
        description=(
            "What enrols contacts: `{type}` plus, by type, `list_id` (list.contact_added,"
            " list.contact_removed; any list when absent), `event_name` (event.tracked),"
            " `campaign_id` (email.opened, email.clicked), `attribute`, `offset_days`, `at`"
            " (HH:MM), `timezone`, `yearly` (date). `manual`: only by hand or an inbound rule's"
            " start_automation."
        ),
        json_schema_extra={
            "required": ["type"],
            "properties": {
                "type": {"enum": list(TRIGGER_TYPES)},
                "list_id": _ID,
                "campaign_id": _ID,
                "event_name": {"type": "string"},
                "attribute": {"type": "string"},
                "offset_days": {"type": "integer", "minimum": -366, "maximum": 366},
                "at": {"type": "string"},
                "timezone": {"type": "string"},
                "yearly": {"type": "boolean"},
            },
        },
    ),
]
StepsIn = Annotated[
    list[dict[str, Any]],
    Field(
        min_length=1,
        max_length=MAX_STEPS,
        description=(
            "The steps, in order. Each is an object with an optional `id` (kept across edits;"
            " made from the kind and order when absent) and one kind: "
            + ", ".join(f"`{k}`" for k in STEP_KINDS)
            + "; `if` and `wait_for` take `then` and `else` lists of steps. At most"
            f" {MAX_STEPS} steps in all, branches nested at most 8 deep."
        ),
    ),
]
Filter = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=10_000,
        description="JMESPath over {contact, trigger}; a false value keeps the contact out.",
    ),
]
ContactRef = (
    Annotated[int, Field(ge=1, le=MAX_ID)] | Annotated[str, Field(min_length=1, max_length=320)]
)


class AutomationCreate(Body):
    name: Name
    trigger: TriggerIn
    steps: StepsIn
    filter: Filter | None = None
    reentry: Reentry = Field(
        default="never",
        description="never: once per contact; after_exit: again once finished; always: any time.",
    )
    exit_on_unsubscribe: bool = True
    enabled: bool = Field(default=True, description="false: enrollments wait where they are.")


class AutomationPatch(Body):
    """The fields given replace the automation's, and the result is validated as a whole.
    Enrollments keep their place by step id; those on a removed step exit (step_removed)."""

    name: Name | SkipJsonSchema[None] = None
    trigger: TriggerIn | SkipJsonSchema[None] = None
    steps: StepsIn | SkipJsonSchema[None] = None
    filter: Filter | None = Field(default=None, description="null: no filter.")
    reentry: Reentry | SkipJsonSchema[None] = None
    exit_on_unsubscribe: bool | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = Field(
        default=None, description="false pauses (enrollments hold), true resumes."
    )


class StepCounts(BaseModel):
    kind: str | None
    entered: int = Field(description="Enrollments that reached the step (each time).")
    waiting: int = Field(description="Active enrollments on the step now.")
    completed: int
    skipped: int = Field(description="Done without effect (e.g. an unsubscribed contact).")
    failed: int
    exited: int = Field(description="Ended while on it: removed, unsubscribed, contact deleted.")


class AutomationCounts(BaseModel):
    entered: int = Field(description="Enrollments ever (until retention).")
    active: int
    completed: int
    exited: int
    failed: int
    steps: dict[str, StepCounts] = Field(description="By step id, in the tree's order.")


class AutomationOut(BaseModel):
    id: int
    name: str
    enabled: bool
    trigger: dict[str, Any]
    filter: str | None
    reentry: Reentry
    exit_on_unsubscribe: bool
    steps: list[dict[str, Any]] = Field(description="Every step with its id.")
    version: int = Field(description="Changes with every edit.")
    created_at: str
    updated_at: str
    counts: AutomationCounts | None = Field(description="In the answers about one automation.")


class EnrollmentAdd(Body):
    contact: ContactRef = Field(description="The contact's id or email.")


class EnrollmentOut(BaseModel):
    id: int
    automation_id: int
    contact_id: int
    email: Email | None = Field(description="null once the contact is deleted.")
    status: Status
    step_id: str | None
    step_kind: str | None
    step_started_at: str | None = Field(description="Set once a waiting step has begun.")
    due_at: str | None = Field(description="When it is looked at next (active only).")
    waiting_for: str | None
    trigger: dict[str, Any] = Field(description="{type, data}: what enrolled it.")
    exit_reason: str | None
    error: dict[str, Any] | None
    entered_at: str | None
    updated_at: str | None
    finished_at: str | None


class StepTarget(BaseModel):
    step_id: str | None = Field(description="null: the automation completes there.")
    kind: str | None
    at: str | None


class WaitingFor(BaseModel):
    event_name: str
    timeout_at: str | None
    matched: bool
    on_event: StepTarget
    on_timeout: StepTarget


class NextStep(StepTarget):
    running: bool = Field(description="A worker is running its step now.")
    waiting_for: WaitingFor | None


class CurrentStep(BaseModel):
    step_id: str | None
    kind: str | None
    started_at: str | None


class DoneStep(BaseModel):
    step_id: str
    kind: str
    outcome: Literal["completed", "skipped", "failed"]
    at: str | None
    detail: Any


class JourneyOut(BaseModel):
    enrollment_id: int
    automation_id: int
    automation_name: str | None
    status: Status
    exit_reason: str | None
    error: dict[str, Any] | None
    trigger: dict[str, Any]
    entered_at: str | None
    finished_at: str | None
    current: CurrentStep | None = Field(description="Where it is (active only).")
    done: list[DoneStep] = Field(description="What its steps did, oldest first.")
    next: NextStep | None = Field(description="What comes next and when (active only).")
