"""The rule action ``start_automation``: enrol the rule's contact in an automation.

``"start_automation": 7`` (an automation id): the contact is enrolled in the rule's transaction
(the request's savepoint), so a rule that fails enrols nobody and a preview shows the
enrollment without keeping it. The trigger type is ``inbound`` and the trigger data
``{inbound_webhook_id, request_id, payload}`` (``payload``: the request's parsed body; ``item``:
the index of a ``for_each`` item), which the automation's ``filter`` and steps can read as
``trigger``. Any automation may be started this way, whatever its own trigger (``manual`` is the
type for automations meant only for this and the API). The filter and ``reentry`` apply.

Whether the automation exists is checked when the rules are saved (``InboundService``) and again
here: a deleted automation fails the request, as a deleted template does for ``send_email``. A
disabled one starts nobody, and the action says so.

This module must never commit, and never enrol anyone but the rule's contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hookhub.automation.enroll import enroll
from hookhub.automation.registry import compile_automation
from hookhub.errors import ValidationFailed
from hookhub.inbound.rule_expressions import RuleError
from hookhub.store.automation_triggers import live_automations
from hookhub.store.automations import AutomationStore

if TYPE_CHECKING:
    from hookhub.automation.registry import AutomationRegistry
    from hookhub.crm.operations import CrmTx
    from hookhub.inbound.rules import Plan
    from hookhub.records.contacts import Contact

TRIGGER_TYPE = "inbound"


@dataclass(frozen=True, slots=True)
class InboundSource:
    """The request a rule runs for: what an automation started by it gets as ``trigger``."""

    inbound_webhook_id: int
    request_id: int | None
    """None in a preview."""
    payload: Any

    def trigger(self, item: int | None) -> dict[str, Any]:
        data = {
            "inbound_webhook_id": self.inbound_webhook_id,
            "request_id": self.request_id,
            "payload": self.payload,
        }
        if item is not None:
            data["item"] = item
        return data


def compile_start_automation(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise ValidationFailed(f"{where}: must be an automation id", details={"path": where})
    return value


def start_automation(
    crm: CrmTx,
    plan: Plan,
    contact: Contact,
    source: InboundSource | None,
    registry: AutomationRegistry | None,
) -> dict[str, Any]:
    """Enrol ``contact`` in the plan's automation; what was done, for the action log."""
    automation_id = plan.automation_id
    assert automation_id is not None
    live = live_automations(crm.conn, [automation_id]).get(automation_id)
    if live is None:
        raise RuleError(f"start_automation: no automation {automation_id}", rule=plan.rule)
    done: dict[str, Any] = {"automation_id": automation_id}
    if not live.enabled:
        done["status"] = "not started: the automation is disabled"
        return done
    if registry is not None:
        compiled = registry.compiled(crm.conn, automation_id, live.version)
    else:
        stored = AutomationStore(crm.conn).get(automation_id)
        compiled = None if stored is None else compile_automation(stored)
    if compiled is None:
        raise RuleError(
            f"start_automation: automation {automation_id} cannot run (its definition is no "
            "longer valid)",
            rule=plan.rule,
        )
    trigger = source.trigger(plan.item) if source is not None else {"payload": None}
    enrollment_id = enroll(crm, compiled, contact, trigger_type=TRIGGER_TYPE, trigger=trigger)
    if enrollment_id is None:
        done["status"] = "not entered: its filter or reentry kept the contact out"
    else:
        done["status"] = "entered"
        done["enrollment_id"] = enrollment_id
    return done
