"""Queries on dashboard users (``dashboard_users``). Only Argon2 hashes, never passwords."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from hookhub.store.schema_dashboard import dashboard_sessions, dashboard_users


class UserStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, *, email: str, password_hash: str, role: str, now: datetime) -> int:
        statement = (
            insert(dashboard_users)
            .values(email=email, password_hash=password_hash, role=role, created_at=now)
            .returning(dashboard_users.c.id)
        )
        return int(self.conn.execute(statement).scalar_one())

    def find_by_email(self, email: str) -> Row[Any] | None:
        query = select(dashboard_users).where(dashboard_users.c.email == email)
        return self.conn.execute(query).first()

    def find(self, user_id: int) -> Row[Any] | None:
        query = select(dashboard_users).where(dashboard_users.c.id == user_id)
        return self.conn.execute(query).first()

    def all(self) -> list[Row[Any]]:
        return list(self.conn.execute(select(dashboard_users).order_by(dashboard_users.c.id)))

    def count_active(self, role: str | None = None) -> int:
        query = select(func.count()).select_from(dashboard_users).where(
            dashboard_users.c.disabled.is_(False)
        )
        if role is not None:
            query = query.where(dashboard_users.c.role == role)
        return int(self.conn.execute(query).scalar_one())

    def set_disabled(self, user_id: int, disabled: bool) -> bool:
        """Disabling also ends every session of the user."""
        result = self.conn.execute(
            update(dashboard_users)
            .where(dashboard_users.c.id == user_id)
            .values(disabled=disabled)
        )
        if disabled:
            self.conn.execute(
                dashboard_sessions.delete().where(dashboard_sessions.c.user_id == user_id)
            )
        return bool(result.rowcount)

    def set_role(self, user_id: int, role: str) -> bool:
        result = self.conn.execute(
            update(dashboard_users).where(dashboard_users.c.id == user_id).values(role=role)
        )
        return bool(result.rowcount)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self.conn.execute(
            update(dashboard_users)
            .where(dashboard_users.c.id == user_id)
            .values(password_hash=password_hash)
        )
