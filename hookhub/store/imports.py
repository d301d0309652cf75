"""Queries of the CSV contact import that the contact store does not have: refreshing the
planner's statistics.

Called inside the importer's transactions; it never commits or decides anything itself.
"""

from __future__ import annotations

from sqlalchemy import Connection


class ContactImportStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def analyze_contacts(self) -> None:
        """Refresh PostgreSQL's statistics of the contacts table (see the importer for why)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("ANALYZE contacts")
