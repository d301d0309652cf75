"""automations: definitions, enrollments and their step log; endpoints owned by an automation

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 14:00:00

An enrollment is one contact's run through one automation; active ones carry the time they are
next due (a partial index keeps the claim query on active rows only). ``endpoints`` gains
``automation_id``/``automation_step``: the hidden endpoint an automation's ``webhook`` step
posts to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status = 'active'"


def _id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def upgrade() -> None:
    op.create_table(
        "automations",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("filter", sa.Text(), nullable=True),
        sa.Column("reentry", sa.String(16), nullable=False),
        sa.Column("exit_on_unsubscribe", sa.Boolean(), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_automations"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "automation_enrollments",
        _id(),
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step_id", sa.String(64), nullable=True),
        sa.Column("step_started_at", sa.Double(), nullable=True),
        sa.Column("waiting_for", sa.String(255), nullable=True),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("entry_key", sa.String(64), nullable=True),
        sa.Column("exit_reason", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("entered_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["automation_id"],
            ["automations.id"],
            name="fk_automation_enrollments_automation_id_automations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_automation_enrollments"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_automation_enrollments_due",
        "automation_enrollments",
        ["due_at"],
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )
    op.create_index(
        "ix_automation_enrollments_contact",
        "automation_enrollments",
        ["contact_id", "automation_id"],
    )
    op.create_index(
        "ix_automation_enrollments_automation",
        "automation_enrollments",
        ["automation_id", "status", "step_id"],
    )
    op.create_index(
        "ix_automation_enrollments_finished",
        "automation_enrollments",
        ["finished_at"],
        sqlite_where=sa.text("finished_at IS NOT NULL"),
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )
    op.create_index(
        "uq_automation_enrollments_entry_key",
        "automation_enrollments",
        ["automation_id", "contact_id", "entry_key"],
        unique=True,
        sqlite_where=sa.text("entry_key IS NOT NULL"),
        postgresql_where=sa.text("entry_key IS NOT NULL"),
    )
    op.create_table(
        "automation_step_log",
        _id(),
        sa.Column("enrollment_id", sa.BigInteger(), nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["automation_enrollments.id"],
            name="fk_automation_step_log_enrollment_id_automation_enrollments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_automation_step_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_automation_step_log_enrollment", "automation_step_log", ["enrollment_id"])
    op.create_index(
        "ix_automation_step_log_counts",
        "automation_step_log",
        ["automation_id", "step_id", "outcome"],
    )
    # Bumped by every change to an automation: each process drops its compiled programs.
    op.execute("INSERT INTO config_versions (kind, version) VALUES ('automations', 0)")
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("automation_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("automation_step", sa.String(64), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM config_versions WHERE kind = 'automations'")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("automation_step")
        batch.drop_column("automation_id")
    op.drop_table("automation_step_log")
    op.drop_table("automation_enrollments")
    op.drop_table("automations")
