"""Carrying out resolved rule plans on the contacts core, inside the caller's transaction.

A failure (no email, a value of the wrong type, a list that no longer exists) raises
:class:`RuleError` naming the rule and the expression at fault; the caller rolls the request's
changes back and records the failure, so the request can be replayed once the rule is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hookhub.config import Settings
from hookhub.crm.operations import UNSET, CrmTx
from hookhub.errors import HookhubError, NotFound
from hookhub.inbound import email_events
from hookhub.inbound.rules import Plan, RuleError
from hookhub.inbound.send_email import queue_email
from hookhub.inbound.start_automation import InboundSource, start_automation
from hookhub.records.contacts import Contact

if TYPE_CHECKING:
    from hookhub.automation.registry import AutomationRegistry

DEFAULT_EMAIL_FROM = Settings.model_fields["email_from"].default


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What actions need beyond the plan: ``email_from`` is the sender of ``send_email``
    emails (HOOKHUB_EMAIL_FROM) unless their template names one; ``source`` the request
    (for ``start_automation``'s trigger data) and ``automations`` the process's compiled
    automations (None: compiled on each use)."""

    email_from: str = DEFAULT_EMAIL_FROM
    source: InboundSource | None = None
    automations: AutomationRegistry | None = None


def apply_plans(
    crm: CrmTx,
    plans: list[Plan],
    *,
    email_from: str = DEFAULT_EMAIL_FROM,
    source: InboundSource | None = None,
    automations: AutomationRegistry | None = None,
) -> list[dict[str, Any]]:
    """Perform every plan in order; answers what was done, one entry per rule."""
    context = ActionContext(email_from, source, automations)
    return [_apply(crm, plan, context) for plan in plans]


def _apply(crm: CrmTx, plan: Plan, context: ActionContext) -> dict[str, Any]:
    email_from = context.email_from
    action: dict[str, Any] = {"rule": plan.rule}
    if plan.item is not None:
        action["item"] = plan.item
    if not plan.contact_mapped:  # a rule about something else than a contact
        action = _email_event(crm, plan, action)
        if plan.email_template_id is not None:
            action["send_email"] = queue_email(crm, plan, None, email_from)
        return action
    try:
        contact, outcome = _contact(crm, plan)
    except RuleError:
        raise
    except HookhubError as exc:
        raise _blame(plan, exc) from exc
    action["contact"] = outcome
    if contact is None:
        if plan.email_template_id is not None and plan.email_to is not None:
            action["send_email"] = queue_email(crm, plan, None, email_from)
        elif plan.email_template_id is not None:
            action["send_email"] = {"status": "not queued: no contact to send to"}
        if plan.automation_id is not None:
            action["start_automation"] = {
                "automation_id": plan.automation_id,
                "status": "not started: no contact",
            }
        return action
    action["contact_id"] = contact.id
    action["email"] = contact.email
    if plan.skipped_attributes:
        action["skipped_attributes"] = plan.skipped_attributes
    try:
        if plan.add_to_lists and outcome == "created":
            action["lists_added"] = sorted(contact.list_ids)
        elif plan.add_to_lists:
            before = set(contact.list_ids)
            contact = crm.update_contact(contact, add_list_ids=plan.add_to_lists)
            action["lists_added"] = sorted(set(contact.list_ids) - before)
        if plan.event_name:
            event, _ = crm.track_event(
                plan.event_name,
                contact=contact,
                event_properties=plan.event_properties,
                event_date=plan.event_date,
            )
            action["event_id"] = event.id
    except HookhubError as exc:
        raise _blame(plan, exc) from exc
    action = _email_event(crm, plan, action)
    if plan.email_template_id is not None:
        action["send_email"] = queue_email(crm, plan, contact, email_from)
    if plan.automation_id is not None:
        action["start_automation"] = start_automation(
            crm, plan, contact, context.source, context.automations
        )
    return action


def _email_event(crm: CrmTx, plan: Plan, action: dict[str, Any]) -> dict[str, Any]:
    if plan.email_event is None:
        return action

    def blame(field: str, message: str) -> RuleError:
        expression = plan.expressions.get(f"email_event.{field}")
        return RuleError(message, expression=expression, rule=plan.rule)

    try:
        action.update(email_events.apply(crm, plan.email_event, blame))
    except RuleError:
        raise
    except HookhubError as exc:
        raise _blame(plan, exc) from exc
    return action


def _contact(crm: CrmTx, plan: Plan) -> tuple[Contact | None, str]:
    existing = _find(crm, plan)
    if plan.mode == "update_only":
        if existing is None:
            return None, "skipped: no such contact (update_only)"
        return _update(crm, existing, plan)
    if existing is not None:
        if plan.mode == "create_only":
            crm.contacts.attach_list_ids([existing])
            return existing, "unchanged: exists (create_only)"
        return _update(crm, existing, plan)
    if plan.email is None:
        raise RuleError(
            f"No contact has ext_id {plan.ext_id!r} and the rule maps no email.",
            expression=plan.expressions.get("ext_id"),
            rule=plan.rule,
        )
    # Created with its lists, so that contact.created says which, as it does from the API.
    contact, created = crm.create_contact(
        plan.email,
        ext_id=plan.ext_id,
        attributes=plan.attributes,
        list_ids=plan.add_to_lists,
        upsert=True,
        coerce=True,
        looked_up=True,  # _find looked for the email (an unnormalized spelling is caught)
    )
    return contact, "created" if created else "updated"


def _find(crm: CrmTx, plan: Plan) -> Contact | None:
    if plan.ext_id is not None:
        found = crm.contacts.get_by_ext_id(_identifier(plan, "ext_id"), lock=True)
        if found is not None:
            return found
    if plan.email is not None:
        return crm.contacts.get_by_email(_identifier(plan, "email").lower(), lock=True)
    return None


def _identifier(plan: Plan, field: str) -> str:
    """The email or ext_id a payload gave, checked before it is used in a query.

    The payload is the sender's: a NUL character would make PostgreSQL refuse the lookup with
    a database error instead of the rule error the request log can explain.
    """
    value = getattr(plan, field)
    if field == "email" and not isinstance(value, str):
        problem = f"resolved to {type(value).__name__}, not a string"
    elif isinstance(value, bool) or not isinstance(value, str | int):
        problem = f"resolved to {type(value).__name__}, not a string or an integer"
    elif "\x00" in str(value):
        problem = "contains a NUL character"
    else:
        return str(value).strip()
    raise RuleError(
        f"contact.{field} {problem}", expression=plan.expressions.get(field), rule=plan.rule
    )


def _update(crm: CrmTx, contact: Contact, plan: Plan) -> tuple[Contact, str]:
    before = crm.outbox.written[:]
    updated = crm.update_contact(
        contact,
        attributes=plan.attributes,
        ext_id=plan.ext_id if plan.ext_id is not None else UNSET,
        coerce=True,
    )
    changed = len(crm.outbox.written) > len(before)
    return updated, "updated" if changed else "unchanged"


def _blame(plan: Plan, exc: HookhubError) -> RuleError:
    """The same error, pointing at the expression that produced the faulty value."""
    details = exc.details if isinstance(exc.details, dict) else {}
    attribute = details.get("attribute")
    field = details.get("field")
    expression = plan.expressions.get(str(attribute)) if attribute else None
    if expression is None and field in ("email", "ext_id"):
        expression = plan.expressions.get(str(field))
    message = exc.message
    if isinstance(exc, NotFound) and "list_ids" in details:
        message = f"add_to_lists: {exc.message}"
    return RuleError(message, expression=expression, rule=plan.rule)
