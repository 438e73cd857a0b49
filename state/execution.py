"""The execution records (runs, steps, attempts) behind `SqlStateStore`'s `ExecutionStore` methods.

Functions take a connection inside a transaction the store opened. Batches are Core executemany
statements (no ORM objects): the executor writes a thousand runs at a time and must stay cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Insert, Select, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from reconciler.errors import NotFound
from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus, StepStatus
from reconciler.ports import AttemptResult, RunRecord, StepResult, StoredInstance, StoredRun
from state.queries import CURRENT_VERSION, Page, check_page, to_instance
from state.tables import ATTEMPTS, INSTANCES, JOB_VERSIONS, JOBS, RUNS, STEPS
from state.types import UtcDateTime

OPEN_INSTANCE = (InstanceStatus.PENDING, InstanceStatus.RUNNING)
OPEN_RUN = (RunStatus.PENDING, RunStatus.RUNNING)
CHUNK = 1000  # ids per IN (...): far below SQLite's and PostgreSQL's parameter limits

RUN_COLUMNS = (
    RUNS.c.id,
    RUNS.c.instance_id,
    RUNS.c.node_id,
    RUNS.c.group_number,
    RUNS.c.status,
    RUNS.c.received_time,
    RUNS.c.last_update_time,
    RUNS.c.reason,
)
RUN_ORDER = (RUNS.c.group_number, RUNS.c.position, RUNS.c.id)


def _run_select() -> Select[Any]:
    return select(*RUN_COLUMNS)


# A late result replaces `timeout` (DESIGN.md §4) and any other status, but never `canceled`.
RECORD_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("b_id"), RUNS.c.status != RunStatus.CANCELED)
    .values(
        status=bindparam("b_status"),
        last_update_time=bindparam("b_ended"),
        reason=bindparam("b_reason"),
        received_time=func.coalesce(
            RUNS.c.received_time, bindparam("b_started", type_=UtcDateTime())
        ),
    )
)
STEP_KEYS = ("run_id", "step_number")
ATTEMPT_KEYS = ("run_id", "step_number", "attempt_no")


# -- instances ---------------------------------------------------------------------------------


def open_instances(conn: Connection) -> list[StoredInstance]:
    query = (
        select(INSTANCES)
        .where(INSTANCES.c.status.in_(OPEN_INSTANCE))
        .order_by(INSTANCES.c.created_at, INSTANCES.c.scheduled_for, INSTANCES.c.id)
    )
    return [to_instance(row) for row in conn.execute(query)]


def version_spec(conn: Connection, job_id: str, version: int) -> str:
    """The canonical JSON text of one version of a job."""
    text = conn.scalar(
        select(JOB_VERSIONS.c.spec).where(
            JOB_VERSIONS.c.job_id == job_id, JOB_VERSIONS.c.version == version
        )
    )
    if text is None:
        raise NotFound(f"no version {version} of job {job_id}")
    return str(text)


def start_instance(conn: Connection, instance_id: str, at: datetime) -> None:
    result = conn.execute(
        update(INSTANCES)
        .where(INSTANCES.c.id == instance_id, INSTANCES.c.status == InstanceStatus.PENDING)
        .values(status=InstanceStatus.RUNNING, updated_at=at)
    )
    if result.rowcount == 0:
        _instance_job(conn, instance_id)  # NotFound, or it was no longer pending: nothing to do


def finish_instance(
    conn: Connection, instance_id: str, status: InstanceStatus, at: datetime
) -> None:
    """End an open instance (a finished or canceled one keeps its status). When it was the last
    open instance of an `immediate` job that is still active, the job becomes `completed`."""
    if InstanceStatus(status) in OPEN_INSTANCE:
        raise ValueError(f"finish_instance needs a final status, not {status}")
    job_id = _instance_job(conn, instance_id)
    result = conn.execute(
        update(INSTANCES)
        .where(INSTANCES.c.id == instance_id, INSTANCES.c.status.in_(OPEN_INSTANCE))
        .values(status=status, updated_at=at)
    )
    if result.rowcount == 0:
        return
    job = conn.execute(
        select(JOBS.c.status, JOB_VERSIONS.c.spec)
        .select_from(CURRENT_VERSION)
        .where(JOBS.c.id == job_id)
    ).first()
    if job is None or job.status is not JobStatus.ACTIVE:
        return
    if str(orjson.loads(job.spec).get("scheduleRule", "")).strip().lower() != "immediate":
        return
    still_open = conn.scalar(
        select(func.count())
        .select_from(INSTANCES)
        .where(INSTANCES.c.job_id == job_id, INSTANCES.c.status.in_(OPEN_INSTANCE))
    )
    if not still_open:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.status == JobStatus.ACTIVE)
            .values(status=JobStatus.COMPLETED, modified_at=at)
        )


def _instance_job(conn: Connection, instance_id: str) -> str:
    job_id = conn.scalar(select(INSTANCES.c.job_id).where(INSTANCES.c.id == instance_id))
    if job_id is None:
        raise NotFound(f"no instance with id {instance_id}")
    return str(job_id)


# -- runs --------------------------------------------------------------------------------------


def to_run(row: Row[Any]) -> StoredRun:
    return StoredRun(
        id=row.id,
        instance_id=row.instance_id,
        node_id=row.node_id,
        group_number=row.group_number,
        status=row.status,
        received_time=row.received_time,
        last_update_time=row.last_update_time,
        reason=row.reason or "",
    )


def instance_runs(conn: Connection, instance_id: str) -> list[StoredRun]:
    """The instance's runs by group, in the order they were created (NotFound: no instance)."""
    query = _run_select().where(RUNS.c.instance_id == instance_id).order_by(*RUN_ORDER)
    runs = [to_run(row) for row in conn.execute(query)]
    if not runs:
        _instance_job(conn, instance_id)
    return runs


