"""The state schema as sqlmodel tables (DESIGN.md §1, §5). Rows never leave `state/`.

Every timestamp is `UtcDateTime` (aware UTC in, aware UTC out); statuses are the StrEnums of
`reconciler.model.enums` stored as text. The migrations (`migrations/versions/`) create exactly
this schema; a test compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus, StepStatus
from state.types import EnumText, UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

SERIAL_KEY = "serial"


class Base(SQLModel, registry=registry(metadata=metadata)):
    """Our own metadata, so nothing else registered on SQLModel's global one leaks in."""


class JobRow(Base, table=True):
    __tablename__ = "jobs"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(unique=True)
    status: JobStatus = Field(sa_type=EnumText(JobStatus), index=True)
    managed: bool
    origin_path: str | None = None
    version: int
    spec_hash: str = Field(max_length=64)
    blob_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime(), index=True)
    modified_at: datetime = Field(sa_type=UtcDateTime())
    next_execution_time: datetime | None = Field(default=None, sa_type=UtcDateTime())
    execution_count: int = 0


class JobVersionRow(Base, table=True):
    __tablename__ = "job_versions"
    __table_args__ = (PrimaryKeyConstraint("job_id", "version"),)

    job_id: str = Field(foreign_key="jobs.id", max_length=36)
    version: int
    spec: str = Field(sa_type=Text)  # canonical JSON (sorted keys), parsed with orjson
    hash: str = Field(max_length=64)
    source_path: str | None = None
    git_commit: str | None = Field(default=None, max_length=64)
    blob_id: str | None = Field(default=None, max_length=64)
    applied_at: datetime = Field(sa_type=UtcDateTime())


class InstanceRow(Base, table=True):
    __tablename__ = "instances"
    __table_args__ = (
        # A scheduler may race itself or a crash may make it retry: one occurrence, one instance.
        UniqueConstraint("job_id", "scheduled_for"),
        Index("ix_instances_job_id_created_at", "job_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    job_id: str = Field(foreign_key="jobs.id", max_length=36)
    job_version: int
    status: InstanceStatus = Field(sa_type=EnumText(InstanceStatus), index=True)
    scheduled_for: datetime = Field(sa_type=UtcDateTime())
    instance_type: str = Field(default="scheduled", max_length=32)
    created_at: datetime = Field(sa_type=UtcDateTime(), index=True)
    updated_at: datetime = Field(sa_type=UtcDateTime())


class RunRow(Base, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_node_id_status", "node_id", "status"),
        Index(
            "ix_runs_instance_id_group_number_position", "instance_id", "group_number", "position"
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    instance_id: str = Field(foreign_key="instances.id", max_length=36)
    # Not a foreign key: the implicit `local` node and nodes.yaml nodes need no enrolment row.
    node_id: str
    group_number: int
    # The run's place in the instance as targeting resolved it (node order within its group).
    position: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    status: RunStatus = Field(sa_type=EnumText(RunStatus), index=True)
    received_time: datetime | None = Field(default=None, sa_type=UtcDateTime())
    last_update_time: datetime | None = Field(default=None, sa_type=UtcDateTime())
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    reason: str | None = None
    # Fleet mode (migration 0003): when the orchestrator offered the run to its node's runner.
    offered_at: datetime | None = Field(default=None, sa_type=UtcDateTime())


class StepRow(Base, table=True):
    __tablename__ = "steps"
    __table_args__ = (PrimaryKeyConstraint("run_id", "step_number"),)

    run_id: str = Field(foreign_key="runs.id", max_length=36)
    step_number: int
    status: StepStatus = Field(sa_type=EnumText(StepStatus))
    num_attempts: int = 0
    # JSON text as the executor wrote it (sensitive values already masked), kept verbatim.
    inputs: str | None = Field(default=None, sa_type=Text)
    outputs: str | None = Field(default=None, sa_type=Text)
    reason: str | None = None
    interpreter_path: str | None = None
    interpreter_version: str | None = None


class AttemptRow(Base, table=True):
    __tablename__ = "attempts"
    __table_args__ = (
        PrimaryKeyConstraint("run_id", "step_number", "attempt_no"),
        ForeignKeyConstraint(["run_id", "step_number"], ["steps.run_id", "steps.step_number"]),
    )

    run_id: str = Field(max_length=36)
    step_number: int
    attempt_no: int
    status: StepStatus = Field(sa_type=EnumText(StepStatus))
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    exit_code: int | None = None
    evidence_key: str | None = None
    reason: str | None = None


class EvidenceRow(Base, table=True):
    __tablename__ = "evidence"
    __table_args__ = (
        PrimaryKeyConstraint("run_id", "step_number", "attempt_no"),
        ForeignKeyConstraint(
            ["run_id", "step_number", "attempt_no"],
            ["attempts.run_id", "attempts.step_number", "attempts.attempt_no"],
        ),
    )

    run_id: str = Field(max_length=36)
    step_number: int
    attempt_no: int
    store_key: str
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)


class NodeRow(Base, table=True):
    __tablename__ = "nodes"

    id: str = Field(primary_key=True)
    name: str
    transport: str = Field(max_length=16)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    tags: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    skills: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    enrolled_at: datetime = Field(sa_type=UtcDateTime())
    last_seen_at: datetime | None = Field(default=None, sa_type=UtcDateTime())


class SavedListRow(Base, table=True):
    __tablename__ = "saved_lists"

    id: str = Field(primary_key=True, max_length=36)
    name: str
    node_ids: list[str] = Field(default_factory=list, sa_type=JSON)


class SavedFilterRow(Base, table=True):
    __tablename__ = "saved_filters"

    id: str = Field(primary_key=True, max_length=36)
    name: str
    constraints: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class ApplyJournalRow(Base, table=True):
    __tablename__ = "apply_journal"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(sa_type=UtcDateTime())
    finished_at: datetime = Field(sa_type=UtcDateTime())
    actor: str
    git_commit: str | None = Field(default=None, max_length=64)
    plan_hash: str = Field(max_length=64)
    outcome: str = Field(max_length=16)
    creates: int = 0
    updates: int = 0
    cancels: int = 0
    noops: int = 0
    drifts: int = 0
    serial: int


class MetaRow(Base, table=True):
    """Key/value facts about the state itself; `serial` counts committed state changes."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str


def table(name: str) -> Table:
    return metadata.tables[name]


JOBS = table("jobs")
JOB_VERSIONS = table("job_versions")
INSTANCES = table("instances")
RUNS = table("runs")
STEPS = table("steps")
ATTEMPTS = table("attempts")
EVIDENCE = table("evidence")
NODES = table("nodes")
SAVED_LISTS = table("saved_lists")
SAVED_FILTERS = table("saved_filters")
APPLY_JOURNAL = table("apply_journal")
META = table("meta")
