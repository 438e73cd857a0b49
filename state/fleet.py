"""Fleet mode on the state store (DESIGN.md §5): the `FleetStore` port and node enrolment.

The orchestrator offers runs of `agent` nodes (`offer_runs`); each node's `courier runner` claims
them (`claim_run`: `FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), keeps a
lease by heartbeat (`renew_lease`) and reports the result (`release_run`) only while it still
holds the lease. `FleetMethods` is mixed into `SqlStateStore`; every method is one short
transaction that never takes the apply lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from reconciler.errors import NotFound
from reconciler.model.enums import RunStatus
from reconciler.ports import ClaimedRun, RunRecord, StoredInstance, StoredRun
from state import execution, nodes
from state.execution import RUN_COLUMNS, to_run
from state.tables import INSTANCES, JOBS, NODES, RUNS
from state.types import UtcDateTime

AGENT_TRANSPORT = "agent"
INSTANCE_COLUMNS = (
    INSTANCES.c.job_id.label("i_job_id"),
    INSTANCES.c.job_version.label("i_job_version"),
    INSTANCES.c.status.label("i_status"),
    INSTANCES.c.scheduled_for.label("i_scheduled_for"),
    INSTANCES.c.created_at.label("i_created_at"),
    INSTANCES.c.updated_at.label("i_updated_at"),
    INSTANCES.c.instance_type.label("i_instance_type"),
    JOBS.c.name.label("job_name"),
)


class FleetMethods:
    """The `FleetStore` port and `enroll_node`, for `SqlStateStore` (which provides the
    transactions and the spec cache declared here)."""

    _specs: dict[tuple[str, int], str]
    _specs_lock: threading.Lock

    def _reading(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # SqlStateStore's

    def _writing(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # SqlStateStore's

    def instance_spec(self, instance: StoredInstance) -> dict[str, Any]:
        raise NotImplementedError  # SqlStateStore's

    def offer_runs(self, run_ids: Sequence[str], at: datetime) -> list[str]:
        """pending -> offered; returns the ids that were still pending, in the given order.

        `offered_at` is set once: an offer repeated (a restarted orchestrator) keeps the first
        time, so runners keep taking the oldest offers first."""
        with self._writing() as conn:
            return offer_runs(conn, run_ids, at)

    def claim_run(
        self, node_id: str, owner: str, lease_seconds: float, at: datetime
    ) -> ClaimedRun | None:
        """Take one offered run of `node_id` (oldest offer first), or one whose lease expired,
        with a lease for `owner` until `at + lease_seconds`; None when there is none. Runners
        of one node never get the same run: PostgreSQL skips rows another claim has locked,
        SQLite claims under its write lock."""
        with self._writing() as conn:
            claimed = claim_run(conn, node_id, owner, lease_seconds, at)
            if claimed is None:
                return None
            run, instance, job_name, expires = claimed
            key = (instance.job_id, instance.job_version)
            if key not in self._specs:
                text = execution.version_spec(conn, *key)
                with self._specs_lock:
                    self._specs[key] = text
        return ClaimedRun(run, instance, job_name, self.instance_spec(instance), expires)

    def renew_lease(self, run_id: str, owner: str, lease_seconds: float, at: datetime) -> bool:
        """Extend `owner`'s lease to `at + lease_seconds`; False when it is lost (the run was
        canceled, timed out, or claimed by another runner after the lease expired)."""
        with self._writing() as conn:
            return renew_lease(conn, run_id, owner, lease_seconds, at)

    def release_run(self, record: RunRecord, owner: str) -> bool:
        """Record the finished run (steps, attempts, status) if `owner` still holds its lease;
        False, and nothing written, otherwise."""
        with self._writing() as conn:
            return release_run(conn, record, owner)

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        """The status of each of `run_ids` that exists."""
        with self._reading() as conn:
            return run_statuses(conn, run_ids)

    def enroll_node(
        self,
        node_id: str,
        name: str,
        attributes: Mapping[str, object],
        skills: Mapping[str, str],
        at: datetime,
    ) -> None:
        """Enroll an agent node or refresh it: gathered attributes and skills replace the
        stored ones, tags are kept, `enrolled_at` is the first enrolment, `last_seen_at` = `at`."""
        with self._writing() as conn:
            enroll_node(conn, node_id, name, attributes, skills, at)


# -- statements, each in the caller's transaction ------------------------------------------------


def offer_runs(conn: Connection, run_ids: Sequence[str], at: datetime) -> list[str]:
    ids = list(dict.fromkeys(run_ids))
    first = func.coalesce(RUNS.c.offered_at, bindparam("b_at", at, type_=UtcDateTime()))
    offered: set[str] = set()
    for chunk in _chunks(ids):
        statement = (
            update(RUNS)
            .where(RUNS.c.id.in_(chunk), RUNS.c.status == RunStatus.PENDING)
            .values(offered_at=first)
            .returning(RUNS.c.id)
        )
        offered.update(conn.scalars(statement))
    return [run_id for run_id in ids if run_id in offered]


def _at(name: str) -> Any:
    return bindparam(name, type_=UtcDateTime())


# Statements are built once (as `execution.RECORD_RUN` is): a runner claims every second or so,
# and building a statement costs more Python time than the SQL costs the server.

# The node's runs a runner may take: offered and not started yet, or running on a lease that
# expired (the runner holding it died, or lost the database for longer than the lease).
_CANDIDATE = (
    select(RUNS.c.id)
    .where(
        RUNS.c.node_id == bindparam("b_node"),
        or_(
            and_(RUNS.c.status == RunStatus.PENDING, RUNS.c.offered_at.is_not(None)),
            and_(RUNS.c.status == RunStatus.RUNNING, RUNS.c.lease_expires_at < _at("b_at")),
        ),
    )
    .order_by(RUNS.c.offered_at, RUNS.c.id)
    .limit(1)
)
_TAKE = update(RUNS).values(
    status=RunStatus.RUNNING,
    lease_owner=bindparam("b_owner"),
    lease_expires_at=_at("b_expires"),
    received_time=func.coalesce(RUNS.c.received_time, _at("b_at")),
    last_update_time=_at("b_at"),
)
_WITH_INSTANCE = INSTANCES.join(JOBS, JOBS.c.id == INSTANCES.c.job_id)

# PostgreSQL: one statement, one round trip. Pick the oldest offer, skipping rows that other
# runners' claims hold locked (never waiting for them), take it, and read its instance and job.
_PG_CLAIMED = (
    _TAKE.where(RUNS.c.id == _CANDIDATE.with_for_update(skip_locked=True).scalar_subquery())
    .returning(*RUN_COLUMNS)
    .cte("claimed")
)
PG_CLAIM = select(_PG_CLAIMED, *INSTANCE_COLUMNS).select_from(
    _PG_CLAIMED.join(_WITH_INSTANCE, INSTANCES.c.id == _PG_CLAIMED.c.instance_id)
)
# SQLite: the same in three statements; the store's BEGIN IMMEDIATE holds the only write lock.
SQLITE_TAKE = _TAKE.where(RUNS.c.id == bindparam("b_id"))
SQLITE_READ = (
    select(*RUN_COLUMNS, *INSTANCE_COLUMNS)
    .select_from(RUNS.join(_WITH_INSTANCE, INSTANCES.c.id == RUNS.c.instance_id))
    .where(RUNS.c.id == bindparam("b_id"))
)

_HELD = and_(
    RUNS.c.id == bindparam("b_id"),
    RUNS.c.status == RunStatus.RUNNING,
    RUNS.c.lease_owner == bindparam("b_owner"),
)
RENEW = (
    update(RUNS)
    .where(_HELD)
    .values(lease_expires_at=_at("b_expires"), last_update_time=_at("b_at"))
)
# Checking the lease and ending it is one UPDATE, which also locks the row: a concurrent
# `end_runs` (group timeout, cancel) waits for the release to commit and then finds the run
# finished, or went first and the release is refused.
END_LEASE = update(RUNS).where(_HELD).values(lease_expires_at=None).returning(RUNS.c.id)


def claim_run(
    conn: Connection, node_id: str, owner: str, lease_seconds: float, at: datetime
) -> tuple[StoredRun, StoredInstance, str, datetime] | None:
    """The claimed run, its instance, its job's name and the lease's end; None when the node
    has nothing to claim."""
    expires = at + timedelta(seconds=lease_seconds)
    params = {"b_node": node_id, "b_owner": owner, "b_at": at, "b_expires": expires}
    if conn.dialect.name == "postgresql":
        row = conn.execute(PG_CLAIM, params).first()
    else:
        run_id = conn.scalar(_CANDIDATE, params)
        if run_id is None:
            return None
        conn.execute(SQLITE_TAKE, {**params, "b_id": run_id})
        row = conn.execute(SQLITE_READ, {"b_id": run_id}).first()
    if row is None:
        return None
    instance = StoredInstance(
        id=row.instance_id,
        job_id=row.i_job_id,
        job_version=row.i_job_version,
        status=row.i_status,
        scheduled_for=row.i_scheduled_for,
        created_at=row.i_created_at,
        updated_at=row.i_updated_at,
        instance_type=row.i_instance_type,
    )
    return to_run(row), instance, str(row.job_name), expires


def renew_lease(
    conn: Connection, run_id: str, owner: str, lease_seconds: float, at: datetime
) -> bool:
    expires = at + timedelta(seconds=lease_seconds)
    params = {"b_id": run_id, "b_owner": owner, "b_at": at, "b_expires": expires}
    return conn.execute(RENEW, params).rowcount == 1


def release_run(conn: Connection, record: RunRecord, owner: str) -> bool:
    if conn.execute(END_LEASE, {"b_id": record.run_id, "b_owner": owner}).first() is None:
        if conn.scalar(select(RUNS.c.id).where(RUNS.c.id == record.run_id)) is None:
            raise NotFound(f"no run with id {record.run_id}")
        return False
    execution.record_runs(conn, [record])
    return True


def run_statuses(conn: Connection, run_ids: Sequence[str]) -> dict[str, RunStatus]:
    statuses: dict[str, RunStatus] = {}
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        query = select(RUNS.c.id, RUNS.c.status).where(RUNS.c.id.in_(chunk))
        statuses.update({run_id: RunStatus(status) for run_id, status in conn.execute(query)})
    return statuses


def enroll_node(
    conn: Connection,
    node_id: str,
    name: str,
    attributes: Mapping[str, object],
    skills: Mapping[str, str],
    at: datetime,
) -> None:
    # Tags are the operator's (nodes.yaml, the CLI), not the runner's: keep the stored ones.
    tags = conn.scalar(select(NODES.c.tags).where(NODES.c.id == node_id))
    declaration = (
        node_id,
        name,
        AGENT_TRANSPORT,
        dict(attributes),
        dict(tags or {}),
        dict(skills),
    )
    nodes.upsert_nodes(conn, [declaration], at)


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + execution.CHUNK] for i in range(0, len(values), execution.CHUNK)]
