"""Execution records: a run's reason and its position among its instance's runs, an attempt's
reason, and step inputs/outputs kept as the JSON text the executor wrote (they were JSON columns,
which re-serialize, and on SQLite have numeric affinity).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import TypeEngine

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

STEP_TEXTS = ("inputs", "outputs")


def upgrade() -> None:
    # Plain ALTERs only: a batch rebuild of `runs` or `steps` on SQLite would drop a table that
    # others refer to, which fails the foreign key check at commit once they hold rows.
    op.add_column("runs", sa.Column("position", sa.Integer(), server_default="0", nullable=False))
    op.add_column("runs", sa.Column("reason", sa.String(), nullable=True))
    op.drop_index("ix_runs_instance_id", table_name="runs")
    op.create_index(
        "ix_runs_instance_id_group_number_position",
        "runs",
        ["instance_id", "group_number", "position"],
    )
    op.add_column("attempts", sa.Column("reason", sa.String(), nullable=True))
    for column in STEP_TEXTS:
        _retype_step_column(column, sa.JSON(), sa.Text())


def downgrade() -> None:
    for column in STEP_TEXTS:
        _retype_step_column(column, sa.Text(), sa.JSON())
    _drop_column("attempts", "reason")
    op.drop_index("ix_runs_instance_id_group_number_position", table_name="runs")
    op.create_index("ix_runs_instance_id", "runs", ["instance_id"])
    _drop_column("runs", "reason")
    _drop_column("runs", "position")


def _retype_step_column(column: str, old: TypeEngine[Any], new: TypeEngine[Any]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        target = "text" if isinstance(new, sa.Text) else "json"
        op.alter_column(
            "steps",
            column,
            existing_type=old,
            type_=new,
            existing_nullable=True,
            postgresql_using=f"{column}::{target}",
        )
        return
    # SQLite (3.35+) adds, copies, drops and renames in place; the JSON was stored as text.
    scratch = f"{column}_retyped"
    op.add_column("steps", sa.Column(scratch, new, nullable=True))
    steps = sa.table("steps", sa.column(column), sa.column(scratch))
    op.execute(steps.update().values({scratch: steps.c[column]}))
    op.execute(f"ALTER TABLE steps DROP COLUMN {column}")
    op.execute(f"ALTER TABLE steps RENAME COLUMN {scratch} TO {column}")


def _drop_column(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)
