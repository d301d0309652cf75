"""inbound receive hardening

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:00:00

A slot in the migration chain reserved while several changes were in progress; it is filled in
by the change named above (or removed, with the chain relinked, if that change needs none).
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
