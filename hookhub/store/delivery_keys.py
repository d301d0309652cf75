"""The SQL of per-contact ordering and collapsed bursts (``hookhub.outbound.keyed_fanout``).

A keyed delivery (its endpoint has ``ordering`` or ``collapse``) carries ``contact_id``. Of one
endpoint's unfinished deliveries about one contact, only the oldest may be ``pending`` or
``failed`` on an ordered endpoint: the others are ``waiting``, and never claimed. When the
oldest finishes (its acknowledgement, in the same transaction), :meth:`DeliveryKeys.promote`
makes the next one pending; :meth:`DeliveryKeys.sweep` repairs any group whose oldest is still
waiting (it cannot happen on SQLite, whose writers take turns; on PostgreSQL the fan-out and
the acknowledgement of one contact take a transaction-scoped advisory lock, :meth:`lock`, so it
should not either: the sweep is the backstop). Claims never look at ``contact_id``: the claim
path of endpoints without these options is unchanged.

The queries repeat the partial index's condition literally: SQLite only uses a partial index
when the query says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

__all__ = ["DeliveryKeys", "Tail"]

_UNFINISHED = "d.contact_id IS NOT NULL AND d.status IN ('pending', 'failed', 'waiting')"
_LOCK_NAMESPACE = 0x68683134
_SQL = {
    "tails": (
        "SELECT d.contact_id, max(d.id) FROM deliveries d WHERE d.endpoint_id = ?"
        " AND d.contact_id IN ({ids}) AND " + _UNFINISHED + " GROUP BY d.contact_id"
    ),
    "tail_rows": (
        "SELECT d.id, d.contact_id, d.status, d.attempt_count, d.lease_owner, d.created_at,"
        " m.type, coalesce(d.payload, m.payload) FROM deliveries d"
        " JOIN messages m ON m.id = d.message_id WHERE d.id IN ({ids})"
    ),
    "merge": (
        "UPDATE deliveries SET payload = ?, updated_at = ? WHERE id = ? AND attempt_count = 0"
        " AND lease_owner IS NULL AND status IN ('pending', 'waiting')"
    ),
    "promote": (
        "UPDATE deliveries SET status = 'pending', updated_at = ?,"
        " next_attempt_at = CASE WHEN next_attempt_at > ? THEN next_attempt_at ELSE ? END"
        " WHERE status = 'waiting' AND id = (SELECT min(d.id) FROM deliveries d"
        " WHERE d.endpoint_id = ? AND d.contact_id = ? AND " + _UNFINISHED + ")"
    ),
    "sweep": (
        "UPDATE deliveries SET status = 'pending', updated_at = ?,"
        " next_attempt_at = CASE WHEN next_attempt_at > ? THEN next_attempt_at ELSE ? END"
        " WHERE status = 'waiting' AND id IN (SELECT min(d.id) FROM deliveries d"
        " WHERE " + _UNFINISHED + " GROUP BY d.endpoint_id, d.contact_id)"
    ),
}


# The keys in ascending order, each locked in turn (the sorted subquery feeds the aggregate).
_PG_LOCK = (
    "SELECT count(pg_advisory_xact_lock(%s, k)) FROM"
    " (SELECT k FROM unnest(%s::int[]) AS t(k) ORDER BY k) AS sorted_keys"
)


@dataclass(frozen=True, slots=True)
class Tail:
    """The newest unfinished delivery about a contact to an endpoint."""

    id: int
    status: str
    attempt_count: int
    leased: bool
    created_at: float
    event_type: str
    body: str
    """What it would send: its merged body, or its message's payload."""


class DeliveryKeys:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def _sql(self, text_: str) -> str:
        return text_.replace("?", "%s") if self._pg else text_

    def lock(self, keys: Iterable[tuple[int, int]]) -> None:
        """PostgreSQL: hold each (endpoint, contact)'s lock until this transaction ends (in one
        order, so two transactions never wait for each other); SQLite's write lock already is."""
        if not self._pg:
            return
        slots = sorted({hash(key) & 0x7FFFFFFF for key in keys})
        if slots:  # one statement: a round trip per key was most of a recorded batch's time
            self.conn.exec_driver_sql(_PG_LOCK, (_LOCK_NAMESPACE, slots))

    def tails(self, endpoint_id: int, contacts: Sequence[int], *, rows: bool) -> dict[int, Tail]:
        """Each contact's newest unfinished delivery to ``endpoint_id`` (contacts without one
        are left out); with ``rows=False`` only their ids are meaningful."""
        newest: dict[int, int] = {}
        unique = sorted(set(contacts))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            sql = self._sql(_SQL["tails"].format(ids=", ".join("?" * len(chunk))))
            for contact, delivery_id in self.conn.exec_driver_sql(sql, (endpoint_id, *chunk)):
                newest[int(contact)] = int(delivery_id)
        if not rows:
            return {c: Tail(i, "", 0, False, 0.0, "", "") for c, i in newest.items()}
        found: dict[int, Tail] = {}
        ids = list(newest.values())
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = self._sql(_SQL["tail_rows"].format(ids=", ".join("?" * len(chunk))))
            for row in self.conn.exec_driver_sql(sql, tuple(chunk)):
                row_id, contact, status, attempts, owner, created, kind, body = row
                found[int(contact)] = Tail(
                    int(row_id), status, int(attempts), owner is not None, created, kind, body
                )
        return found

    def merge(self, delivery_id: int, body: bytes, now: float) -> bool:
        """Make a never-attempted, unleased delivery send ``body``; False if it no longer is
        one (a worker took it meanwhile)."""
        result = self.conn.exec_driver_sql(
            self._sql(_SQL["merge"]), (body.decode(), now, delivery_id)
        )
        return bool(result.rowcount)

    def promote(self, finished: Iterable[tuple[int, int]], now: float) -> None:
        """After these (endpoint, contact) deliveries finished: each group's oldest unfinished
        delivery, if it is waiting, becomes pending (due now, or when its hold ends)."""
        params = [(now, now, now, endpoint_id, contact) for endpoint_id, contact in finished]
        if params:
            self.conn.exec_driver_sql(self._sql(_SQL["promote"]), params)

    def sweep(self, now: float) -> int:
        """Promote every group whose oldest unfinished delivery is waiting (the backstop)."""
        result = self.conn.exec_driver_sql(self._sql(_SQL["sweep"]), (now, now, now))
        return int(result.rowcount or 0)
