"""API key scopes, secrets at rest, configuration versions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:00:00

Keys made before scopes keep what they could do (``admin``). Every stored secret is sealed with
the configured secret key; a rotation's previous secret moves into ``previous_secrets``. Plain
``add_column`` only: SQLite would rebuild ``endpoints`` otherwise, and a rebuild cascades.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hookhub.core import jsoncodec
from hookhub.errors import SecretKeyError
from hookhub.store.secrets import SEALED_COLUMNS, box_of, reseal_all

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("api_keys", "endpoints", "inbound_webhooks")


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("scope", sa.String(length=16), server_default=sa.text("'admin'"), nullable=False),
    )
    op.add_column("endpoints", sa.Column("previous_secrets", sa.Text(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # A sealed secret is longer than the 128 characters the plaintext was given. SQLite does
        # not enforce lengths (and would rebuild the table to change the type).
        op.alter_column("endpoints", "secret", type_=sa.Text(), existing_nullable=False)
    versions = op.create_table(
        "config_versions",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_config_versions")),
    )
    op.bulk_insert(versions, [{"kind": kind, "version": 0} for kind in KINDS])
    _move_previous_secrets(bind)
    _seal_existing(bind)


def _move_previous_secrets(bind: sa.Connection) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT id, previous_secret, previous_secret_until FROM endpoints"
            " WHERE previous_secret IS NOT NULL"
        )
    ).all()
    for row_id, secret, until in rows:
        previous = jsoncodec.dumps([[secret, float(until or 0)]]).decode()
        bind.execute(
            sa.text(
                "UPDATE endpoints SET previous_secrets = :previous, previous_secret = NULL,"
                " previous_secret_until = NULL WHERE id = :id"
            ),
            {"previous": previous, "id": row_id},
        )


def _seal_existing(bind: sa.Connection) -> None:
    pending = 0
    for sealed in SEALED_COLUMNS:
        pending += bind.execute(
            sa.text(f"SELECT count(*) FROM {sealed.table} WHERE {sealed.column} IS NOT NULL")
        ).scalar_one()
    if not pending:
        return
    box = box_of(bind.dialect)
    if box is None:
        raise SecretKeyError(
            "Stored secrets must be encrypted by this upgrade: set HOOKHUB_SECRET_KEY."
        )
    reseal_all(bind, box.keyring)


def downgrade() -> None:
    bind = op.get_bind()
    box = box_of(bind.dialect)
    for sealed in SEALED_COLUMNS:
        if sealed.column == "previous_secrets":
            continue
        rows = bind.execute(
            sa.text(
                f"SELECT id, {sealed.column} FROM {sealed.table} WHERE {sealed.column} LIKE 'enc:%'"
            )
        ).all()
        if rows and box is None:
            raise SecretKeyError("Opening the stored secrets needs HOOKHUB_SECRET_KEY.")
        for row_id, value in rows:
            assert box is not None
            bind.execute(
                sa.text(f"UPDATE {sealed.table} SET {sealed.column} = :value WHERE id = :id"),
                {"value": box.keyring.open(value, sealed.purpose), "id": row_id},
            )
    op.drop_table("config_versions")
    op.drop_column("endpoints", "previous_secrets")
    op.drop_column("api_keys", "scope")
