"""Reads of the state, turned into the frozen dataclasses of `reconciler.ports` (never rows).

Used by the store for `read()` and by the Chef-compatible CLI for listing and paging.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

import orjson
from sqlalchemy import Select, and_, func, select
from sqlalchemy.engine import Connection, Row

from reconciler.errors import UsageError
from reconciler.model.enums import InstanceStatus, JobStatus
from reconciler.ports import JobVersion, JournalEntry, StoredInstance, StoredJob
from state.tables import APPLY_JOURNAL, INSTANCES, JOB_VERSIONS, JOBS, META, SERIAL_KEY

T = TypeVar("T")
JOB_SORT_COLUMNS = {"name": JOBS.c.name, "createdAt": JOBS.c.created_at}


class Page(NamedTuple, Generic[T]):
    """One page of a list, and how many items match in all (unpacks as `items, total`)."""

    items: list[T]
    total: int


@dataclass(frozen=True, slots=True)
class JournalRecord:
    id: int
    serial: int
    entry: JournalEntry


JOB_COLUMNS = (
    JOBS.c.id,
    JOBS.c.name,
    JOBS.c.status,
    JOBS.c.managed,
    JOBS.c.origin_path,
    JOBS.c.version,
    JOBS.c.spec_hash,
    JOBS.c.blob_id,
    JOBS.c.created_at,
    JOBS.c.modified_at,
    JOBS.c.next_execution_time,
    JOBS.c.execution_count,
)
CURRENT_VERSION = JOBS.join(
    JOB_VERSIONS,
    and_(JOB_VERSIONS.c.job_id == JOBS.c.id, JOB_VERSIONS.c.version == JOBS.c.version),
)


def job_select(*, with_specs: bool = True) -> Select[Any]:
    """Jobs joined to their current version's spec: one query, no N+1."""
    if not with_specs:
        return select(*JOB_COLUMNS)
    return select(*JOB_COLUMNS, JOB_VERSIONS.c.spec).select_from(CURRENT_VERSION)


def to_job(row: Row[Any]) -> StoredJob:
    spec = row._mapping.get("spec")
    return StoredJob(
        id=row.id,
        name=row.name,
        status=row.status,
        managed=row.managed,
        origin_path=row.origin_path,
        version=row.version,
        spec=orjson.loads(spec) if spec is not None else {},
        hash=row.spec_hash,
        blob_id=row.blob_id,
        created_at=row.created_at,
        modified_at=row.modified_at,
        next_execution_time=row.next_execution_time,
        execution_count=row.execution_count,
    )


def to_instance(row: Row[Any]) -> StoredInstance:
    return StoredInstance(
        id=row.id,
        job_id=row.job_id,
        job_version=row.job_version,
        status=row.status,
        scheduled_for=row.scheduled_for,
        created_at=row.created_at,
        updated_at=row.updated_at,
        instance_type=row.instance_type,
    )


def all_jobs(conn: Connection, *, with_specs: bool = True) -> dict[str, StoredJob]:
    """Every job, canceled ones included, by name (with `with_specs=False`, specs are `{}`)."""
    query = job_select(with_specs=with_specs)
    return {job.name: job for job in map(to_job, conn.execute(query))}


