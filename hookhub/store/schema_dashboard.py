"""The dashboard's tables: the people who sign in and their sessions.

Only an Argon2 hash of a password and a SHA-256 of a session token are stored, never either
secret itself. Re-exported by ``schema.py`` like the other table groups.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, String, Table, false

from hookhub.store.schema_base import BigId, UTCDateTime, metadata

dashboard_users = Table(
    "dashboard_users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    # admin or viewer (hookhub.users.Role)
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    sqlite_autoincrement=True,
)

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column(
        "user_id",
        BigInteger,
        ForeignKey("dashboard_users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

Index("ix_dashboard_sessions_user_id", dashboard_sessions.c.user_id)
Index("ix_dashboard_sessions_expires_at", dashboard_sessions.c.expires_at)
