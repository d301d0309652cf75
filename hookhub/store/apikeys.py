"""Queries on API keys. Only a SHA-256 of each key is stored, never the key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from hookhub.store.config_versions import ConfigKind, bump
from hookhub.store.schema import api_keys


class ApiKeyStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, *, name: str, prefix: str, key_hash: str, scope: str, now: datetime) -> int:
        statement = (
            insert(api_keys)
            .values(name=name, prefix=prefix, key_hash=key_hash, scope=scope, created_at=now)
            .returning(api_keys.c.id)
        )
        key_id = int(self.conn.execute(statement).scalar_one())
        bump(self.conn, ConfigKind.API_KEYS)
        return key_id

    def find_active(self, key_hash: str) -> Row[Any] | None:
        query = select(api_keys).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )
        return self.conn.execute(query).first()

    def find(self, key_hash: str) -> Row[Any] | None:
        return self.conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()

    def all(self) -> list[Row[Any]]:
        return list(self.conn.execute(select(api_keys).order_by(api_keys.c.id)))

    def count_active(self) -> int:
        query = select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None))
        return len(self.conn.execute(query).all())

    def revoke(self, key_id: int, now: datetime) -> bool:
        result = self.conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if not result.rowcount:
            return False
        bump(self.conn, ConfigKind.API_KEYS)
        return True
