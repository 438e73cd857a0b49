"""Protocols the core needs from the outside world; `state/` and the CLI implement them.

The core sees frozen dataclasses, never ORM rows or sessions (STYLE.md). All times are aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus, StepStatus

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as the state knows it, with its current version's canonical spec."""

    id: str
    name: str
    status: JobStatus
    managed: bool
    origin_path: str | None
    version: int
    spec: dict[str, Any]
    hash: str
    blob_id: str | None
    created_at: datetime
    modified_at: datetime
    next_execution_time: datetime | None
    execution_count: int


@dataclass(frozen=True, slots=True)
class StoredState:
    jobs: dict[str, StoredJob]  # by name
    serial: int


@dataclass(frozen=True, slots=True)
class JobVersion:
    """One applied version of a job (kept forever: job_versions)."""

    spec: dict[str, Any]
    hash: str
    source_path: str | None
    git_commit: str | None
    blob_id: str | None
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    name: str
    managed: bool
    origin_path: str | None
    created_at: datetime
    next_execution_time: datetime | None


@dataclass(frozen=True, slots=True)
class StoredInstance:
    id: str
    job_id: str
    job_version: int
    status: InstanceStatus
    scheduled_for: datetime
    created_at: datetime
    updated_at: datetime
    instance_type: str = "scheduled"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    started_at: datetime
    finished_at: datetime
    actor: str
    git_commit: str | None
    plan_hash: str
    outcome: str  # "applied" | "noop" | "failed"
    counts: dict[str, int] = field(default_factory=dict)


class StateWriter(Protocol):
    """What an apply may do, inside one transaction holding the apply lock."""

    def serial(self) -> int: ...
    def jobs(self) -> dict[str, StoredJob]: ...
    def insert_job(self, job: NewJob, version: JobVersion) -> None: ...
    def add_version(
        self, job_id: str, version: JobVersion, next_execution_time: datetime | None
    ) -> int: ...
    def set_status(self, job_id: str, status: JobStatus, at: datetime) -> None: ...
    def set_next_execution(self, job_id: str, at: datetime | None) -> None: ...
    def set_managed(self, job_id: str, managed: bool, origin_path: str | None) -> None: ...
    def set_origin(self, job_id: str, origin_path: str, blob_id: str | None) -> None: ...
    # the file a job now comes from (renamed, reformatted): no new version, nothing re-runs
    def create_instance(
        self,
        job_id: str,
        job_version: int,
        scheduled_for: datetime,
        at: datetime,
        assignments: Sequence[Assignment] = (),
    ) -> str: ...  # with its runs (status pending), fixed now; bumps the job's executionCount
    def cancel_pending_instances(self, job_id: str, at: datetime, *, running: bool) -> int: ...
    def journal(self, entry: JournalEntry) -> None: ...
    def bump_serial(self) -> int: ...


class StateStore(Protocol):
    def read(self) -> StoredState: ...
    def write(
        self, mutation: Callable[[StateWriter], T], *, lock_timeout: float, holder: str
    ) -> T: ...
    def instances(self, job_id: str | None = None) -> list[StoredInstance]: ...


# --- execution (DESIGN.md §4) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assignment:
    """A run fixed at instance creation: which node, in which group (0-based)."""

    run_id: str
    node_id: str
    group_number: int


@dataclass(frozen=True, slots=True)
class StoredRun:
    id: str
    instance_id: str
    node_id: str
    group_number: int
    status: RunStatus
    received_time: datetime | None
    last_update_time: datetime | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    attempt_no: int
    status: StepStatus  # success | failure
    exit_code: int | None
    started_at: datetime
    ended_at: datetime
    reason: str = ""
    evidence_key: str | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of one run, after its last attempt. `inputs`/`outputs` are JSON, masked."""

    step_number: int
    status: StepStatus
    num_attempts: int
    inputs: str = ""
    outputs: str = ""
    reason: str = ""
    interpreter_path: str = ""
    interpreter_version: str = ""
    attempts: tuple[AttemptResult, ...] = ()


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything a finished run reports, written in one go (batched by the executor)."""

    run_id: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime
    steps: tuple[StepResult, ...]
    reason: str = ""


class ExecutionStore(Protocol):
    """What the executor needs from the state. Writes are short transactions; none takes the
    apply lock (applies and executions do not block each other)."""

    def open_instances(self) -> list[StoredInstance]: ...  # pending or running, oldest first
    def instance_spec(self, instance: StoredInstance) -> dict[str, Any]: ...  # its version's spec
    def runs(self, instance_id: str) -> list[StoredRun]: ...
    def start_instance(self, instance_id: str, at: datetime) -> None: ...  # pending -> running
    def start_runs(self, run_ids: Sequence[str], at: datetime) -> list[str]: ...  # pending ->
    # running; returns the ids that were still pending (a canceled run is not started)
    def record_runs(self, records: Sequence[RunRecord]) -> None: ...  # steps, attempts, status
    def end_runs(
        self, run_ids: Sequence[str], status: RunStatus, at: datetime, reason: str
    ) -> None: ...  # pending/running -> canceled | timeout
    def finish_instance(self, instance_id: str, status: InstanceStatus, at: datetime) -> None: ...
    def run(self, run_id: str) -> StoredRun: ...  # NotFound
    def steps(self, run_id: str) -> list[StepResult]: ...  # with attempts
    def attempt(self, run_id: str, step_number: int, attempt_no: int) -> AttemptResult: ...


class EvidenceStore(Protocol):
    """Where evidence zips live: a folder by default, S3 behind the same Protocol."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def url(self, key: str) -> str: ...


def evidence_key(run_id: str, step_number: int, attempt_no: int) -> str:
    """Chef's path: run/<id>/step/<n>/attempt/<m>/evidence-run-<id>-step-<n>-attempt-<m>.zip"""
    return (
        f"run/{run_id}/step/{step_number}/attempt/{attempt_no}/"
        f"evidence-run-{run_id}-step-{step_number}-attempt-{attempt_no}.zip"
    )


# --- fleet mode (DESIGN.md §5): runs of `agent` nodes are offered, then claimed by runners -------


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run a runner now holds the lease of, with what it needs to execute it."""

    run: StoredRun
    instance: StoredInstance
    job_name: str
    spec: dict[str, Any]
    lease_expires_at: datetime


@runtime_checkable
class FleetStore(Protocol):
    """Runs of agent nodes: the orchestrator offers them (by the group rules), each node's runner
    claims its own with `FOR UPDATE SKIP LOCKED` and holds a lease it renews by heartbeat."""

    def offer_runs(self, run_ids: Sequence[str], at: datetime) -> list[str]: ...
    # pending -> offered (still status pending, `offered_at` set); returns the ids offered
    def claim_run(
        self, node_id: str, owner: str, lease_seconds: float, at: datetime
    ) -> ClaimedRun | None: ...
    # one offered run of this node, or a running one whose lease expired (its runner died),
    # -> running with lease (owner, at + lease_seconds); None when there is nothing to do
    def renew_lease(self, run_id: str, owner: str, lease_seconds: float, at: datetime) -> bool: ...
    # False when the lease is lost: the run was canceled, timed out, or claimed by another owner
    def release_run(self, record: RunRecord, owner: str) -> bool: ...
    # record_runs for one run, only if `owner` still holds its lease; False otherwise
    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]: ...
