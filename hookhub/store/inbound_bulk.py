"""Contacts statements for inbound processing's bulk path (``hookhub/inbound/bulk.py``).

Multi-row forms of what ``ContactStore`` does one contact at a time: which of these emails
have a contact, and insert contacts whose email is free in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from hookhub.store.schema import contacts

_EXISTING = select(contacts.c.email).where(
    contacts.c.email.in_(bindparam("emails", expanding=True))
)
_INSERT_NEW = {
    dialect: module.insert(contacts)
    .on_conflict_do_nothing()
    .returning(contacts.c.id, contacts.c.email)
    for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
_CHUNK = 500  # under SQLite's bound-parameter limit


def existing_emails(conn: Connection, emails: Sequence[str]) -> set[str]:
    """Those of ``emails`` that a contact has."""
    found: set[str] = set()
    for start in range(0, len(emails), _CHUNK):
        chunk = list(emails[start : start + _CHUNK])
        found.update(conn.execute(_EXISTING, {"emails": chunk}).scalars())
    return found


def insert_new_contacts(conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert contacts (rows of email, ext_id, attributes as JSON text, unsubscribed,
    created_at, updated_at); the new ids by email. A row whose email or ext_id is taken is
    skipped, not an error: the caller compares the answer with what it asked."""
    if not rows:
        return {}
    result = conn.execute(_INSERT_NEW[conn.dialect.name], rows)
    return {row.email: row.id for row in result}
