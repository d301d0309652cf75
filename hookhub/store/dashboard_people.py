"""Reads the dashboard's people pages need and the API has no query for: contacts by email
prefix or by one attribute's value, enrollment counts for a page of automations, a contact's
path through one automation, and the email log by recipient (the timeline's sources are
``dashboard_timeline.py``'s).

Every read is bounded so that a page stays fast with 100,000 contacts: a prefix search is a
range of the unique email index; an attribute search (attributes are JSON text, not indexed)
looks at at most ``SCAN_WINDOW`` contacts per page and says where it stopped, so that the next
page goes on from there. This module must never write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from hookhub.core import jsoncodec
from hookhub.records.contacts import Contact
from hookhub.records.email import Email
from hookhub.store.contacts import row_to_contact
from hookhub.store.email_reads import LISTING_COLUMNS
from hookhub.store.email_rows import row_to_email
from hookhub.store.schema import contacts, list_members, lists
from hookhub.store.schema_automation import automation_enrollments as enrollments
from hookhub.store.schema_automation import automation_step_log as step_log
from hookhub.store.schema_email import emails

SCAN_WINDOW = 5000
"""Rows an unindexed search or timeline source looks at per page, at most."""


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- contacts ---------------------------------------------------------------------------------


def contacts_by_email_prefix(
    conn: Connection, prefix: str, *, after_email: str | None, limit: int
) -> list[Contact]:
    """Contacts whose email starts with ``prefix`` (lower case), in email order: a range of
    the unique email index."""
    query = (
        select(contacts)
        .where(
            contacts.c.email >= prefix,
            contacts.c.email < prefix + "\U0010ffff",
            contacts.c.email.like(_like_escape(prefix) + "%", escape="\\"),
        )
        .order_by(contacts.c.email)
        .limit(limit)
    )
    if after_email is not None:
        query = query.where(contacts.c.email > after_email)
    return [row_to_contact(row) for row in conn.execute(query)]


@dataclass(slots=True)
class ScanPage:
    """Contacts found among the rows looked at; ``next_after``: the id to go on after (None:
    every row has been looked at)."""

    items: list[Contact]
    next_after: int | None
    scanned: int


def contacts_by_attribute(
    conn: Connection,
    name: str,
    value: str,
    *,
    after_id: int | None,
    window: int = SCAN_WINDOW,
) -> ScanPage:
    """Contacts whose attribute ``name`` equals ``value`` (as text, case-insensitive) among the
    next ``window`` contacts by id. The text of the attributes is pre-filtered in SQL by the
    name; each candidate is then compared exactly."""
    ids_query = select(contacts.c.id).order_by(contacts.c.id).limit(window)
    if after_id is not None:
        ids_query = ids_query.where(contacts.c.id > after_id)
    bounds = ids_query.subquery()
    low, high, scanned = conn.execute(
        select(func.min(bounds.c.id), func.max(bounds.c.id), func.count())
    ).one()
    if not scanned:
        return ScanPage([], None, 0)
    # The name, then the value's text somewhere after it: only likely matches are decoded.
    shown = jsoncodec.dumps(value.strip()).decode()[1:-1]
    key = "%" + _like_escape(jsoncodec.dumps(name).decode()) + ":%" + _like_escape(shown) + "%"
    query = (
        select(contacts)
        .where(
            contacts.c.id >= low,
            contacts.c.id <= high,
            contacts.c.attributes.ilike(key, escape="\\"),
        )
        .order_by(contacts.c.id)
    )
    wanted = value.strip().casefold()
    found = []
    for row in conn.execute(query):
        contact = row_to_contact(row)
        actual = contact.attributes.get(name)
        if actual is None:
            continue
        text = (
            jsoncodec.dumps(actual).decode().strip('"') if not isinstance(actual, str) else actual
        )
        if text.casefold() == wanted:
            found.append(contact)
    more = int(scanned) == window
    return ScanPage(found, int(high) if more else None, int(scanned))


# -- automations, emails ----------------------------------------------------------------------


def list_choices(conn: Connection, limit: int) -> list[tuple[int, str]]:
    """(id, name) of the first ``limit`` lists, for a picker: no member counts (counting a list
    of 50,000 members costs PostgreSQL a scan of them, on every contact page)."""
    query = select(lists.c.id, lists.c.name).order_by(lists.c.id).limit(limit)
    return [(int(row.id), str(row.name)) for row in conn.execute(query)]


def list_members_page(
    conn: Connection, list_id: int, *, after_id: int | None, limit: int
) -> list[Contact]:
    """A list's members in contact id order from the membership index (list, contact): a
    list of 100,000 reads 50 rows, where ``id IN (members)`` walked the contacts."""
    query = (
        select(contacts)
        .join(list_members, list_members.c.contact_id == contacts.c.id)
        .where(list_members.c.list_id == list_id)
        .order_by(list_members.c.contact_id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(list_members.c.contact_id > after_id)
    return [row_to_contact(row) for row in conn.execute(query)]


def enrollment_counts(conn: Connection, automation_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Enrollments by status for each automation (the (automation, status, step) index)."""
    counts: dict[int, dict[str, int]] = {i: {} for i in automation_ids}
    if not automation_ids:
        return counts
    query = (
        select(enrollments.c.automation_id, enrollments.c.status, func.count())
        .where(enrollments.c.automation_id.in_(list(automation_ids)))
        .group_by(enrollments.c.automation_id, enrollments.c.status)
    )
    for automation_id, status, count in conn.execute(query):
        counts[automation_id][status] = int(count)
    return counts


def step_path(conn: Connection, automation_id: int, contact_id: int) -> list[dict[str, Any]]:
    """The contact's enrollments in one automation, newest first, each with its logged steps
    in order (a contact's path through the step tree)."""
    found = conn.execute(
        select(enrollments)
        .where(enrollments.c.contact_id == contact_id, enrollments.c.automation_id == automation_id)
        .order_by(enrollments.c.id.desc())
        .limit(20)
    ).all()
    if not found:
        return []
    logs: dict[int, list[dict[str, Any]]] = {}
    query = (
        select(step_log)
        .where(step_log.c.enrollment_id.in_([r.id for r in found]))
        .order_by(step_log.c.id)
    )
    for row in conn.execute(query):
        logs.setdefault(row.enrollment_id, []).append(
            {
                "step_id": row.step_id,
                "kind": row.kind,
                "outcome": row.outcome,
                "at": float(row.at),
                "detail": jsoncodec.loads(row.detail) if row.detail else None,
            }
        )
    return [
        {
            "id": row.id,
            "status": row.status,
            "step_id": row.step_id,
            "exit_reason": row.exit_reason,
            "entered_at": float(row.entered_at),
            "finished_at": float(row.finished_at) if row.finished_at is not None else None,
            "steps": logs.get(row.id, []),
        }
        for row in found
    ]


def emails_to(
    conn: Connection,
    address: str,
    *,
    before_id: int | None,
    limit: int,
    status: str | None = None,
    campaign_id: int | None = None,
) -> list[Email]:
    """The email log to one address, newest first (the (to_email, id) index)."""
    query = (
        select(*LISTING_COLUMNS)
        .where(emails.c.to_email == address)
        .order_by(emails.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(emails.c.id < before_id)
    if status is not None:
        query = query.where(emails.c.status == status)
    if campaign_id is not None:
        query = query.where(emails.c.campaign_id == campaign_id)
    return [row_to_email(row) for row in conn.execute(query)]
