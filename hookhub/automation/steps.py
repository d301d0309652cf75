"""What each step kind does to one enrollment, inside the run's transaction.

:func:`run_step` answers where the run goes next (:class:`Go`), that it must wait
(:class:`Wait`: the step has begun and is looked at again when due), or that the automation
ends here (:class:`Go` with ``end``). Waiting steps are pure: they compute due times from when
they began (``step_started_at``), so a waiting enrollment claimed early (a lease that ran out,
a worker giving its leases back) just goes back to waiting. Steps with effects change
contacts, lists and events through :class:`~hookhub.crm.operations.CrmTx` (their outbox
messages written as usual), queue email through the email queue and webhooks through the
delivery queue, all on the run's connection.

A step that cannot run for this contact raises (a :class:`~hookhub.errors.HookhubError`: an
expression failing on its values, a deleted template or list); the engine fails the
enrollment. This module must never commit, sleep or read a clock: "now" is the context's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from hookhub.automation.definition import (
    SendEmailSpec,
    Step,
    TrackEventSpec,
    WaitForSpec,
    WaitUntilSpec,
)
from hookhub.automation.enroll import contact_view
from hookhub.automation.registry import Compiled
from hookhub.automation.timing import next_time_of_day
from hookhub.automation.webhook_step import post_webhook
from hookhub.core.expressions import is_truthy
from hookhub.crm.operations import CrmTx
from hookhub.email.compose import skip_reason
from hookhub.email.service import SendRequest, queue_emails
from hookhub.errors import NotFound
from hookhub.outbound.outbox import Outbox, OutboxWriter
from hookhub.records.automations import Enrollment
from hookhub.records.contacts import Contact
from hookhub.store.email_reads import Recipient

EFFECTS = frozenset(
    {
        "send_email",
        "add_to_list",
        "remove_from_list",
        "update_contact",
        "track_event",
        "webhook",
    }
)
"""Kinds that write: the engine opens the enrollment's savepoint before the first of them."""


@dataclass(frozen=True, slots=True)
class Go:
    """The step is done: go on at ``next`` (None: the automation is completed)."""

    next: str | None
    outcome: str = "completed"  # or skipped
    detail: dict[str, Any] | None = None
    end: bool = False
    """An ``exit`` step: the run ends here, whatever follows."""


@dataclass(frozen=True, slots=True)
class Wait:
    """The step has begun (at ``started_at``) and is looked at again at ``due_at``."""

    started_at: float
    due_at: float
    waiting_for: str | None = None


@dataclass
class StepContext:
    """One enrollment's run: its connection, time, contact and automation."""

    conn: Connection
    outbox: Outbox
    facts: dict[str, Any]
    """Shared by the runs of one batch (subscriptions, webhook endpoints found)."""
    now: float
    at: datetime
    enrollment: Enrollment
    compiled: Compiled
    contact: Contact
    email_from: str
    _crm: CrmTx | None = field(default=None, repr=False)
    _scope: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def crm(self) -> CrmTx:
        """Made on first use: each run has its own writer (what one caches must not outlive
        a savepoint that is rolled back)."""
        if self._crm is None:
            self._crm = CrmTx(
                self.conn,
                self.outbox.writer(self.conn, self.facts, origin=self.compiled.origin),
                self.at,
            )
        return self._crm

    def use(self, crm: CrmTx) -> None:
        """Make the step's changes through ``crm`` (a fresh one for each savepoint)."""
        self._crm = crm

    @property
    def writer(self) -> OutboxWriter:
        return self.crm.outbox

    def scope(self) -> dict[str, Any]:
        """``{contact, trigger}`` as expressions see them (after this run's changes)."""
        if self._scope is None:
            self._scope = {
                "contact": contact_view(self.contact),
                "trigger": self.enrollment.trigger.get("data", {}),
            }
        return self._scope

    def changed(self) -> None:
        self._scope = None


def run_step(ctx: StepContext, step: Step, started_at: float | None, matched: bool) -> Go | Wait:
    """Run ``step`` (``started_at``: when it began, if it is a waiting step that has)."""
    kind = step.kind
    if kind == "wait":
        begun = ctx.now if started_at is None else started_at
        return _wait_until(ctx, step, begun, begun + float(step.spec))
    if kind == "wait_until":
        spec: WaitUntilSpec = step.spec
        begun = ctx.now if started_at is None else started_at
        return _wait_until(ctx, step, begun, next_time_of_day(begun, spec.at, spec.zone, spec.days))
    if kind == "wait_for":
        return _wait_for(ctx, step, started_at, matched)
    if kind == "if":
        went = is_truthy(step.spec.search(ctx.scope()))
        branch = step.then_first if went else step.else_first
        return Go(branch, detail={"branch": "then" if went else "else"})
    if kind == "exit":
        return Go(None, end=True)
    return Go(step.next, *_EFFECT_STEPS[kind](ctx, step))


