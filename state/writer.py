"""`StateWriter` on one SQL transaction: what an apply may do while it holds the apply lock.

Inserts and job updates are buffered and flushed as executemany batches (jobs, versions, job
updates, instances and their runs, in foreign-key order) before any read and at the end, so an
apply of 10,000 new jobs costs a handful of statements instead of tens of thousands of round trips.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from reconciler.errors import NotFound
from reconciler.model.canonical import canonical_json
from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus
from reconciler.ports import Assignment, JobVersion, JournalEntry, NewJob, StoredJob
from state.errors import DuplicateJobName, DuplicateOccurrence
from state.queries import all_jobs, read_serial
from state.tables import APPLY_JOURNAL, INSTANCES, JOB_VERSIONS, JOBS, META, RUNS, SERIAL_KEY

COUNT_COLUMNS = {"create": "creates", "update": "updates", "cancel": "cancels"}
COUNT_COLUMNS |= {"noop": "noops", "drift": "drifts"}
CANCELABLE = {
    False: (InstanceStatus.PENDING,),
    True: (InstanceStatus.PENDING, InstanceStatus.RUNNING),
}
CANCEL_BY_ID = {
    running: update(INSTANCES)
    .where(INSTANCES.c.id == bindparam("b_id"), or_(*(INSTANCES.c.status == s for s in statuses)))
    .values(status=InstanceStatus.CANCELED)
    for running, statuses in CANCELABLE.items()
}
CANCELED_BY_INSTANCE = "the instance was canceled"
RUNS_CANCELABLE = {
    False: (RunStatus.PENDING,),
    True: (RunStatus.PENDING, RunStatus.RUNNING),
}
# Runs follow their instance only if the instance cancel above took effect.
CANCEL_RUNS_BY_INSTANCE = {
    running: update(RUNS)
    .where(
        RUNS.c.instance_id == bindparam("b_id"),
        or_(*(RUNS.c.status == s for s in statuses)),
        exists().where(
            INSTANCES.c.id == bindparam("b_id"), INSTANCES.c.status == InstanceStatus.CANCELED
        ),
    )
    .values(
        status=RunStatus.CANCELED, last_update_time=bindparam("b_at"), reason=CANCELED_BY_INSTANCE
    )
    for running, statuses in RUNS_CANCELABLE.items()
}
# A new instance counts as an execution, and a `completed` job with work to do is active again.
BUMP_EXECUTION_COUNT = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(
        execution_count=JOBS.c.execution_count + bindparam("b_count"),
        status=case(
            (JOBS.c.status == JobStatus.COMPLETED, JobStatus.ACTIVE.value), else_=JOBS.c.status
        ),
    )
)


class SqlStateWriter:
    """The writer handed to `SqlStateStore.write` mutations; valid only inside that call."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._new_jobs: dict[str, dict[str, Any]] = {}
        self._new_names: set[str] = set()
        self._new_versions: list[dict[str, Any]] = []
        self._job_updates: dict[str, dict[str, Any]] = {}
        self._new_instances: list[dict[str, Any]] = []
        self._new_by_job: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._new_runs: dict[str, list[dict[str, Any]]] = {}  # by instance id
        self._executions: Counter[str] = Counter()  # job id -> instances created, not flushed
        self._occurrences: set[tuple[str, datetime]] = set()
        self._current: dict[str, int] = {}  # job id -> current version, as far as we know
        self._loaded_versions = False
        self._serial: int | None = None
        # job id -> (instance id, status) of its stored pending/running instances, loaded once
        self._active: defaultdict[str, list[tuple[str, InstanceStatus]]] | None = None
        self._instance_cancels: dict[bool, list[dict[str, Any]]] = {False: [], True: []}

    # -- reads ------------------------------------------------------------------------------

    def serial(self) -> int:
        if self._serial is None:
            self._serial = read_serial(self._conn)
        return self._serial

    def jobs(self) -> dict[str, StoredJob]:
        self.flush()
        jobs = all_jobs(self._conn)
        for job in jobs.values():  # spares `_current_version` its own query later
            self._current.setdefault(job.id, job.version)
        self._loaded_versions = True
        return jobs

    # -- jobs -------------------------------------------------------------------------------

    def insert_job(self, job: NewJob, version: JobVersion) -> None:
        if job.name in self._new_names:
            raise DuplicateJobName(job.name)
        self._new_names.add(job.name)
        self._new_jobs[job.id] = {
            "id": job.id,
            "name": job.name,
            "status": JobStatus.ACTIVE,
            "managed": job.managed,
            "origin_path": job.origin_path,
            "version": 1,
            "spec_hash": version.hash,
            "blob_id": version.blob_id,
            "created_at": job.created_at,
            "modified_at": job.created_at,
            "next_execution_time": job.next_execution_time,
            "execution_count": 0,
        }
        self._current[job.id] = 1
        self._new_versions.append(_version_row(job.id, 1, version))

    def add_version(
        self, job_id: str, version: JobVersion, next_execution_time: datetime | None
    ) -> int:
        number = self._current_version(job_id) + 1
        self._current[job_id] = number
        self._new_versions.append(_version_row(job_id, number, version))
        values: dict[str, Any] = {
            "version": number,
            "spec_hash": version.hash,
            "blob_id": version.blob_id,
            "modified_at": version.applied_at,
            "next_execution_time": next_execution_time,
        }
        if version.source_path is not None:
            values["origin_path"] = version.source_path
        self._touch(job_id, values)
        return number

    def set_status(self, job_id: str, status: JobStatus, at: datetime) -> None:
        self._current_version(job_id)  # raises NotFound for an unknown job
        self._touch(job_id, {"status": JobStatus(status), "modified_at": at})

    def set_next_execution(self, job_id: str, at: datetime | None) -> None:
        self._current_version(job_id)
        self._touch(job_id, {"next_execution_time": at})

    def set_managed(self, job_id: str, managed: bool, origin_path: str | None) -> None:
        self._current_version(job_id)
        self._touch(job_id, {"managed": managed, "origin_path": origin_path})

    def set_origin(self, job_id: str, origin_path: str, blob_id: str | None) -> None:
        self._current_version(job_id)
        self._touch(job_id, {"origin_path": origin_path, "blob_id": blob_id})

    # -- instances --------------------------------------------------------------------------

    def create_instance(
        self,
        job_id: str,
        job_version: int,
        scheduled_for: datetime,
        at: datetime,
        assignments: Sequence[Assignment] = (),
    ) -> str:
        """Buffer a pending instance with one pending run per assignment (kept in the given
        order within each group) and count it in the job's executionCount."""
        occurrence = (job_id, scheduled_for)
        if occurrence in self._occurrences:
            raise DuplicateOccurrence(job_id, scheduled_for)
        self._occurrences.add(occurrence)
        row = {
            "id": str(uuid.uuid4()),
            "job_id": job_id,
            "job_version": job_version,
            "status": InstanceStatus.PENDING,
            "scheduled_for": scheduled_for,
            "instance_type": "scheduled",
            "created_at": at,
            "updated_at": at,
        }
        self._new_instances.append(row)
        self._new_by_job[job_id].append(row)
        instance_id = str(row["id"])
        if assignments:
            self._new_runs[instance_id] = [
                {
                    "id": a.run_id,
                    "instance_id": instance_id,
                    "node_id": a.node_id,
                    "group_number": a.group_number,
                    "position": position,
                    "status": RunStatus.PENDING,
                    "last_update_time": at,
                }
                for position, a in enumerate(assignments)
            ]
        new_job = self._new_jobs.get(job_id)
        if new_job is not None:
            new_job["execution_count"] += 1
        else:
            self._executions[job_id] += 1
        return instance_id

    def cancel_pending_instances(self, job_id: str, at: datetime, *, running: bool) -> int:
        statuses = CANCELABLE[running]
        canceled = 0
        for row in self._new_by_job.get(job_id, []):  # created in this transaction, not flushed
            if row["status"] in statuses:
                row["status"] = InstanceStatus.CANCELED
                row["updated_at"] = at
                for run in self._new_runs.get(row["id"], ()):
                    run.update(
                        status=RunStatus.CANCELED, last_update_time=at, reason=CANCELED_BY_INSTANCE
                    )
                canceled += 1
        if job_id in self._new_jobs:  # a job inserted in this transaction has no stored rows
            return canceled
        kept: list[tuple[str, InstanceStatus]] = []
        for instance_id, status in self._unfinished().get(job_id, []):
            if status in statuses:
                self._instance_cancels[running].append(
                    {"b_id": instance_id, "updated_at": at, "b_at": at}
                )
                canceled += 1
            else:
                kept.append((instance_id, status))
        self._unfinished()[job_id] = kept
        return canceled

    # -- journal and serial -----------------------------------------------------------------

    def journal(self, entry: JournalEntry) -> None:
        row: dict[str, Any] = {
            "started_at": entry.started_at,
            "finished_at": entry.finished_at,
            "actor": entry.actor,
            "git_commit": entry.git_commit,
            "plan_hash": entry.plan_hash,
            "outcome": entry.outcome,
            "serial": self.serial(),
        }
        for key, column in COUNT_COLUMNS.items():
            row[column] = int(entry.counts.get(key, entry.counts.get(column, 0)))
        self._conn.execute(insert(APPLY_JOURNAL), row)

    def bump_serial(self) -> int:
        serial = self.serial() + 1
        result = self._conn.execute(
            update(META).where(META.c.key == SERIAL_KEY).values(value=str(serial))
        )
        if result.rowcount == 0:
            self._conn.execute(insert(META), {"key": SERIAL_KEY, "value": str(serial)})
        self._serial = serial
        return serial

    # -- flushing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Send the buffered rows, in foreign-key order. Called before reads and at commit."""
        if self._new_jobs:
            rows = list(self._new_jobs.values())
            try:
                # A savepoint keeps a PostgreSQL transaction usable to find out what clashed.
                with self._conn.begin_nested():
                    self._conn.execute(insert(JOBS), rows)
            except IntegrityError as exc:
                raise self._which_name(rows, exc) from exc
            self._new_jobs.clear()
            self._new_names.clear()
        if self._new_versions:
            self._conn.execute(insert(JOB_VERSIONS), self._new_versions)
            self._new_versions = []
        if self._job_updates:
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
            for job_id, values in self._job_updates.items():
                groups[tuple(sorted(values))].append({"b_id": job_id, **values})
            statement = update(JOBS).where(JOBS.c.id == bindparam("b_id"))
            for rows in groups.values():
                self._conn.execute(statement, rows)
            self._job_updates.clear()
        if self._executions:
            self._conn.execute(
                BUMP_EXECUTION_COUNT,
                [{"b_id": job_id, "b_count": n} for job_id, n in self._executions.items()],
            )
            self._executions.clear()
        if self._new_instances:
            try:
                with self._conn.begin_nested():
                    self._conn.execute(insert(INSTANCES), self._new_instances)
            except IntegrityError as exc:
                raise self._which_occurrence(exc) from exc
            runs = [run for rows in self._new_runs.values() for run in rows]
            if runs:
                self._conn.execute(insert(RUNS), [{"reason": None, **run} for run in runs])
            self._new_runs.clear()
            if self._active is not None:
                for row in self._new_instances:
                    if row["status"] in CANCELABLE[True]:
                        self._active[row["job_id"]].append((row["id"], row["status"]))
            self._new_instances = []
            self._new_by_job.clear()
            self._occurrences.clear()
        for running, rows in self._instance_cancels.items():
            if rows:
                # The status condition guards against a runner that started an instance since
                # we loaded it (PostgreSQL runners do not take the apply lock).
                self._conn.execute(CANCEL_BY_ID[running], rows)
                self._conn.execute(CANCEL_RUNS_BY_INSTANCE[running], rows)
                rows.clear()

    # -- helpers ----------------------------------------------------------------------------

    def _touch(self, job_id: str, values: dict[str, Any]) -> None:
        pending = self._new_jobs.get(job_id)
        if pending is not None:
            pending.update(values)
        else:
            self._job_updates.setdefault(job_id, {}).update(values)

    def _unfinished(self) -> defaultdict[str, list[tuple[str, InstanceStatus]]]:
        if self._active is None:
            # One query for the whole fleet's pending/running instances instead of one UPDATE
            # per canceled job: there are few of them, and SQLAlchemy's per-statement cost adds
            # up to seconds over thousands of jobs.
            self._active = defaultdict(list)
            query = select(INSTANCES.c.id, INSTANCES.c.job_id, INSTANCES.c.status).where(
                INSTANCES.c.status.in_(CANCELABLE[True])
            )
            for instance_id, job_id, status in self._conn.execute(query):
                self._active[job_id].append((instance_id, status))
        return self._active

    def _current_version(self, job_id: str) -> int:
        if job_id not in self._current and not self._loaded_versions:
            # One query for all jobs beats one per job when an apply updates thousands.
            for jid, version in self._conn.execute(select(JOBS.c.id, JOBS.c.version)):
                self._current.setdefault(jid, version)
            self._loaded_versions = True
        try:
            return self._current[job_id]
        except KeyError:
            raise NotFound(f"no job with id {job_id}") from None

    def _which_name(self, rows: list[dict[str, Any]], exc: IntegrityError) -> Exception:
        names = [row["name"] for row in rows]
        for chunk in _chunks(names):
            query = select(JOBS.c.name).where(JOBS.c.name.in_(chunk)).order_by(JOBS.c.name)
            taken = self._conn.scalars(query).first()
            if taken is not None:
                return DuplicateJobName(taken)
        return exc

    def _which_occurrence(self, exc: IntegrityError) -> Exception:
        wanted = {(row["job_id"], row["scheduled_for"]) for row in self._new_instances}
        for chunk in _chunks(sorted({job_id for job_id, _ in wanted})):
            query = select(INSTANCES.c.job_id, INSTANCES.c.scheduled_for).where(
                INSTANCES.c.job_id.in_(chunk)
            )
            for job_id, scheduled_for in self._conn.execute(query):
                if (job_id, scheduled_for) in wanted:
                    return DuplicateOccurrence(job_id, scheduled_for)
        return exc


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _version_row(job_id: str, number: int, version: JobVersion) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "version": number,
        "spec": canonical_json(version.spec).decode(),
        "hash": version.hash,
        "source_path": version.source_path,
        "git_commit": version.git_commit,
        "blob_id": version.blob_id,
        "applied_at": version.applied_at,
    }