def current_specs(conn: Connection, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The current version's spec of each of `job_ids` that exists, by job id."""
    ids = sorted(set(job_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        query = (
            select(JOBS.c.id, JOB_VERSIONS.c.spec)
            .select_from(CURRENT_VERSION)
            .where(JOBS.c.id.in_(ids[start : start + 500]))
        )
        found.update((job_id, orjson.loads(spec)) for job_id, spec in conn.execute(query))
    return found


def read_serial(conn: Connection) -> int:
    value = conn.scalar(select(META.c.value).where(META.c.key == SERIAL_KEY))
    return int(value) if value is not None else 0


def job_by_id(conn: Connection, job_id: str) -> StoredJob | None:
    row = conn.execute(job_select().where(JOBS.c.id == job_id)).first()
    return None if row is None else to_job(row)


def list_jobs(
    conn: Connection,
    *,
    status: JobStatus | None = None,
    sort: str = "name",
    order: str = "asc",
    page: int = 1,
    size: int = 100,
) -> Page[StoredJob]:
    """Jobs filtered by status, sorted by name or creation time, one 1-based page of them."""
    column = JOB_SORT_COLUMNS.get(sort)
    if column is None:
        raise UsageError(f"unknown sort key {sort!r}; use one of: {', '.join(JOB_SORT_COLUMNS)}")
    check_page(page, size)
    query = job_select()
    count = select(func.count()).select_from(JOBS)
    if status is not None:
        query = query.where(JOBS.c.status == status)
        count = count.where(JOBS.c.status == status)
    ordering = [_ordered(column, order), _ordered(JOBS.c.id, order)]
    rows = conn.execute(query.order_by(*ordering).limit(size).offset((page - 1) * size))
    return Page([to_job(row) for row in rows], conn.scalar(count) or 0)


def list_instances(
    conn: Connection,
    *,
    job_id: str | None = None,
    status: InstanceStatus | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    page: int = 1,
    size: int = 100,
) -> Page[StoredInstance]:
    """Instances, newest first, filtered by job, status and creation time (after < t < before)."""
    check_page(page, size)
    conditions = []
    if job_id is not None:
        conditions.append(INSTANCES.c.job_id == job_id)
    if status is not None:
        conditions.append(INSTANCES.c.status == status)
    if created_after is not None:
        conditions.append(INSTANCES.c.created_at > created_after)
    if created_before is not None:
        conditions.append(INSTANCES.c.created_at < created_before)
    query = select(INSTANCES).where(*conditions)
    count = select(func.count()).select_from(INSTANCES).where(*conditions)
    rows = conn.execute(
        query.order_by(INSTANCES.c.created_at.desc(), INSTANCES.c.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    return Page([to_instance(row) for row in rows], conn.scalar(count) or 0)


def all_instances(conn: Connection, job_id: str | None = None) -> list[StoredInstance]:
    """Instances (of one job, or all), oldest first."""
    query = select(INSTANCES)
    if job_id is not None:
        query = query.where(INSTANCES.c.job_id == job_id)
    query = query.order_by(INSTANCES.c.created_at, INSTANCES.c.scheduled_for, INSTANCES.c.id)
    return [to_instance(row) for row in conn.execute(query)]


def instance_by_id(conn: Connection, instance_id: str) -> StoredInstance | None:
    row = conn.execute(select(INSTANCES).where(INSTANCES.c.id == instance_id)).first()
    return None if row is None else to_instance(row)


def job_versions(conn: Connection, job_id: str) -> list[JobVersion]:
    """Every applied version of a job, oldest first."""
    rows = conn.execute(
        select(JOB_VERSIONS).where(JOB_VERSIONS.c.job_id == job_id).order_by(JOB_VERSIONS.c.version)
    )
    return [
        JobVersion(
            spec=orjson.loads(row.spec),
            hash=row.hash,
            source_path=row.source_path,
            git_commit=row.git_commit,
            blob_id=row.blob_id,
            applied_at=row.applied_at,
        )
        for row in rows
    ]


def journal_records(conn: Connection, limit: int) -> list[JournalRecord]:
    """The newest `limit` apply journal rows, newest first."""
    rows = conn.execute(select(APPLY_JOURNAL).order_by(APPLY_JOURNAL.c.id.desc()).limit(limit))
    return [
        JournalRecord(
            id=row.id,
            serial=row.serial,
            entry=JournalEntry(
                started_at=row.started_at,
                finished_at=row.finished_at,
                actor=row.actor,
                git_commit=row.git_commit,
                plan_hash=row.plan_hash,
                outcome=row.outcome,
                counts={
                    "create": row.creates,
                    "update": row.updates,
                    "cancel": row.cancels,
                    "noop": row.noops,
                    "drift": row.drifts,
                },
            ),
        )
        for row in rows
    ]


def _ordered(column: Any, order: str) -> Any:
    if order == "asc":
        return column.asc()
    if order == "desc":
        return column.desc()
    raise UsageError(f"unknown sort order {order!r}; use asc or desc")


def check_page(page: int, size: int) -> None:
    if page < 1 or size < 1:
        raise UsageError(f"pagination needs page >= 1 and size >= 1 (got page {page}, size {size})")
