"""The common case of a batch, in a few statements: requests that each create one new contact.

Most inbound traffic is of one shape: a provider tells of a new customer, and one rule upserts
its contact by email and records a custom event (the Stripe preset's ``customer.created``).
Run one request at a time, each costs its own contact lookup, contact insert, event insert,
two outbox inserts and savepoint: profiled, the statements' per-call overhead was most of the
processing cost. Here consecutive requests of that shape are applied together, in arrival
order: one multi-row insert of their contacts, one of their events, one outbox write of all
their messages, in one savepoint.

What each request gets is exactly what running it alone would give (the same rows, messages
in the same order with the same bodies, the same recorded actions): a request qualifies only
when nothing in its plan can take another path (:func:`simple_plan`). Should anything still
differ from what was foreseen (an email taken meanwhile, any error), the savepoint is rolled
back and the caller runs those requests one by one, the ordinary way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import PendingRollbackError

from hookhub.core import jsoncodec
from hookhub.core.contacts import normalize_email
from hookhub.crm.events import MAX_EVENT_PROPERTIES_BYTES
from hookhub.crm.operations import CrmTx
from hookhub.errors import HookhubError
from hookhub.inbound.rules import Plan
from hookhub.outbound.outbox import OutboxMessage, build_message
from hookhub.store.database import is_transient, light_savepoint
from hookhub.store.events import EventStore
from hookhub.store.inbound import Outcome
from hookhub.store.inbound_bulk import existing_emails, insert_new_contacts

MAX_RUN = 100


@dataclass(slots=True)
class NewContact:
    """One request found to create one new contact (and maybe record one event)."""

    request_id: int
    plan: Plan
    email: str
    attributes: dict[str, Any]  # prepared: declared names, coerced values, None dropped
    properties_json: bytes | None  # the event's, when the rule records one
    event_date: datetime | None


def simple_plan(crm: CrmTx, request_id: int, plans: list[Plan]) -> NewContact | None:
    """The request's one plan when it may be applied in bulk; None: run it the ordinary way.

    It must be one rule upserting (or creating) a contact by email alone, with nothing else
    than attributes already declared and an optional event: no ext_id, lists, email,
    automation or email event, and values that will be accepted as they are.
    """
    if len(plans) != 1:
        return None
    plan = plans[0]
    if (
        not plan.contact_mapped
        or plan.mode == "update_only"
        or plan.ext_id is not None
        or plan.add_to_lists
        or plan.email_template_id is not None
        or plan.automation_id is not None
        or plan.email_event is not None
        or plan.item is not None
        or not isinstance(plan.email, str)
        or "\x00" in plan.email
    ):
        return None
    types = crm.attribute_types()
    if any(name not in types for name in plan.attributes):
        return None  # declaring one is a write of its own
    try:
        email = normalize_email(plan.email)
        attributes = crm.prepare_attributes(plan.attributes, coerce=True)
    except HookhubError:
        return None  # the ordinary path fails the request, and says why
    if email != plan.email.strip().lower():
        return None  # looked up by one spelling, stored under another: as the ordinary path
    properties_json = None
    if plan.event_name:
        properties_json = jsoncodec.dumps(plan.event_properties)
        if len(properties_json) > MAX_EVENT_PROPERTIES_BYTES:
            return None
    return NewContact(
        request_id,
        plan,
        email,
        {k: v for k, v in attributes.items() if v is not None},
        properties_json,
        plan.event_date,
    )


def not_yet_contacts(conn: Connection, candidates: Sequence[NewContact]) -> set[str]:
    """The candidates' emails that no contact has yet (one query for a whole batch)."""
    return {c.email for c in candidates} - existing_emails(conn, [c.email for c in candidates])


