"""`SqlStateStore`: the `StateStore` port on SQLite or PostgreSQL, plus the reads and small writes
the Chef-compatible CLI needs. Applies go through `write()`: one transaction, the apply lock held,
everything rolled back on any exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from reconciler.errors import NotFound, StateError
from reconciler.model.enums import InstanceStatus, JobStatus
from reconciler.ports import JobVersion, NewJob, StateWriter, StoredInstance, StoredJob, StoredState
from state import queries
from state.engine import describe, open_engine
from state.errors import DuplicateJobName
from state.locking import lock_for_write
from state.migrating import migrate
from state.queries import JournalRecord, Page
from state.writer import SqlStateWriter

T = TypeVar("T")
DEFAULT_LOCK_TIMEOUT_S = 30.0


class SqlStateStore:
    """The state store on an engine from `state.engine.open_engine` (migrated on first use)."""

    def __init__(self, engine: Engine, *, auto_migrate: bool = True) -> None:
        self.engine = engine
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
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StateError(f"state database {describe(self.engine)}: {reason}") from exc


def open_store(url: str | None = None, repo: Path | None = None) -> SqlStateStore:
    """Open (and migrate) the state store at `url`; by default the SQLite file under `repo`."""
    return SqlStateStore(open_engine(url, repo=repo))
