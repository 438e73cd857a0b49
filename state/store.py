"""`SqlStateStore`: the `StateStore` and `ExecutionStore` ports on SQLite or PostgreSQL, plus the
reads and small writes the Chef-compatible CLI needs. Applies go through `write()`: one transaction,
the apply lock held, everything rolled back on any exception. Execution writes are short
transactions of their own and never take the apply lock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from reconciler.errors import NotFound, StateError
from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus
from reconciler.ports import (
    AttemptResult,
    JobVersion,
    NewJob,
    RunRecord,
    StateWriter,
    StepResult,
    StoredInstance,
    StoredJob,
    StoredRun,
    StoredState,
)
from state import execution, nodes, occurrences, queries
from state.engine import begin_immediate, describe, open_engine
from state.errors import DuplicateJobName
from state.fleet import FleetMethods
from state.locking import lock_for_write
from state.migrating import migrate
from state.nodes import NodeDeclaration, StoredNode
from state.queries import JournalRecord, Page
from state.writer import SqlStateWriter

if TYPE_CHECKING:
    from reconciler.scheduler import Advance

T = TypeVar("T")
DEFAULT_LOCK_TIMEOUT_S = 30.0


class SqlStateStore(FleetMethods):
    """The state store on an engine from `state.engine.open_engine` (migrated on first use)."""

    def __init__(self, engine: Engine, *, auto_migrate: bool = True) -> None:
        self.engine = engine
        # (job id, version) -> canonical spec text; versions never change once written.
        self._specs: dict[tuple[str, int], str] = {}
        self._specs_lock = threading.Lock()
        if auto_migrate:
            migrate(engine)

    # -- the StateStore port ----------------------------------------------------------------

    def read(self, *, with_specs: bool = True) -> StoredState:
        """Every job (canceled ones too) with its current spec, and the serial, consistently.

        Parsing the specs is most of the cost; `with_specs=False` leaves every `spec` as `{}`
        for callers that compare hashes first and fetch the few specs they need with `specs()`.
        """
        with self._reading() as conn:
            jobs = queries.all_jobs(conn, with_specs=with_specs)
            return StoredState(jobs=jobs, serial=queries.read_serial(conn))

    def write(self, mutation: Callable[[StateWriter], T], *, lock_timeout: float, holder: str) -> T:
        """Run `mutation` in one transaction holding the apply lock; commit, or roll back all.

        Raises `LockTimeout` naming the holder when the lock stays taken for `lock_timeout` s.
        """
        with self._errors(), self.engine.connect() as conn:
            release = lock_for_write(conn, timeout=lock_timeout, holder=holder)
            try:
                writer = SqlStateWriter(conn)
                result = mutation(writer)
                writer.flush()
            except BaseException:
                release()
                conn.rollback()
                raise
            release()
            conn.commit()
            return result

    def instances(self, job_id: str | None = None) -> list[StoredInstance]:
        with self._reading() as conn:
            return queries.all_instances(conn, job_id)

    # -- the ExecutionStore port ------------------------------------------------------------

    def open_instances(self) -> list[StoredInstance]:
        """Pending and running instances, oldest first."""
        with self._reading() as conn:
            return execution.open_instances(conn)

    def instance_spec(self, instance: StoredInstance) -> dict[str, Any]:
        """The spec of the job version the instance was created for (a fresh dict each call)."""
        key = (instance.job_id, instance.job_version)
        text = self._specs.get(key)
        if text is None:
            with self._reading() as conn:
                text = execution.version_spec(conn, *key)
            with self._specs_lock:
                self._specs[key] = text
        spec: dict[str, Any] = orjson.loads(text)
        return spec

    def runs(self, instance_id: str) -> list[StoredRun]:
        """The instance's runs by group, in creation order within a group (NotFound)."""
        with self._reading() as conn:
            return execution.instance_runs(conn, instance_id)

    def start_instance(self, instance_id: str, at: datetime) -> None:
        """pending -> running; an instance no longer pending is left alone (NotFound)."""
        with self._writing() as conn:
            execution.start_instance(conn, instance_id, at)

    def start_runs(self, run_ids: Sequence[str], at: datetime) -> list[str]:
        """pending -> running in one transaction; returns the ids that were still pending, in
        the given order (a canceled run is not started)."""
        with self._writing() as conn:
            return execution.start_runs(conn, run_ids, at)

    def record_runs(self, records: Sequence[RunRecord]) -> None:
        """Write the steps and attempts of finished runs and their status, in one transaction.
        A late result replaces `timeout` but never `canceled` (the steps are kept either way)."""
        with self._writing() as conn:
            execution.record_runs(conn, records)

    def end_runs(
        self, run_ids: Sequence[str], status: RunStatus, at: datetime, reason: str
    ) -> None:
        """Runs still pending or running end as `status` (canceled | timeout) with `reason`."""
        with self._writing() as conn:
            execution.end_runs(conn, run_ids, status, at, reason)

    def finish_instance(self, instance_id: str, status: InstanceStatus, at: datetime) -> None:
        """End an open instance; the last one of an active `immediate` job completes the job."""
        with self._writing() as conn:
            execution.finish_instance(conn, instance_id, status, at)

    def run(self, run_id: str) -> StoredRun:
        with self._reading() as conn:
            return execution.run_by_id(conn, run_id)

    def steps(self, run_id: str) -> list[StepResult]:
        """The run's steps in order, each with its attempts in order (NotFound)."""
        with self._reading() as conn:
            return execution.run_steps(conn, run_id)

    def attempt(self, run_id: str, step_number: int, attempt_no: int) -> AttemptResult:
        with self._reading() as conn:
            return execution.step_attempt(conn, run_id, step_number, attempt_no)

    # -- the scheduler daemon (reconciler.scheduler, state.occurrences) ----------------------

    def last_scheduled(self, job_ids: Iterable[str]) -> dict[str, datetime]:
        """Job id -> the latest `scheduled_for` of its instances (jobs without any are absent)."""
        with self._reading() as conn:
            return occurrences.last_scheduled(conn, job_ids)

    def schedule_occurrences(
        self, advances: Sequence[Advance], at: datetime, *, lock_timeout: float, holder: str
    ) -> list[str | None]:
        """Per advance, under the apply lock: set the job's next execution time and create the
        instance of its occurrence; the new id, or None when the occurrence has its instance
        already or the job is no longer active at that version (nothing written for it)."""
        with self._errors():
            return occurrences.schedule_occurrences(
                self.engine, advances, at, lock_timeout=lock_timeout, holder=holder
            )

    def claim_instance(self, instance_id: str, at: datetime) -> bool:
        """pending -> running for the one caller (of several daemons) that gets it."""
        with self._writing() as conn:
            return occurrences.claim_instance(conn, instance_id, at)

    # -- runs and nodes for the CLI ---------------------------------------------------------

    def list_runs(
        self,
        instance_id: str,
        group: int | None = None,
        status: RunStatus | None = None,
        page: int = 1,
        size: int = 100,
    ) -> Page[StoredRun]:
        """`state instance list-instance-runs`: one page of an instance's runs (NotFound)."""
        with self._reading() as conn:
            return execution.list_runs(
                conn, instance_id, group=group, status=status, page=page, size=size
            )

    def instance_counts(self, instance_id: str) -> dict[RunStatus, int]:
        """Runs of the instance per status, every status present (NotFound)."""
        with self._reading() as conn:
            return execution.instance_counts(conn, instance_id)

    def upsert_nodes(self, declared: Sequence[NodeDeclaration], at: datetime) -> None:
        """Enroll nodes given as (id, name, transport, attributes, tags, skills), or refresh
        them (`enrolled_at` kept, `last_seen_at` = `at`)."""
        with self._writing() as conn:
            nodes.upsert_nodes(conn, declared, at)

    def list_nodes(self) -> list[StoredNode]:
        with self._reading() as conn:
            return nodes.all_nodes(conn)

    def node(self, node_id: str) -> StoredNode:
        with self._reading() as conn:
            return nodes.node_by_id(conn, node_id)

    # -- reads for the CLI ------------------------------------------------------------------

    def job_by_id(self, job_id: str) -> StoredJob:
        with self._reading() as conn:
            job = queries.job_by_id(conn, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}")
        return job

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        sort: str = "name",
        order: str = "asc",
        page: int = 1,
        size: int = 100,
    ) -> Page[StoredJob]:
        with self._reading() as conn:
            return queries.list_jobs(
                conn, status=status, sort=sort, order=order, page=page, size=size
            )

    def specs(self, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The current spec of each of `job_ids` that exists, by job id."""
        with self._reading() as conn:
            return queries.current_specs(conn, job_ids)

    def job_versions(self, job_id: str) -> list[JobVersion]:
        with self._reading() as conn:
            return queries.job_versions(conn, job_id)

    def list_instances(
        self,
        *,
        job_id: str | None = None,
        status: InstanceStatus | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page: int = 1,
        size: int = 100,
    ) -> Page[StoredInstance]:
        with self._reading() as conn:
            return queries.list_instances(
                conn,
                job_id=job_id,
                status=status,
                created_after=created_after,
                created_before=created_before,
                page=page,
                size=size,
            )

    def instance(self, instance_id: str) -> StoredInstance:
        with self._reading() as conn:
            found = queries.instance_by_id(conn, instance_id)
        if found is None:
            raise NotFound(f"no instance with id {instance_id}")
        return found

    def journal(self, limit: int = 50) -> list[JournalRecord]:
        with self._reading() as conn:
            return queries.journal_records(conn, limit)

    def serial(self) -> int:
        with self._reading() as conn:
            return queries.read_serial(conn)

    # -- imperative writes (`scheduler jobs add-job | cancel-job`) ---------------------------

    def cancel_job(
        self,
        job_id: str,
        at: datetime,
        *,
        running: bool = False,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        holder: str = "scheduler jobs cancel-job",
    ) -> int:
        """Cancel a job and its pending (with `running`, also running) instances; returns how
        many instances were canceled. The next plan shows a managed job's cancel as drift."""

        def cancel(writer: StateWriter) -> int:
            writer.set_status(job_id, JobStatus.CANCELED, at)
            count = writer.cancel_pending_instances(job_id, at, running=running)
            writer.bump_serial()
            return count

        return self.write(cancel, lock_timeout=lock_timeout, holder=holder)

    def insert_unmanaged(
        self,
        name: str,
        version: JobVersion,
        *,
        at: datetime,
        next_execution_time: datetime | None = None,
        run_at: datetime | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        holder: str = "scheduler jobs add-job",
    ) -> str:
        """Create a job outside git (apply never cancels it); with `run_at`, also its first
        instance. Returns the new job's id."""
        job_id = str(uuid.uuid4())

        def add(writer: StateWriter) -> str:
            if name in writer.jobs():
                raise DuplicateJobName(name)
            job = NewJob(job_id, name, False, None, at, next_execution_time)
            writer.insert_job(job, version)
            if run_at is not None:
                writer.create_instance(job_id, 1, run_at, at)
            writer.bump_serial()
            return job_id

        return self.write(add, lock_timeout=lock_timeout, holder=holder)

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read transaction: a snapshot on SQLite (deferred BEGIN, WAL) and PostgreSQL
        (REPEATABLE READ), so the jobs and the serial of one `read()` agree."""
        with self._errors(), self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A short write transaction without the apply lock (SQLite: BEGIN IMMEDIATE, so two
        writers queue for the write lock instead of failing to upgrade a read lock)."""
        with self._errors(), self.engine.connect() as conn:
            begin_immediate(conn, DEFAULT_LOCK_TIMEOUT_S)
            with conn.begin():
                yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StateError(f"state database {describe(self.engine)}: {reason}") from exc

    # -- bulk reads for `courier report` (state.bulk) ----------------------------------------

    def runs_of(self, instance_ids: Sequence[str]) -> dict[str, list[StoredRun]]:
        """Runs of many instances by instance id, each in the order runs() gives; unknown ids
        -> []. One read transaction, one query per 900 ids."""
        from state import bulk  # imported here to keep this addition to the end of the class

        with self._reading() as conn:
            return bulk.runs_of(conn, instance_ids)

    def steps_of(self, run_ids: Sequence[str]) -> dict[str, list[StepResult]]:
        """Steps with their attempts of many runs, by run id, as steps() gives them but with
        inputs/outputs left empty (the report never shows them); unknown ids -> []."""
        from state import bulk

        with self._reading() as conn:
            return bulk.steps_of(conn, run_ids)


def open_store(url: str | None = None, repo: Path | None = None) -> SqlStateStore:
    """Open (and migrate) the state store at `url`; by default the SQLite file under `repo`."""
    return SqlStateStore(open_engine(url, repo=repo))
