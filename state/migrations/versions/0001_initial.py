"""Initial state schema: jobs, versions, instances, runs, steps, attempts, evidence, nodes,
saved lists and filters, the apply journal and meta (with the state serial at 0).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("origin_path", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("modified_at", utc(), nullable=False),
        sa.Column("next_execution_time", utc(), nullable=True),
        sa.Column("execution_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("name", name="uq_jobs_name"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])

    op.create_table(
        "job_versions",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("source_path", sa.String(), nullable=True),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("blob_id", sa.String(64), nullable=True),
        sa.Column("applied_at", utc(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_versions_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", "version", name="pk_job_versions"),
    )

    op.create_table(
        "instances",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("job_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scheduled_for", utc(), nullable=False),
        sa.Column("instance_type", sa.String(32), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_instances_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
        sa.UniqueConstraint("job_id", "scheduled_for", name="uq_instances_job_id_scheduled_for"),
    )
    op.create_index("ix_instances_status", "instances", ["status"])
    op.create_index("ix_instances_created_at", "instances", ["created_at"])
    op.create_index("ix_instances_job_id_created_at", "instances", ["job_id", "created_at"])

    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("group_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_time", utc(), nullable=True),
        sa.Column("last_update_time", utc(), nullable=True),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name="fk_runs_instance_id_instances"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_instance_id", "runs", ["instance_id"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_node_id_status", "runs", ["node_id", "status"])

    op.create_table(
        "steps",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("num_attempts", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("interpreter_path", sa.String(), nullable=True),
        sa.Column("interpreter_version", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_steps_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "step_number", name="pk_steps"),
    )

    op.create_table(
        "attempts",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", utc(), nullable=True),
        sa.Column("ended_at", utc(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("evidence_key", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id", "step_number"],
            ["steps.run_id", "steps.step_number"],
            name="fk_attempts_run_id_step_number_steps",
        ),
        sa.PrimaryKeyConstraint("run_id", "step_number", "attempt_no", name="pk_attempts"),
    )

    op.create_table(
        "evidence",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("store_key", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id", "step_number", "attempt_no"],
            ["attempts.run_id", "attempts.step_number", "attempts.attempt_no"],
            name="fk_evidence_run_id_step_number_attempt_no_attempts",
        ),
        sa.PrimaryKeyConstraint("run_id", "step_number", "attempt_no", name="pk_evidence"),
    )

    op.create_table(
        "nodes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("enrolled_at", utc(), nullable=False),
        sa.Column("last_seen_at", utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
    )

    op.create_table(
        "saved_lists",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("node_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_saved_lists"),
    )

    op.create_table(
        "saved_filters",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("constraints", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_saved_filters"),
    )

    op.create_table(
        "apply_journal",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", utc(), nullable=False),
        sa.Column("finished_at", utc(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("creates", sa.Integer(), nullable=False),
        sa.Column("updates", sa.Integer(), nullable=False),
        sa.Column("cancels", sa.Integer(), nullable=False),
        sa.Column("noops", sa.Integer(), nullable=False),
        sa.Column("drifts", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apply_journal"),
    )

    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.bulk_insert(meta, [{"key": "serial", "value": "0"}])


def downgrade() -> None:
    for name in (
        "meta",
        "apply_journal",
        "saved_filters",
        "saved_lists",
        "nodes",
        "evidence",
        "attempts",
        "steps",
        "runs",
        "instances",
        "job_versions",
        "jobs",
    ):
        op.drop_table(name)
