"""The SQL of erasing a contact's personal data (``hookhub.crm.erasure``).

Messages have no contact column: the ones about a contact are found by the ``"contact_id":<id>``
their JSON body holds (bodies are written compactly, once, by ``build_message``), scanned in
message-id order a page at a time, so that each page is a short transaction of its own. Never
called outside the erasure service: every statement here destroys data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    LargeBinary,
    String,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.sql import ColumnElement

from hookhub.core import jsoncodec
from hookhub.store.schema import custom_events, deliveries, inbound_requests, messages
from hookhub.store.schema_automation import automation_enrollments as enrollments
from hookhub.store.schema_email import emails

NOT_SENT = ("pending", "failed", "waiting")
"""Delivery statuses that would still be attempted (waiting: behind the contact's earlier one)."""
CANCELLED = "cancelled"


def _mentions(column: Any, contact_id: int) -> Any:
    """``column`` (JSON text) holds ``"contact_id":<contact_id>`` as a whole value."""
    key = f'%"contact_id":{contact_id}'
    return or_(column.like(key + ",%"), column.like(key + "}%"))


class ErasureStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- messages and their deliveries -------------------------------------------------------

    def messages_about(
        self, contact_id: int, *, after: str = "", since: float | None = None, limit: int
    ) -> list[tuple[str, str]]:
        """(id, payload) of messages about the contact with ids after ``after`` (and, with
        ``since``, created since then), in id order, not yet erased."""
        query = (
            select(messages.c.id, messages.c.payload)
            .where(
                messages.c.id > after,
                _mentions(messages.c.payload, contact_id),
                messages.c.payload.not_like('%"erased":true%'),
            )
            .order_by(messages.c.id)
            .limit(limit)
        )
        if since is not None:
            query = query.where(messages.c.created_at >= datetime.fromtimestamp(since, UTC))
        return [(str(r.id), str(r.payload)) for r in self.conn.execute(query)]

    def erase_messages(self, contact_id: int, rows: list[tuple[str, str]]) -> tuple[int, int]:
        """Rewrite each payload's data to ``{"contact_id", "erased": true}`` and cancel its
        deliveries not sent yet (their rendered bodies dropped too); answers (messages,
        deliveries cancelled)."""
        if not rows:
            return 0, 0
        data = {"contact_id": contact_id, "erased": True}
        updates = []
        for message_id, payload in rows:
            body = jsoncodec.loads(payload)
            if isinstance(body, dict):
                body["data"] = data
            else:  # not a message body this code writes: keep nothing of it
                body = {"data": data}
            updates.append({"mid": message_id, "new_payload": jsoncodec.dumps(body).decode()})
        self.conn.execute(
            update(messages)
            .where(messages.c.id == bindparam("mid"))
            .values(payload=bindparam("new_payload")),
            updates,
        )
        ids = [m for m, _ in rows]
        cancelled = self.conn.execute(
            update(deliveries)
            .where(deliveries.c.message_id.in_(ids), deliveries.c.status.in_(NOT_SENT))
            .values(
                status=CANCELLED, next_attempt_at=None, lease_owner=None, body=None, payload=None
            )
        ).rowcount
        self.conn.execute(
            update(deliveries)
            .where(
                deliveries.c.message_id.in_(ids),
                or_(deliveries.c.body.is_not(None), deliveries.c.payload.is_not(None)),
            )
            .values(body=None, payload=None)
        )
        return len(rows), int(cancelled or 0)

    # -- the rest, in the transaction that deletes the contact -------------------------------

    def erase_emails(self, contact_id: int, address: str) -> int:
        """Blank the emails to the contact (rows kept for counts); unsent ones are skipped."""
        mine = or_(emails.c.contact_id == contact_id, emails.c.to_email == address)
        self.conn.execute(
            update(emails)
            .where(mine, emails.c.status.in_(("queued", "deferred")))
            .values(status="skipped", status_reason="erased")
        )
        changed = self.conn.execute(
            update(emails)
            .where(mine)
            .values(
                to_email="",
                to_name=None,
                subject=None,
                content=None,
                raw=None,
                params="{}",
                headers="{}",
            )
        ).rowcount
        return int(changed or 0)

    def erase_inbound_requests(self, contact_id: int, address: str) -> int:
        """Drop the body (and what the rules did) of inbound requests that touched the
        contact (their ``actions`` name its id) or whose body contains its email."""
        email = address.encode()
        named: ColumnElement[bool]
        if self.conn.dialect.name == "postgresql":
            # bytea LIKE bytea: an operator SQLAlchemy does not offer on LargeBinary
            named = type_coerce(inbound_requests.c.body, String).like(
                literal(b"%" + email + b"%", LargeBinary)
            )
        else:  # SQLite's LIKE never matches a blob; instr() searches its bytes
            named = func.instr(inbound_requests.c.body, literal(email, LargeBinary)) > 0
        changed = self.conn.execute(
            update(inbound_requests)
            .where(
                inbound_requests.c.body.is_not(None),
                or_(_mentions(inbound_requests.c.actions, contact_id), named),
            )
            .values(body=None, actions=None, error=None)
        ).rowcount
        return int(changed or 0)

    def delete_events(self, contact_id: int) -> int:
        gone = self.conn.execute(
            delete(custom_events).where(custom_events.c.contact_id == contact_id)
        ).rowcount
        return int(gone or 0)

    def forget_enrollment_triggers(self, contact_id: int) -> int:
        """Enrollments keep their rows (for the automation's counts), not what started them."""
        changed = self.conn.execute(
            update(enrollments).where(enrollments.c.contact_id == contact_id).values(trigger="{}")
        ).rowcount
        return int(changed or 0)
