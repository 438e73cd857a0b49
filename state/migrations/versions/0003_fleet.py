"""Fleet mode: `runs.offered_at`, set when the orchestrator offers an agent node's run to that
node's `courier runner` (the lease columns were in 0001 already).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain ALTER (no batch rebuild of `runs` on SQLite: other tables refer to it; see 0002).
    op.add_column("runs", sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE runs DROP COLUMN offered_at")
    else:
        op.drop_column("runs", "offered_at")
