"""Queries on dashboard sign-in sessions. Only a SHA-256 of each session token is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, delete, insert, select, update

from hookhub.store.schema_dashboard import dashboard_sessions, dashboard_users


class SessionStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(
        self, *, token_hash: str, user_id: int, csrf_token: str, now: datetime, expires: datetime
    ) -> int:
        statement = (
            insert(dashboard_sessions)
            .values(
                token_hash=token_hash,
                user_id=user_id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=expires,
                last_seen_at=now,
            )
            .returning(dashboard_sessions.c.id)
        )
        return int(self.conn.execute(statement).scalar_one())

    def find_active(self, token_hash: str, now: datetime) -> Row[Any] | None:
        """The session and its user, when the session has not expired and the user is enabled."""
        query = (
            select(
                dashboard_sessions.c.id.label("session_id"),
                dashboard_sessions.c.csrf_token,
                dashboard_sessions.c.expires_at,
                dashboard_sessions.c.last_seen_at,
                dashboard_users.c.id.label("user_id"),
                dashboard_users.c.email,
                dashboard_users.c.role,
            )
            .join(dashboard_users, dashboard_users.c.id == dashboard_sessions.c.user_id)
            .where(
                dashboard_sessions.c.token_hash == token_hash,
                dashboard_sessions.c.expires_at > now,
                dashboard_users.c.disabled.is_(False),
            )
        )
        return cast("Row[Any] | None", self.conn.execute(query).first())

    def touch(self, session_id: int, now: datetime) -> None:
        self.conn.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.id == session_id)
            .values(last_seen_at=now)
        )

    def delete(self, token_hash: str) -> bool:
        result = self.conn.execute(
            delete(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash)
        )
        return bool(result.rowcount)

    def delete_expired(self, now: datetime) -> int:
        result = self.conn.execute(
            delete(dashboard_sessions).where(dashboard_sessions.c.expires_at <= now)
        )
        return int(result.rowcount)
