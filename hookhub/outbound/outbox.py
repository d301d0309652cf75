"""The transactional outbox: notifications are written in the transaction that caused them.

A service changing state calls :meth:`OutboxWriter.emit` on the same connection; the message
(its final body, serialized once) commits or rolls back with the change. What happens after the
commit (waking delivery workers, counting metrics) is a listener of :class:`Outbox`.

Never emit outside a write transaction, and never build a body twice: the stored bytes are the
bytes signed and sent.

Every body carries ``origin``: what caused the message (``hookhub.core.origin``), or ``null``
when nothing known did (an operator's CLI command, an operational event). A writer is given its
origin by the entry point that makes it; writers made without one take the API request's
(:data:`request_origin`, set where the API key is checked), so every message a request causes,
including those that automation triggers write in its transaction, shares one origin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from hookhub import ids
from hookhub.core import jsoncodec
from hookhub.core.catalog import CATALOG
from hookhub.core.origin import Origin
from hookhub.store.database import after_commit
from hookhub.store.messages import MessageStore

CommitListener = Callable[[Counter[str]], None]
"""Called after a commit with the number of messages written per type."""
Fanout = Callable[[Connection, list["OutboxMessage"], dict[str, Any], dict[str, Any]], None]
"""Runs in the writing transaction for each batch, with two dicts: the writer's own scratch
space, and facts read from the database that writers of one transaction may share (see
:meth:`Outbox.writer`)."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: str
    type: str
    payload: bytes
    created_at: datetime
    about_endpoint: int | None = None
    """For operational events: the endpoint they are about, which never receives them."""
    origin: Origin | None = None
    """What caused it, as in the body (kept here so fan-out needs no parsing)."""


request_origin: ContextVar[Origin | None] = ContextVar("hookhub_request_origin", default=None)
"""The origin of the API request being served (None outside one)."""

_NO_ORIGIN = b',"origin":null}'


def build_message(
    event_type: str,
    data: dict[str, Any],
    occurred_at: datetime,
    *,
    about_endpoint: int | None = None,
    origin: Origin | None = None,
) -> OutboxMessage:
    if event_type not in CATALOG:
        raise ValueError(f"{event_type!r} is not in the event catalog")
    body = {
        "type": event_type,
        "timestamp": jsoncodec.isoformat(occurred_at),
        "data": data,
        "origin": None if origin is None else origin.to_json(),
    }
    return OutboxMessage(
        id=ids.message_id(occurred_at.timestamp()),
        type=event_type,
        payload=jsoncodec.dumps(body),
        created_at=occurred_at,
        about_endpoint=about_endpoint,
        origin=origin,
    )


def with_origin(message: OutboxMessage, origin: Origin) -> OutboxMessage:
    """``message`` (built without an origin) caused by ``origin``: its body's trailing
    ``"origin":null`` replaced, so the body is not serialized again."""
    payload = message.payload
    if message.origin is not None or not payload.endswith(_NO_ORIGIN):
        return message
    stamped = payload[: -len(_NO_ORIGIN)] + b',"origin":' + jsoncodec.dumps(origin.to_json()) + b"}"
    return replace(message, payload=stamped, origin=origin)


class Outbox:
    """Process-wide: hands out per-transaction writers and tells listeners about commits."""

    def __init__(self) -> None:
        self._listeners: list[CommitListener] = []
        self._fanouts: list[Fanout] = []

    def add_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def add_fanout(self, fanout: Fanout) -> None:
        """Register a step that runs in the writing transaction for every batch of messages."""
        self._fanouts.append(fanout)

    def writer(
        self,
        conn: Connection,
        facts: dict[str, Any] | None = None,
        *,
        origin: Origin | None = None,
    ) -> OutboxWriter:
        """A writer for the transaction of ``conn``.

        ``facts`` lets several writers in one transaction (one per request, each in its own
        savepoint) read what they all need, such as the endpoints' subscriptions, once.
        ``origin`` is what causes its messages (default: the API request's, if any).
        """
        return OutboxWriter(
            self, conn, facts, origin=origin if origin is not None else request_origin.get()
        )

    def committed(self, counts: Counter[str] | None = None) -> None:
        """Tell listeners that a transaction with messages or due deliveries committed."""
        counts = counts if counts is not None else Counter()
        for listener in self._listeners:
            listener(counts)


class OutboxWriter:
    def __init__(
        self,
        outbox: Outbox,
        conn: Connection,
        facts: dict[str, Any] | None = None,
        *,
        origin: Origin | None = None,
    ) -> None:
        self._outbox = outbox
        self.origin = origin
        self._conn = conn
        self._store = MessageStore(conn)
        self._counts: Counter[str] = Counter()
        self._scratch: dict[str, Any] = {}
        self._facts: dict[str, Any] = facts if facts is not None else {}
        self.written: list[OutboxMessage] = []

    def emit(
        self,
        event_type: str,
        data: dict[str, Any],
        occurred_at: datetime,
        *,
        about_endpoint: int | None = None,
    ) -> OutboxMessage:
        message = build_message(
            event_type, data, occurred_at, about_endpoint=about_endpoint, origin=self.origin
        )
        self.write([message])
        return message

    def write(self, batch: list[OutboxMessage]) -> None:
        """Store messages and fan them out to the endpoints subscribed to them.

        Messages built without an origin get the writer's."""
        if not batch:
            return
        origin = self.origin
        if origin is not None:
            batch = [m if m.origin is not None else with_origin(m, origin) for m in batch]
        self._store.insert_many(
            [
                {
                    "id": m.id,
                    "type": m.type,
                    "payload": m.payload.decode(),
                    "created_at": m.created_at,
                }
                for m in batch
            ]
        )
        for step in self._outbox._fanouts:
            step(self._conn, batch, self._scratch, self._facts)
        self._written(batch)

    def write_test_send(self, message: OutboxMessage) -> None:
        """Store the message of a test send: no fan-out (the caller queues its one delivery),
        and marked, so that recovering another endpoint never backfills it there."""
        if self.origin is not None:
            message = with_origin(message, self.origin)
        self._store.insert_many(
            [
                {
                    "id": message.id,
                    "type": message.type,
                    "payload": message.payload.decode(),
                    "created_at": message.created_at,
                    "is_test": True,
                }
            ]
        )
        self._written([message])

    def _written(self, batch: list[OutboxMessage]) -> None:
        if not self._counts:
            after_commit(self._conn, lambda: self._outbox.committed(self._counts))
        self._counts.update(m.type for m in batch)
        self.written.extend(batch)
