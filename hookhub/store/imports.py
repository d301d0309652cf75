"""Queries of the CSV contact import that the per-row contact store does not have: a batch
insert that answers the new ids in order, and refreshing the planner's statistics.

Called inside the importer's transactions; it never commits or decides anything itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert

from hookhub.store.schema import contacts

_INSERT_RETURNING_IDS = insert(contacts).returning(contacts.c.id, sort_by_parameter_order=True)


class ContactImportStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert_contacts(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert new contacts (email, ext_id, attributes, unsubscribed, created_at, updated_at);
        answers their ids in the order of ``rows``."""
        if not rows:
            return []
        result = self.conn.execute(_INSERT_RETURNING_IDS, list(rows))
        return [int(new_id) for new_id in result.scalars()]

    def analyze_contacts(self) -> None:
        """Refresh PostgreSQL's statistics of the contacts table (see the importer for why)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("ANALYZE contacts")
