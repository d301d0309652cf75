"""Steps done for many enrollments at once: ``add_to_list``, ``update_contact``,
``track_event`` and ``send_email`` for every enrollment of a batch that is on the same step.

Each kind has two halves. ``prepare`` evaluates one enrollment's expressions (pure: an
expression failing on this contact's values fails this enrollment alone, before anything is
written). ``apply`` then does every prepared enrollment's change with one statement per kind of
row, through ``hookhub.crm.bulk`` (the same rows and outbox messages as one contact at a time),
and answers each one's outcome and detail, in order. ``apply`` either does it all or raises;
the engine runs it in a savepoint and, should it raise, goes enrollment by enrollment.

This module must never commit. ``webhook`` steps go one at a time (each may make its step's
endpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hookhub.automation.definition import SendEmailSpec, Step, TrackEventSpec
from hookhub.automation.steps import StepContext
from hookhub.core import jsoncodec
from hookhub.crm.bulk import add_to_list_many, track_events_many, update_attributes_many
from hookhub.crm.operations import CrmTx
from hookhub.email.compose import skip_reason
from hookhub.email.service import MAX_RECIPIENTS, SendRequest, queue_emails
from hookhub.store.email_reads import Recipient

Outcome = tuple[str, dict[str, Any] | None]
Prepared = list[tuple[StepContext, Any]]


@dataclass(frozen=True, slots=True)
class BulkStep:
    prepare: Callable[[StepContext, Step], Any]
    apply: Callable[[CrmTx, Step, Prepared], Sequence[Outcome]]


def _nothing(_ctx: StepContext, _step: Step) -> None:
    return None


def _add_to_list(crm: CrmTx, step: Step, prepared: Prepared) -> list[Outcome]:
    list_id: int = step.spec
    joined = {c.id for c in add_to_list_many(crm, list_id, [ctx.contact for ctx, _ in prepared])}
    return [
        ("completed", {"list_id": list_id})
        if ctx.contact.id in joined
        else ("skipped", {"list_id": list_id, "reason": "already a member"})
        for ctx, _ in prepared
    ]


def _attribute_values(ctx: StepContext, step: Step) -> dict[str, Any]:
    scope = ctx.scope()
    return {name: e.search(scope) for name, e in step.spec.items()}


def _update_contact(crm: CrmTx, step: Step, prepared: Prepared) -> list[Outcome]:
    # Values come from expressions, as a rule's do from a payload: converted to the declared
    # types, and an undeclared attribute is declared as text.
    update_attributes_many(crm, [(ctx.contact, values) for ctx, values in prepared], coerce=True)
    return [("completed", {"attributes": sorted(values)}) for _, values in prepared]


def _event_properties(ctx: StepContext, step: Step) -> dict[str, Any]:
    spec: TrackEventSpec = step.spec
    scope = ctx.scope()
    return {key: e.search(scope) for key, e in spec.properties.items()}


def _track_event(crm: CrmTx, step: Step, prepared: Prepared) -> list[Outcome]:
    spec: TrackEventSpec = step.spec
    ids = track_events_many(crm, spec.name, [(ctx.contact, props) for ctx, props in prepared])
    return [("completed", {"event_id": i, "event_name": spec.name}) for i in ids]


def _email_prepare(ctx: StepContext, step: Step) -> tuple[dict[str, Any], str | None]:
    """The email's params, and why this contact gets none (unsubscribed, blocked), if so."""
    spec: SendEmailSpec = step.spec
    scope = ctx.scope()
    params = {name: e.search(scope) for name, e in spec.params.items()}
    contact = ctx.contact
    recipient = Recipient(
        contact.id, contact.email, contact.attributes, contact.unsubscribed, contact.email_blocked
    )
    return params, skip_reason("automation", recipient)


def _send_email(crm: CrmTx, step: Step, prepared: Prepared) -> list[Outcome]:
    """One ``queue_emails`` for the contacts whose params are the same (all of them, for a
    step without params), skipped contacts left out (no email row, as one at a time)."""
    spec: SendEmailSpec = step.spec
    outcomes: dict[int, Outcome] = {}
    alike: dict[bytes, list[StepContext]] = {}
    for ctx, (params, reason) in prepared:
        if reason is not None:
            outcomes[ctx.contact.id] = (
                "skipped",
                {"reason": reason, "template_id": spec.template_id},
            )
        else:
            alike.setdefault(jsoncodec.dumps(params), []).append(ctx)
    for params_json, contexts in alike.items():
        for start in range(0, len(contexts), MAX_RECIPIENTS):
            chunk = contexts[start : start + MAX_RECIPIENTS]
            request = SendRequest(
                to=[(ctx.contact.email, None) for ctx in chunk],
                template_id=spec.template_id,
                params=jsoncodec.loads(params_json),
                kind="automation",
                automation_id=chunk[0].compiled.id,
            )
            queued = queue_emails(crm.conn, request, crm.now, email_from=chunk[0].email_from)
            by_address = {email.to_email: email for email in queued}
            for ctx in chunk:
                email = by_address[ctx.contact.email]
                if email.status != "queued":  # the contact changed since it was read
                    raise RuntimeError(f"email {email.id} was not queued ({email.status})")
                outcomes[ctx.contact.id] = (
                    "completed",
                    {"email_id": email.id, "template_id": spec.template_id},
                )
    return [outcomes[ctx.contact.id] for ctx, _ in prepared]


BULK_STEPS: dict[str, BulkStep] = {
    "add_to_list": BulkStep(_nothing, _add_to_list),
    "update_contact": BulkStep(_attribute_values, _update_contact),
    "track_event": BulkStep(_event_properties, _track_event),
    "send_email": BulkStep(_email_prepare, _send_email),
}
