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

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from reconciler.errors import NotFound
from reconciler.model.enums import RunStatus
from reconciler.ports import ClaimedRun, RunRecord, StoredInstance
from state import execution, nodes
from state.execution import RUN_COLUMNS, to_run
from state.queries import to_instance
from state.tables import INSTANCES, JOBS, NODES, RUNS
from state.types import UtcDateTime

AGENT_TRANSPORT = "agent"


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


def _claimable(node_id: str, at: datetime) -> ColumnElement[bool]:
    """The node's runs a runner may take: offered and not started yet, or running on a lease
    that expired (the runner holding it died or lost the database for longer than the lease)."""
    return and_(
        RUNS.c.node_id == node_id,
        or_(
            and_(RUNS.c.status == RunStatus.PENDING, RUNS.c.offered_at.is_not(None)),
            and_(RUNS.c.status == RunStatus.RUNNING, RUNS.c.lease_expires_at < at),
        ),
    )


def claim_run(
    conn: Connection, node_id: str, owner: str, lease_seconds: float, at: datetime
) -> tuple[Any, StoredInstance, str, datetime] | None:
    """The claimed run, its instance, its job's name and the lease's end; None when the node
    has nothing to claim."""
    candidate = (
        select(RUNS.c.id)
        .where(_claimable(node_id, at))
        .order_by(RUNS.c.offered_at, RUNS.c.id)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        # A run another runner is claiming right now is skipped, not waited for.
        candidate = candidate.with_for_update(skip_locked=True)
    run_id = conn.scalar(candidate)
    if run_id is None:
        return None
    expires = at + timedelta(seconds=lease_seconds)
    row = conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(
            status=RunStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=expires,
            received_time=func.coalesce(
                RUNS.c.received_time, bindparam("b_received", at, type_=UtcDateTime())
            ),
            last_update_time=at,
        )
        .returning(*RUN_COLUMNS)
    ).one()
    found = conn.execute(
        select(INSTANCES, JOBS.c.name.label("job_name"))
        .select_from(INSTANCES.join(JOBS, JOBS.c.id == INSTANCES.c.job_id))
        .where(INSTANCES.c.id == row.instance_id)
    ).one()
    return to_run(row), to_instance(found), str(found.job_name), expires


def renew_lease(
    conn: Connection, run_id: str, owner: str, lease_seconds: float, at: datetime
) -> bool:
    result = conn.execute(
        update(RUNS)
        .where(_held(run_id, owner))
        .values(lease_expires_at=at + timedelta(seconds=lease_seconds), last_update_time=at)
    )
    return result.rowcount == 1


def release_run(conn: Connection, record: RunRecord, owner: str) -> bool:
    held = select(RUNS.c.id).where(_held(record.run_id, owner))
    if conn.dialect.name == "postgresql":
        # Lock the row: a concurrent `end_runs` (group timeout, cancel) waits for this
        # transaction and then finds the run finished, or wins and this release is refused.
        held = held.with_for_update()
    if conn.scalar(held) is None:
        if conn.scalar(select(RUNS.c.id).where(RUNS.c.id == record.run_id)) is None:
            raise NotFound(f"no run with id {record.run_id}")
        return False
    execution.record_runs(conn, [record])
    conn.execute(update(RUNS).where(RUNS.c.id == record.run_id).values(lease_expires_at=None))
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


def _held(run_id: str, owner: str) -> ColumnElement[bool]:
    return and_(
        RUNS.c.id == run_id, RUNS.c.status == RunStatus.RUNNING, RUNS.c.lease_owner == owner
    )


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + execution.CHUNK] for i in range(0, len(values), execution.CHUNK)]
