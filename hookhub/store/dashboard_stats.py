"""Aggregate reads for the dashboard's overview page (counts of what Hookhub holds)."""

from __future__ import annotations

from sqlalchemy import Connection, Table, func, select

from hookhub.store.schema import contacts, endpoints, inbound_webhooks, lists
from hookhub.store.schema_email import emails

_COUNTED: dict[str, Table] = {
    "contacts": contacts,
    "lists": lists,
    "endpoints": endpoints,
    "inbound_webhooks": inbound_webhooks,
    "emails": emails,
}


def counts(conn: Connection) -> dict[str, int]:
    """How many contacts, lists, outbound endpoints, inbound webhooks and emails there are."""
    return {
        name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for name, table in _COUNTED.items()
    }