def apply_run(
    conn: Connection,
    crm: CrmTx,
    run: Sequence[NewContact],
    finished: float,
) -> list[Outcome] | None:
    """Create the run's contacts, events and messages; their outcomes, or None when the run
    must be applied one request at a time instead (nothing of it is kept then)."""
    now = crm.now
    stamp = jsoncodec.isoformat(now)
    try:
        with light_savepoint(conn, "hookhub_bulk"):
            ids = insert_new_contacts(
                conn,
                [
                    {
                        "email": item.email,
                        "ext_id": None,
                        "attributes": jsoncodec.dumps(item.attributes).decode(),
                        "unsubscribed": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for item in run
                ],
            )
            if len(ids) != len(run):
                raise _Taken()
            with_event = [item for item in run if item.properties_json is not None]
            event_ids = EventStore(conn).insert_many(
                [
                    {
                        "event_name": item.plan.event_name,
                        "contact_id": ids[item.email],
                        "event_properties": item.properties_json.decode(),  # type: ignore[union-attr]
                        "event_date": _when(item, now),
                        "created_at": now,
                    }
                    for item in with_event
                ]
            )
            events = dict(zip((item.request_id for item in with_event), event_ids, strict=True))
            messages: list[OutboxMessage] = []
            origin = crm.outbox.origin
            message = _messages(messages, now, origin)
            outcomes = []
            for item in run:
                contact_id = ids[item.email]
                common = {"contact_id": contact_id, "email": item.email}
                message(
                    "contact.created",
                    {
                        **common,
                        "ext_id": None,
                        "attributes": item.attributes,
                        "list_ids": [],
                        "unsubscribed": False,
                        "created_at": stamp,
                    },
                )
                action: dict[str, Any] = {
                    "rule": item.plan.rule,
                    "contact": "created",
                    **common,
                }
                if item.plan.skipped_attributes:
                    action["skipped_attributes"] = item.plan.skipped_attributes
                event_id = events.get(item.request_id)
                if event_id is not None:
                    message(
                        "event.tracked",
                        {
                            **common,
                            "event_id": event_id,
                            "event_name": item.plan.event_name,
                            "event_properties": dict(item.plan.event_properties),
                            "event_date": jsoncodec.isoformat(_when(item, now)),
                        },
                    )
                    action["event_id"] = event_id
                actions = jsoncodec.dumps([action]).decode()
                outcomes.append(
                    Outcome(item.request_id, "processed", None, None, actions, finished)
                )
            crm.outbox.write(messages)
    except _Taken:
        return None
    except Exception as exc:
        if is_database_outage(exc):
            raise
        return None  # whatever it was, the ordinary path will say it of the right request
    return outcomes


def is_database_outage(exc: BaseException) -> bool:
    return is_transient(exc) or isinstance(exc, PendingRollbackError)


class _Taken(Exception):
    """An email of the run was taken after the batch looked (by a request run before it)."""


def _when(item: NewContact, now: datetime) -> datetime:
    return (item.event_date or now).astimezone(UTC)


def _messages(
    into: list[OutboxMessage], now: datetime, origin: Any
) -> Callable[[str, dict[str, Any]], None]:
    def add(event_type: str, data: dict[str, Any]) -> None:
        into.append(build_message(event_type, data, now, origin=origin))

    return add


def run_batch(
    conn: Connection,
    requests: Sequence[Row[Any]],
    *,
    crm_for: Callable[[], CrmTx],
    plans_for: Callable[[Row[Any]], list[Plan]],
    run_one: Callable[[Row[Any]], Outcome],
    keep_going: Callable[[int], bool],
) -> list[Outcome]:
    """Run a batch's requests in arrival order: consecutive requests that each create a new
    contact together (:func:`apply_run`), every other one alone (``run_one``).

    ``keep_going(done)`` says whether to start more after ``done`` outcomes (a time budget);
    the requests left wait for the next batch, still in order.
    """
    crm = crm_for()
    candidates: dict[int, NewContact] = {}
    seen: set[str] = set()
    for index, request in enumerate(requests):
        try:
            found = simple_plan(crm, request.id, plans_for(request))
        except Exception:
            found = None  # run alone, it fails the way it should
        if found is not None and found.email not in seen:
            seen.add(found.email)  # a second request for the same email updates it
            candidates[index] = found
    if candidates:
        new = not_yet_contacts(conn, list(candidates.values()))
        candidates = {i: c for i, c in candidates.items() if c.email in new}
    outcomes: list[Outcome] = []
    index = 0
    while index < len(requests) and keep_going(len(outcomes)):
        run: list[NewContact] = []
        while index + len(run) < len(requests) and len(run) < MAX_RUN:
            candidate = candidates.get(index + len(run))
            if candidate is None:
                break
            run.append(candidate)
        done = apply_run(conn, crm_for(), run, time.time()) if run else None
        if done is not None:
            outcomes.extend(done)
            index += len(run)
            continue
        for request in requests[index : index + max(1, len(run))]:
            outcomes.append(run_one(request))
        index += max(1, len(run))
    return outcomes
