"""The scheduler daemon's writes and reads (DESIGN.md §5), behind `SqlStateStore`'s methods.

`schedule_occurrences` inserts the instances of recurring jobs under the unique key (job_id,
scheduled_for): a second daemon, or a restart, that asks for the same occurrence gets None back
instead of a second instance. It holds the apply lock, so an apply that changes or cancels a job
and a daemon that creates its next instance never interleave. `claim_instance` lets one daemon
(of several on one database) take a pending instance to execute.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus
from state.execution import CHUNK
from state.locking import lock_for_write
from state.tables import INSTANCES, JOBS, RUNS
from state.types import UtcDateTime

if TYPE_CHECKING:
    from reconciler.scheduler import Advance


def last_scheduled(conn: Connection, job_ids: Iterable[str]) -> dict[str, datetime]:
    """Job id -> the latest scheduled_for among its instances (uses the unique key's index)."""
    ids = list(dict.fromkeys(job_ids))
    latest: dict[str, datetime] = {}
    for start in range(0, len(ids), CHUNK):
        query = (
            select(INSTANCES.c.job_id, func.max(INSTANCES.c.scheduled_for))
            .where(INSTANCES.c.job_id.in_(ids[start : start + CHUNK]))
            .group_by(INSTANCES.c.job_id)
        )
        latest.update({job_id: when for job_id, when in conn.execute(query) if when is not None})
    return latest


def schedule_occurrences(
    engine: Engine, advances: Sequence[Advance], at: datetime, *, lock_timeout: float, holder: str
) -> list[str | None]:
    """Write `advances` in one transaction holding the apply lock (LockTimeout otherwise)."""
    with engine.connect() as conn:
        release = lock_for_write(conn, timeout=lock_timeout, holder=holder)
        try:
            created = [_advance(conn, advance, at) for advance in advances]
        except BaseException:
            release()
            conn.rollback()
            raise
        release()
        conn.commit()
        return created


def _advance(conn: Connection, advance: Advance, at: datetime) -> str | None:
    upcoming: Any = advance.next_execution_time
    if upcoming is not None:
        # Forward only: a daemon that read the job a moment before another one advanced it
        # must not move the cursor back (None, a rule that ran out, is final).
        stamp = bindparam("b_next", upcoming, type_=UtcDateTime())
        upcoming = case(
            (JOBS.c.next_execution_time > stamp, JOBS.c.next_execution_time), else_=stamp
        )
    still_current = conn.execute(
        update(JOBS)
        .where(
            JOBS.c.id == advance.job_id,
            JOBS.c.version == advance.version,
            JOBS.c.status == JobStatus.ACTIVE,
        )
        .values(next_execution_time=upcoming)
    )
    occurrence = advance.occurrence
    if still_current.rowcount != 1 or occurrence is None:
        return None
    instance_id = str(uuid.uuid4())
    runs: list[dict[str, Any]] = [
        {
            "id": a.run_id,
            "instance_id": instance_id,
            "node_id": a.node_id,
            "group_number": a.group_number,
            "position": position,
            "status": RunStatus.PENDING,
            "last_update_time": at,
            "reason": None,
        }
        for position, a in enumerate(occurrence.assignments)
    ]
    try:
        # A savepoint: on PostgreSQL a failed INSERT would otherwise abort the whole batch.
        with conn.begin_nested():
            conn.execute(
                insert(INSTANCES),
                {
                    "id": instance_id,
                    "job_id": advance.job_id,
                    "job_version": advance.version,
                    "status": InstanceStatus.PENDING,
                    "scheduled_for": occurrence.scheduled_for,
                    "instance_type": "scheduled",
                    "created_at": at,
                    "updated_at": at,
                },
            )
            if runs:
                conn.execute(insert(RUNS), runs)
    except IntegrityError:
        taken = select(INSTANCES.c.id).where(
            INSTANCES.c.job_id == advance.job_id,
            INSTANCES.c.scheduled_for == occurrence.scheduled_for,
        )
        if conn.scalar(taken) is None:
            raise  # not UNIQUE(job_id, scheduled_for): a real error
        return None  # this occurrence has its instance already (another daemon, a restart)
    conn.execute(
        update(JOBS)
        .where(JOBS.c.id == advance.job_id)
        .values(execution_count=JOBS.c.execution_count + 1)
    )
    return instance_id


def claim_instance(conn: Connection, instance_id: str, at: datetime) -> bool:
    """pending -> running, only if still pending: of several daemons, exactly one gets it."""
    result = conn.execute(
        update(INSTANCES)
        .where(INSTANCES.c.id == instance_id, INSTANCES.c.status == InstanceStatus.PENDING)
        .values(status=InstanceStatus.RUNNING, updated_at=at)
    )
    return result.rowcount == 1