def _wait_until(ctx: StepContext, step: Step, begun: float, until: float) -> Go | Wait:
    if ctx.now >= until:
        return Go(step.next)
    return Wait(begun, until)


def _wait_for(ctx: StepContext, step: Step, started_at: float | None, matched: bool) -> Go | Wait:
    spec: WaitForSpec = step.spec
    if started_at is None:
        # Only an event tracked from now on counts: the enrollment starts waiting now.
        return Wait(ctx.now, ctx.now + spec.timeout, spec.event_name)
    if matched:
        return Go(step.then_first, detail={"branch": "then", "event_name": spec.event_name})
    timeout_at = started_at + spec.timeout
    if ctx.now >= timeout_at:
        return Go(step.else_first, detail={"branch": "else", "timed_out": True})
    return Wait(started_at, timeout_at, spec.event_name)


# -- steps with effects: each answers (outcome, detail) --------------------------------------

Effect = tuple[str, dict[str, Any] | None]


def _send_email(ctx: StepContext, step: Step) -> Effect:
    spec: SendEmailSpec = step.spec
    contact = ctx.contact
    params = {name: e.search(ctx.scope()) for name, e in spec.params.items()}
    recipient = Recipient(
        contact.id, contact.email, contact.attributes, contact.unsubscribed, contact.email_blocked
    )
    reason = skip_reason("automation", recipient)
    if reason is not None:
        return "skipped", {"reason": reason, "template_id": spec.template_id}
    request = SendRequest(
        to=[(contact.email, None)],
        template_id=spec.template_id,
        params=params,
        kind="automation",
        automation_id=ctx.compiled.id,
    )
    [email] = queue_emails(ctx.conn, request, ctx.at, email_from=ctx.email_from)
    return "completed", {"email_id": email.id, "template_id": spec.template_id}


def _add_to_list(ctx: StepContext, step: Step) -> Effect:
    list_id: int = step.spec
    if list_id in ctx.contact.list_ids:
        ctx.crm.require_lists([list_id])  # a deleted list fails the step, member or not
        return "skipped", {"list_id": list_id, "reason": "already a member"}
    ctx.crm.update_contact(ctx.contact, add_list_ids=[list_id])
    ctx.changed()
    return "completed", {"list_id": list_id}


def _remove_from_list(ctx: StepContext, step: Step) -> Effect:
    list_id: int = step.spec
    ctx.crm.require_lists([list_id])
    try:
        ctx.crm.remove_from_list(list_id, ctx.contact)
    except NotFound:
        return "skipped", {"list_id": list_id, "reason": "not a member"}
    ctx.contact.list_ids = [lid for lid in ctx.contact.list_ids if lid != list_id]
    ctx.changed()
    return "completed", {"list_id": list_id}


def _update_contact(ctx: StepContext, step: Step) -> Effect:
    scope = ctx.scope()
    values = {name: e.search(scope) for name, e in step.spec.items()}
    # Values come from expressions, as a rule's do from a payload: converted to the declared
    # types, and an undeclared attribute is declared as text.
    ctx.crm.update_contact(ctx.contact, attributes=values, coerce=True)
    ctx.changed()
    return "completed", {"attributes": sorted(values)}


def _track_event(ctx: StepContext, step: Step) -> Effect:
    spec: TrackEventSpec = step.spec
    scope = ctx.scope()
    properties = {key: e.search(scope) for key, e in spec.properties.items()}
    event, _ = ctx.crm.track_event(spec.name, contact=ctx.contact, event_properties=properties)
    return "completed", {"event_id": event.id, "event_name": spec.name}


def _webhook(ctx: StepContext, step: Step) -> Effect:
    message_id = post_webhook(
        ctx.conn,
        ctx.writer,
        ctx.facts,
        step_id=step.id,
        spec=step.spec,
        automation_id=ctx.compiled.id,
        enrollment=ctx.enrollment,
        contact=ctx.contact,
        at=ctx.at,
    )
    return "completed", {"message_id": message_id}


_EFFECT_STEPS = {
    "send_email": _send_email,
    "add_to_list": _add_to_list,
    "remove_from_list": _remove_from_list,
    "update_contact": _update_contact,
    "track_event": _track_event,
    "webhook": _webhook,
}