def list_runs(
    conn: Connection,
    instance_id: str,
    *,
    group: int | None = None,
    status: RunStatus | None = None,
    page: int = 1,
    size: int = 100,
) -> Page[StoredRun]:
    """One 1-based page of an instance's runs, filtered by group number and status."""
    check_page(page, size)
    _instance_job(conn, instance_id)
    conditions = [RUNS.c.instance_id == instance_id]
    if group is not None:
        conditions.append(RUNS.c.group_number == group)
    if status is not None:
        conditions.append(RUNS.c.status == RunStatus(status))
    query = _run_select().where(*conditions).order_by(*RUN_ORDER)
    rows = conn.execute(query.limit(size).offset((page - 1) * size))
    total = conn.scalar(select(func.count()).select_from(RUNS).where(*conditions))
    return Page([to_run(row) for row in rows], total or 0)


def instance_counts(conn: Connection, instance_id: str) -> dict[RunStatus, int]:
    """How many of the instance's runs are in each status (every status present, maybe 0)."""
    _instance_job(conn, instance_id)
    counts = dict.fromkeys(RunStatus, 0)
    query = (
        select(RUNS.c.status, func.count())
        .where(RUNS.c.instance_id == instance_id)
        .group_by(RUNS.c.status)
    )
    for status, count in conn.execute(query):
        counts[status] = count
    return counts


def run_by_id(conn: Connection, run_id: str) -> StoredRun:
    row = conn.execute(_run_select().where(RUNS.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run with id {run_id}")
    return to_run(row)


def start_runs(conn: Connection, run_ids: Sequence[str], at: datetime) -> list[str]:
    """pending -> running; the ids that were pending, in the order given."""
    ids = list(dict.fromkeys(run_ids))
    started: set[str] = set()
    for chunk in _chunks(ids):
        statement = (
            update(RUNS)
            .where(RUNS.c.id.in_(chunk), RUNS.c.status == RunStatus.PENDING)
            .values(status=RunStatus.RUNNING, received_time=at, last_update_time=at)
            .returning(RUNS.c.id)
        )
        started.update(conn.scalars(statement))
    return [run_id for run_id in ids if run_id in started]


def end_runs(
    conn: Connection, run_ids: Sequence[str], status: RunStatus, at: datetime, reason: str
) -> None:
    """Runs still pending or running end with `status` (a final one) and `reason`."""
    if RunStatus(status) in OPEN_RUN:
        raise ValueError(f"end_runs needs a final status, not {status}")
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id.in_(chunk), RUNS.c.status.in_(OPEN_RUN))
            .values(status=status, last_update_time=at, reason=reason or None)
        )


