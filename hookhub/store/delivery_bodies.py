"""Rendered bodies of transformed endpoints' deliveries (``deliveries.body``).

A transformed delivery's body is rendered at its first attempt and stored in the transaction
that records that attempt; every later attempt sends exactly those bytes. Deliveries of
endpoints without a transform never come here (their body is the message's payload).

What this module must never do: replace a body already stored (a retry must not change it).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, select, update

from hookhub.store.schema import deliveries

__all__ = ["store_bodies", "stored_bodies"]

_STORE = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("delivery_id"), deliveries.c.body.is_(None))
    .values(body=bindparam("rendered"))
)


def stored_bodies(conn: Connection, ids: Sequence[int]) -> dict[int, bytes]:
    """The stored body of each delivery of ``ids`` that has one."""
    found: dict[int, bytes] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        query = select(deliveries.c.id, deliveries.c.body).where(
            deliveries.c.id.in_(chunk), deliveries.c.body.is_not(None)
        )
        for row_id, body in conn.execute(query):
            found[row_id] = body.encode()
    return found


def store_bodies(conn: Connection, bodies: Sequence[tuple[int, bytes]]) -> None:
    """Store each delivery's first rendered body (kept if one is already there)."""
    if bodies:
        conn.execute(_STORE, [{"delivery_id": i, "rendered": body.decode()} for i, body in bodies])
