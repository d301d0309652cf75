"""The queries automation triggers make: the contacts a batch of messages is about, whether
the automations a trigger matched still exist, a date trigger's scan of contacts, and the
batched form of entry (who ``reentry`` keeps out, the rows inserted in one statement).

Single enrollments and everything after entry are ``store/enrollments.py``'s. This module must
never commit: it runs in the transaction of whatever change fired the trigger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select

from hookhub.records.automations import ACTIVE
from hookhub.records.contacts import Contact
from hookhub.store.contacts import ContactStore, row_to_contact
from hookhub.store.schema import contacts
from hookhub.store.schema_automation import automation_enrollments, automations

_IN_CHUNK = 500  # SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class LiveAutomation:
    id: int
    version: int
    enabled: bool


def contacts_by_id(conn: Connection, ids: Iterable[int]) -> dict[int, Contact]:
    """The contacts (with their list ids) among ``ids`` that exist, one query per 500."""
    wanted = sorted(set(ids))
    found: dict[int, Contact] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        query = select(contacts).where(contacts.c.id.in_(chunk))
        for row in conn.execute(query):
            found[row.id] = row_to_contact(row)
    ContactStore(conn).attach_list_ids(list(found.values()))
    return found


def live_automations(conn: Connection, ids: Iterable[int]) -> dict[int, LiveAutomation]:
    """Which of ``ids`` exist in this transaction, at which version, enabled or not.

    On PostgreSQL the rows are locked FOR KEY SHARE: an automation deleted by another
    transaction at this moment is either gone here or waits for this one to commit, so an
    enrollment never points at a deleted automation (and never fails the change that fired it).
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(automations.c.id, automations.c.version, automations.c.enabled).where(
        automations.c.id.in_(wanted)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    return {
        int(row.id): LiveAutomation(int(row.id), int(row.version), bool(row.enabled))
        for row in conn.execute(query)
    }


def max_contact_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(contacts.c.id), 0))).scalar_one())


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def date_candidates(
    conn: Connection, *, after_id: int, until_id: int, patterns: Sequence[str]
) -> list[Contact]:
    """Contacts with ``after_id < id <= until_id`` whose attributes' JSON text matches one of
    ``patterns`` (LIKE, ``\\`` escapes): a pre-filter on the stored text that needs no index
    and parses nothing; the caller checks each candidate's value."""
    if not patterns:
        return []
    query = (
        select(contacts)
        .where(contacts.c.id > after_id, contacts.c.id <= until_id)
        .where(or_(*(contacts.c.attributes.like(p, escape="\\") for p in patterns)))
        .order_by(contacts.c.id)
    )
    return [row_to_contact(row) for row in conn.execute(query)]


def entered_with_key(
    conn: Connection, automation_id: int, entry_key: str, contact_ids: Sequence[int]
) -> set[int]:
    """Which of ``contact_ids`` already entered ``automation_id`` with ``entry_key`` (a date
    trigger's day): a rescan skips them without a write transaction."""
    found: set[int] = set()
    wanted = sorted(set(contact_ids))
    for start in range(0, len(wanted), _IN_CHUNK):
        query = select(automation_enrollments.c.contact_id).where(
            automation_enrollments.c.automation_id == automation_id,
            automation_enrollments.c.entry_key == entry_key,
            automation_enrollments.c.contact_id.in_(wanted[start : start + _IN_CHUNK]),
        )
        found.update(int(i) for i in conn.execute(query).scalars())
    return found


def reentry_blocked(
    conn: Connection, automation_id: int, contact_ids: Sequence[int], *, active_only: bool
) -> set[int]:
    """Which of ``contact_ids`` have an enrollment in ``automation_id`` (``active_only``: an
    active one): those ``reentry`` ``never`` (or ``after_exit``) keeps out."""
    found: set[int] = set()
    wanted = sorted(set(contact_ids))
    for start in range(0, len(wanted), _IN_CHUNK):
        query = select(automation_enrollments.c.contact_id).where(
            automation_enrollments.c.automation_id == automation_id,
            automation_enrollments.c.contact_id.in_(wanted[start : start + _IN_CHUNK]),
        )
        if active_only:
            query = query.where(automation_enrollments.c.status == ACTIVE)
        found.update(int(i) for i in conn.execute(query).scalars())
    return found


def insert_enrollments(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert enrollment rows (``store/enrollments.py``'s columns) in one statement; their ids
    in the order given."""
    if not rows:
        return []
    statement = insert(automation_enrollments).returning(
        automation_enrollments.c.id, sort_by_parameter_order=True
    )
    return [int(i) for i in conn.execute(statement, list(rows)).scalars()]
