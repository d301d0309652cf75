"""``automation.entered`` and ``automation.exited``: written in the transaction that enrols or
ends an enrollment, like every other outbox message (``outbound/outbox.py``)."""

from __future__ import annotations

from datetime import datetime

from hookhub.core.origin import Origin
from hookhub.outbound.outbox import OutboxMessage, build_message


def entered(
    *,
    automation_id: int,
    automation_name: str,
    enrollment_id: int,
    contact_id: int,
    email: str,
    trigger: str,
    at: datetime,
) -> OutboxMessage:
    return build_message(
        "automation.entered",
        {
            "contact_id": contact_id,
            "email": email,
            "automation_id": automation_id,
            "automation_name": automation_name,
            "enrollment_id": enrollment_id,
            "trigger": trigger,
        },
        at,
    )


def exited(
    *,
    automation_id: int,
    automation_name: str,
    enrollment_id: int,
    contact_id: int,
    email: str,
    reason: str,
    at: datetime,
    step_id: str | None = None,
    error: str | None = None,
    origin: Origin | None = None,
) -> OutboxMessage:
    return build_message(
        "automation.exited",
        {
            "contact_id": contact_id,
            "email": email,
            "automation_id": automation_id,
            "automation_name": automation_name,
            "enrollment_id": enrollment_id,
            "reason": reason,
            "step_id": step_id,
            "error": error,
        },
        at,
        origin=origin,
    )