def record_runs(conn: Connection, records: Sequence[RunRecord]) -> None:
    """Upsert each record's steps and attempts and set its run's status, all in `conn`'s
    transaction; NotFound (nothing written) when a run does not exist."""
    by_run = {record.run_id: record for record in records}  # a repeated run: the last one wins
    if not by_run:
        return
    _require_runs(conn, by_run)
    steps: dict[tuple[str, int], dict[str, Any]] = {}
    attempts: dict[tuple[str, int, int], dict[str, Any]] = {}
    for run_id, record in by_run.items():
        for step in record.steps:
            steps[run_id, step.step_number] = _step_row(run_id, step)
            for attempt in step.attempts:
                key = (run_id, step.step_number, attempt.attempt_no)
                attempts[key] = _attempt_row(run_id, step.step_number, attempt)
    if steps:
        conn.execute(_upsert(conn, STEPS, STEP_KEYS), list(steps.values()))
    if attempts:
        conn.execute(_upsert(conn, ATTEMPTS, ATTEMPT_KEYS), list(attempts.values()))
    conn.execute(
        RECORD_RUN,
        [
            {
                "b_id": run_id,
                "b_status": RunStatus(record.status),
                "b_ended": record.ended_at,
                "b_started": record.started_at,
                "b_reason": record.reason or None,
            }
            for run_id, record in by_run.items()
        ],
    )


def _require_runs(conn: Connection, run_ids: Iterable[str]) -> None:
    wanted = list(run_ids)
    found: set[str] = set()
    for chunk in _chunks(wanted):
        found.update(conn.scalars(select(RUNS.c.id).where(RUNS.c.id.in_(chunk))))
    missing = [run_id for run_id in wanted if run_id not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotFound(f"no run with id {missing[0]}{more}")


def _step_row(run_id: str, step: StepResult) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_number": step.step_number,
        "status": StepStatus(step.status),
        "num_attempts": step.num_attempts,
        "inputs": step.inputs or None,
        "outputs": step.outputs or None,
        "reason": step.reason or None,
        "interpreter_path": step.interpreter_path or None,
        "interpreter_version": step.interpreter_version or None,
    }


def _attempt_row(run_id: str, step_number: int, attempt: AttemptResult) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_number": step_number,
        "attempt_no": attempt.attempt_no,
        "status": StepStatus(attempt.status),
        "started_at": attempt.started_at,
        "ended_at": attempt.ended_at,
        "exit_code": attempt.exit_code,
        "evidence_key": attempt.evidence_key,
        "reason": attempt.reason or None,
    }


def _upsert(conn: Connection, table: Table, keys: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column (both backends speak it)."""
    statement = (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(table)
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    upsert: Insert = statement.on_conflict_do_update(index_elements=list(keys), set_=updates)
    return upsert


# -- steps and attempts ------------------------------------------------------------------------


def run_steps(conn: Connection, run_id: str) -> list[StepResult]:
    """The run's steps by number, each with its attempts by number (NotFound: no such run)."""
    step_rows = conn.execute(
        select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.step_number)
    ).all()
    if not step_rows:
        run_by_id(conn, run_id)
        return []
    by_step: dict[int, list[AttemptResult]] = {row.step_number: [] for row in step_rows}
    attempt_rows = conn.execute(
        select(ATTEMPTS)
        .where(ATTEMPTS.c.run_id == run_id)
        .order_by(ATTEMPTS.c.step_number, ATTEMPTS.c.attempt_no)
    )
    for row in attempt_rows:
        by_step[row.step_number].append(to_attempt(row))
    return [
        StepResult(
            step_number=row.step_number,
            status=row.status,
            num_attempts=row.num_attempts,
            inputs=row.inputs or "",
            outputs=row.outputs or "",
            reason=row.reason or "",
            interpreter_path=row.interpreter_path or "",
            interpreter_version=row.interpreter_version or "",
            attempts=tuple(by_step[row.step_number]),
        )
        for row in step_rows
    ]


def step_attempt(conn: Connection, run_id: str, step_number: int, attempt_no: int) -> AttemptResult:
    row = conn.execute(
        select(ATTEMPTS).where(
            ATTEMPTS.c.run_id == run_id,
            ATTEMPTS.c.step_number == step_number,
            ATTEMPTS.c.attempt_no == attempt_no,
        )
    ).first()
    if row is None:
        raise NotFound(f"no attempt {attempt_no} of step {step_number} of run {run_id}")
    return to_attempt(row)


def to_attempt(row: Row[Any]) -> AttemptResult:
    return AttemptResult(
        attempt_no=row.attempt_no,
        status=row.status,
        exit_code=row.exit_code,
        started_at=row.started_at,
        ended_at=row.ended_at,
        reason=row.reason or "",
        evidence_key=row.evidence_key,
    )


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]
