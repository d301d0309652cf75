"""Alembic migrations, on each backend, build exactly the schema ``hookhub.store.schema``
declares: autogenerate's comparison finds nothing to do."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from hookhub.store.database import Database
from hookhub.store.migrate import alembic_config, migrate
from hookhub.store.schema import metadata


def test_migrations_produce_exactly_the_declared_schema(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate(db)
        with db.read() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": True}
            )
            differences = compare_metadata(context, metadata)
            tables = set(inspect(conn).get_table_names())
        assert differences == []
        assert set(metadata.tables) <= tables
    finally:
        db.dispose()


def test_migrating_again_is_a_no_op_at_head(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate(db)
        migrate(db)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with db.read() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
    finally:
        db.dispose()
