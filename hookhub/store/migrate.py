"""Bring a database to the newest schema (``hookhub migrate``, and every start of serve/api/worker).

Several processes may start at once against PostgreSQL: an advisory lock makes them take turns,
and each finds the work already done by the first.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from hookhub.store.database import Database

_LOCK_ID = 0x686F6F6B  # "hook"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def migrate(db: Database, revision: str = "head") -> None:
    config = alembic_config()
    with db.write() as conn:
        if db.backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
