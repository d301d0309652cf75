"""Steps done for many enrollments at once: ``add_to_list``, ``update_contact`` and
``track_event`` for every enrollment of a batch that is on the same step.

Each kind has two halves. ``prepare`` evaluates one enrollment's expressions (pure: an
expression failing on this contact's values fails this enrollment alone, before anything is
written). ``apply`` then does every prepared enrollment's change with one statement per kind of
row, through ``hookhub.crm.bulk`` (the same rows and outbox messages as one contact at a time),
and answers each one's outcome and detail, in order. ``apply`` either does it all or raises;
the engine runs it in a savepoint and, should it raise, goes enrollment by enrollment.

This module must never commit, nor run a step that queues email or a webhook (those go one at
a time: their rows are few and their side effects are not undone by a rollback of ours).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hookhub.automation.definition import Step, TrackEventSpec
from hookhub.automation.steps import StepContext
from hookhub.crm.bulk import add_to_list_many, track_events_many, update_attributes_many
from hookhub.crm.operations import CrmTx

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


BULK_STEPS: dict[str, BulkStep] = {
    "add_to_list": BulkStep(_nothing, _add_to_list),
    "update_contact": BulkStep(_attribute_values, _update_contact),
    "track_event": BulkStep(_event_properties, _track_event),
}
