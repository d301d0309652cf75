"""Entry point to the contacts core for the API, the CLI and inbound rules.

``transaction()`` gives a :class:`CrmTx` bound to one write transaction; ``reader()`` one bound
to a read-only transaction (emitting from it is a bug and fails).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from hookhub.core.origin import Origin
from hookhub.crm.operations import CrmTx
from hookhub.outbound.outbox import Outbox
from hookhub.store.database import Database

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class CrmService:
    def __init__(self, db: Database, outbox: Outbox, clock: Clock = utcnow) -> None:
        self.db = db
        self.outbox = outbox
        self.clock = clock

    @contextlib.contextmanager
    def transaction(self, origin: Origin | None = None) -> Iterator[CrmTx]:
        """``origin``: what causes its messages (default: the API request's, if any)."""
        with self.db.write() as conn:
            yield CrmTx(conn, self.outbox.writer(conn, origin=origin), self.clock())

    @contextlib.contextmanager
    def reader(self) -> Iterator[CrmTx]:
        with self.db.read() as conn:
            yield CrmTx(conn, self.outbox.writer(conn), self.clock())
