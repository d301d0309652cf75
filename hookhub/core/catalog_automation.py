"""The automation entries of the event catalog (``catalog.py`` lists them with the others)."""

from __future__ import annotations

from hookhub.core.catalog_types import CONTACT_REF, EventType

AUTOMATION_EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        "automation.entered",
        "A contact entered an automation (its trigger fired, or it was added by hand or by an "
        "inbound rule).",
        properties={
            **CONTACT_REF,
            "automation_id": {"type": "integer"},
            "automation_name": {"type": "string"},
            "enrollment_id": {"type": "integer"},
            "trigger": {"type": "string", "description": "the trigger type, or manual"},
        },
        required=("contact_id", "email", "automation_id", "enrollment_id", "trigger"),
        example={
            "contact_id": 42,
            "email": "ada@example.com",
            "automation_id": 3,
            "automation_name": "Welcome series",
            "enrollment_id": 1001,
            "trigger": "list.contact_added",
        },
    ),
    EventType(
        "automation.exited",
        "A contact left an automation. `reason`: completed, unsubscribed, contact_deleted, "
        "removed, step_removed or failed (then `error` says why, at `step_id`).",
        properties={
            **CONTACT_REF,
            "automation_id": {"type": "integer"},
            "automation_name": {"type": "string"},
            "enrollment_id": {"type": "integer"},
            "reason": {"type": "string"},
            "step_id": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
        },
        required=("contact_id", "email", "automation_id", "enrollment_id", "reason"),
        example={
            "contact_id": 42,
            "email": "ada@example.com",
            "automation_id": 3,
            "automation_name": "Welcome series",
            "enrollment_id": 1001,
            "reason": "completed",
            "step_id": None,
            "error": None,
        },
    ),
    EventType(
        "automation.webhook",
        "What an automation's webhook step posts to its own URL (never to subscribed "
        "endpoints): the contact, the automation and step, and what the step's `include` names.",
        properties={
            **CONTACT_REF,
            "automation_id": {"type": "integer"},
            "enrollment_id": {"type": "integer"},
            "step_id": {"type": "string"},
            "attributes": {"type": "object"},
            "list_ids": {"type": "array", "items": {"type": "integer"}},
            "trigger": {"type": "object"},
        },
        required=("contact_id", "email", "automation_id", "enrollment_id", "step_id"),
        example={
            "contact_id": 42,
            "email": "ada@example.com",
            "automation_id": 3,
            "enrollment_id": 1001,
            "step_id": "webhook-1",
            "attributes": {"FIRSTNAME": "Ada"},
        },
        operational=True,
    ),
)
