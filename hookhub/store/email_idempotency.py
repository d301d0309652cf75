"""The stored answers of ``POST /emails`` with an ``Idempotency-Key``: the first answer is kept
for :data:`IDEMPOTENCY_WINDOW` and given again to a retry with the same body.

This module must never touch the emails themselves, and never commit: an answer is stored in
the transaction that queued its emails, so both are kept or neither.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from hookhub.store.schema_email import email_idempotency

IDEMPOTENCY_WINDOW = 24 * 3600.0


class EmailIdempotency:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def idempotent_answer(self, scope: str, key: str, since: float) -> tuple[str, str] | None:
        """(request hash, answer) stored for ``key`` of ``scope`` since ``since``, locked for
        this transaction on PostgreSQL."""
        query = select(email_idempotency.c.request_hash, email_idempotency.c.response).where(
            email_idempotency.c.scope == scope,
            email_idempotency.c.key == key,
            email_idempotency.c.created_at >= since,
        )
        row = self.conn.execute(query).first()
        return (row.request_hash, row.response) if row else None

    def remember_answer(
        self, scope: str, key: str, request_hash: str, response: str, now: float
    ) -> bool:
        """Keep an answer for ``key`` (replacing one older than 24 h); False when another
        request stored one first (a race: the caller answers that one)."""
        module = postgresql if self._pg else sqlite
        self.conn.execute(
            delete(email_idempotency).where(
                email_idempotency.c.scope == scope,
                email_idempotency.c.key == key,
                email_idempotency.c.created_at < now - IDEMPOTENCY_WINDOW,
            )
        )
        statement = (
            module.insert(email_idempotency)
            .values(
                scope=scope, key=key, request_hash=request_hash, response=response, created_at=now
            )
            .on_conflict_do_nothing(index_elements=["scope", "key"])
        )
        return bool(self.conn.execute(statement).rowcount)

    def delete_older(self, *, cutoff: float, limit: int, dry_run: bool = False) -> int:
        """Forget up to ``limit`` answers stored before ``cutoff`` (retention, in batches);
        with ``dry_run``, count them instead."""
        oldest = (
            select(email_idempotency.c.scope, email_idempotency.c.key)
            .where(email_idempotency.c.created_at < cutoff)
            .order_by(email_idempotency.c.created_at)
            .limit(limit)
        )
        if dry_run:
            counted = select(func.count()).select_from(oldest.subquery())
            return int(self.conn.execute(counted).scalar_one())
        key = tuple_(email_idempotency.c.scope, email_idempotency.c.key)
        return int(self.conn.execute(delete(email_idempotency).where(key.in_(oldest))).rowcount)
