"""The ExecutionStore contract and the run/node queries of the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from reconciler.errors import NotFound, UsageError
from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus, StepStatus
from reconciler.ports import (
    Assignment,
    AttemptResult,
    ExecutionStore,
    RunRecord,
    StateWriter,
    StepResult,
)
from state import SqlStateStore, StoredNode
from state.engine import open_engine
from state.migrating import _config, current_revision, head_revision
from state.tables import RUNS
from tests.state.helpers import T0, add_jobs, count_rows, new_job, spec, version

T1 = T0 + timedelta(minutes=1)
T2 = T0 + timedelta(minutes=2)


def schedule(
    store: SqlStateStore,
    job_id: str,
    groups: Sequence[Sequence[str]],
    *,
    scheduled_for: Any = T0,
    job_version: int = 1,
) -> tuple[str, list[str]]:
    """Create an instance with one run per node of each group; returns it and its run ids."""
    assignments = [
        Assignment(str(uuid.uuid4()), node, number)
        for number, nodes in enumerate(groups)
        for node in nodes
    ]
    instance_id = store.write(
        lambda w: w.create_instance(job_id, job_version, scheduled_for, T0, assignments),
        lock_timeout=5,
        holder="test",
    )
    return instance_id, [a.run_id for a in assignments]


def attempt(no: int, status: StepStatus = StepStatus.SUCCESS, **extra: Any) -> AttemptResult:
    start = T1 + timedelta(seconds=no)
    return AttemptResult(
        no, status, 0 if status is StepStatus.SUCCESS else 1, start, start, **extra
    )


def record(run_id: str, status: RunStatus = RunStatus.SUCCESS, **extra: Any) -> RunRecord:
    step = StepResult(0, StepStatus.SUCCESS, 1, attempts=(attempt(1),))
    return RunRecord(run_id, status, T1, T2, (step,), **extra)


def statuses(store: SqlStateStore, instance_id: str) -> list[RunStatus]:
    return [run.status for run in store.runs(instance_id)]


# -- instances and their runs ------------------------------------------------------------------


def test_the_store_is_an_execution_store(store: SqlStateStore) -> None:
    port: ExecutionStore = store  # mypy checks the Protocol
    assert port.open_instances() == []


def test_runs_are_created_with_the_instance_and_counted(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    # Group 1 listed first and node ids out of order: runs keep the order they were given.
    assignments = [
        Assignment("r-c", "node-z", 1),
        Assignment("r-a", "node-b", 0),
        Assignment("r-b", "node-a", 0),
        Assignment("r-d", "node-y", 1),
    ]
    instance_id = store.write(
        lambda w: w.create_instance(job.id, 1, T0, T0, assignments), lock_timeout=5, holder="t"
    )
    runs = store.runs(instance_id)
    assert [(r.id, r.node_id, r.group_number) for r in runs] == [
        ("r-a", "node-b", 0),
        ("r-b", "node-a", 0),
        ("r-c", "node-z", 1),
        ("r-d", "node-y", 1),
    ]
    assert {(r.instance_id, r.status, r.received_time, r.reason) for r in runs} == {
        (instance_id, RunStatus.PENDING, None, "")
    }
    assert store.job_by_id(job.id).execution_count == 1
    schedule(store, job.id, [["x"]], scheduled_for=T1)
    schedule(store, job.id, [], scheduled_for=T2)  # an instance without runs still counts
    assert store.job_by_id(job.id).execution_count == 3

    def fresh(writer: StateWriter) -> str:
        other = new_job("fresh")
        writer.insert_job(other, version(spec("fresh")))
        writer.create_instance(other.id, 1, T0, T1, [Assignment("r-f", "n", 0)])
        writer.create_instance(other.id, 1, T1, T1)
        return other.id

    fresh_id = store.write(fresh, lock_timeout=5, holder="test")
    assert store.job_by_id(fresh_id).execution_count == 2
    opened = store.open_instances()  # oldest first
    assert len(opened) == 5 and opened[0].id == instance_id
    assert [(i.created_at, i.scheduled_for) for i in opened] == [
        (T0, T0),
        (T0, T1),
        (T0, T2),
        (T1, T0),
        (T1, T1),
    ]


def test_instance_spec_is_the_spec_of_the_instance_version(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    first, _ = schedule(store, job.id, [["a"]])
    v2 = version(spec("web", "echo two"))
    store.write(lambda w: w.add_version(job.id, v2, None), lock_timeout=5, holder="test")
    second, _ = schedule(store, job.id, [["a"]], scheduled_for=T1, job_version=2)
    one, two = (store.instance(i) for i in (first, second))
    assert store.instance_spec(one) == spec("web")
    assert store.instance_spec(two) == v2.spec
    mutated = store.instance_spec(one)
    mutated["name"] = "changed"
    assert store.instance_spec(one) == spec("web")  # the cache hands out fresh copies
    with pytest.raises(NotFound, match="no version 9"):
        store.instance_spec(dataclasses.replace(one, job_version=9))


def test_start_instance_and_runs(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    instance_id, (a, b, c) = schedule(store, job.id, [["a", "b", "c"]])
    store.start_instance(instance_id, T1)
    assert (store.instance(instance_id).status, store.instance(instance_id).updated_at) == (
        InstanceStatus.RUNNING,
        T1,
    )
    store.end_runs([b], RunStatus.CANCELED, T1, "canceled by test")
    assert store.start_runs([c, b, a, c, "unknown"], T2) == [c, a]
    assert store.start_runs([a], T2) == []  # already running
    runs = {r.id: r for r in store.runs(instance_id)}
    assert (runs[a].status, runs[a].received_time, runs[a].last_update_time) == (
        RunStatus.RUNNING,
        T2,
        T2,
    )
    assert (runs[b].status, runs[b].received_time, runs[b].reason) == (
        RunStatus.CANCELED,
        None,
        "canceled by test",
    )
    store.start_instance(instance_id, T2)  # no longer pending: left alone
    assert store.instance(instance_id).updated_at == T1
    with pytest.raises(NotFound):
        store.start_instance("nope", T1)


def test_record_runs_writes_steps_and_attempts(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    instance_id, (a, b) = schedule(store, job.id, [["a", "b"]])
    store.start_runs([a, b], T1)
    first = StepResult(
        0,
        StepStatus.SUCCESS,
        2,
        inputs='{"who": "wörld", "token": "****"}',
        outputs='{"n": 1}',
        interpreter_path="chef-platform/shell-interpreter",
        interpreter_version="1.0.0",
        attempts=(
            attempt(1, StepStatus.FAILURE, reason="exit 1", evidence_key="ev/1"),
            attempt(2, evidence_key="ev/2"),
        ),
    )
    second = StepResult(1, StepStatus.SKIPPED, 0, reason="condition false")
    store.record_runs(
        [
            RunRecord(a, RunStatus.SUCCESS, T0, T2, (first, second)),
            RunRecord(b, RunStatus.FAILURE, T1, T2, (first,), reason="step 0 failed"),
        ]
    )
    assert store.steps(a) == [first, second]
    assert store.attempt(a, 0, 1) == first.attempts[0]
    run = store.run(b)
    assert (run.status, run.last_update_time, run.reason) == (
        RunStatus.FAILURE,
        T2,
        "step 0 failed",
    )
    assert run.received_time == T1  # set by start_runs, not overwritten
    # Recording again replaces the rows (same keys) instead of failing; in one batch, the last
    # record of a run wins.
    again = StepResult(
        0,
        StepStatus.FAILURE,
        2,
        outputs="{}",
        attempts=(attempt(1), attempt(2, StepStatus.FAILURE)),
    )
    store.record_runs([record(b), RunRecord(b, RunStatus.FAILURE, T1, T2, (again,))])
    assert store.steps(b) == [again]
    assert store.run(b).reason == ""
    assert store.instance_counts(instance_id)[RunStatus.SUCCESS] == 1


def test_a_late_result_replaces_timeout_but_not_canceled(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    instance_id, (late, canceled, never_started) = schedule(store, job.id, [["a", "b", "c"]])
    store.start_runs([late, canceled], T1)
    store.end_runs([late], RunStatus.TIMEOUT, T1, "group timed out")
    store.end_runs([canceled], RunStatus.CANCELED, T1, "canceled")
    store.record_runs(
        [record(late), record(canceled), record(never_started, RunStatus.FAILURE, reason="x")]
    )
    runs = {r.id: r for r in store.runs(instance_id)}
    assert (runs[late].status, runs[late].reason, runs[late].last_update_time) == (
        RunStatus.SUCCESS,
        "",
        T2,
    )
    assert (runs[canceled].status, runs[canceled].reason) == (RunStatus.CANCELED, "canceled")
    assert runs[canceled].last_update_time == T1
    assert len(store.steps(canceled)) == 1  # its steps are kept all the same
    assert (runs[never_started].status, runs[never_started].received_time) == (
        RunStatus.FAILURE,
        T1,  # the record's start
    )


def test_record_runs_is_all_or_nothing(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    _, (a,) = schedule(store, job.id, [["a"]])
    with pytest.raises(NotFound, match="no run with id missing-1 \\(and 1 more\\)"):
        store.record_runs([record(a), record("missing-1"), record("missing-2")])
    assert store.run(a).status is RunStatus.PENDING
    assert store.steps(a) == []
    store.record_runs([])


def test_end_runs_ends_only_open_runs(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    instance_id, (done, running, pending) = schedule(store, job.id, [["a"], ["b", "c"]])
    store.start_runs([done, running], T0)
    store.record_runs([record(done)])
    store.end_runs([done, running, pending, "unknown"], RunStatus.TIMEOUT, T2, "group 0 timed out")
    runs = {r.id: r for r in store.runs(instance_id)}
    assert (runs[done].status, runs[done].reason) == (RunStatus.SUCCESS, "")
    assert {
        (runs[i].status, runs[i].last_update_time, runs[i].reason) for i in (running, pending)
    } == {(RunStatus.TIMEOUT, T2, "group 0 timed out")}
    with pytest.raises(ValueError, match="final status"):
        store.end_runs([done], RunStatus.RUNNING, T2, "")


# -- finishing instances -----------------------------------------------------------------------


def test_finishing_the_last_instance_completes_an_immediate_job(store: SqlStateStore) -> None:
    jobs = add_jobs(store, "once", "other")
    job_id = jobs["once"].id
    first, _ = schedule(store, job_id, [["a"]])
    second, _ = schedule(store, job_id, [["a"]], scheduled_for=T1)
    store.start_instance(first, T0)
    store.finish_instance(first, InstanceStatus.SUCCESS, T1)
    assert store.instance(first).status is InstanceStatus.SUCCESS
    assert store.job_by_id(job_id).status is JobStatus.ACTIVE  # `second` is still open
    store.finish_instance(second, InstanceStatus.FAILURE, T2)
    job = store.job_by_id(job_id)
    assert (job.status, job.modified_at) == (JobStatus.COMPLETED, T2)
    assert [i.id for i in store.open_instances()] == []
    # A finished instance keeps its status; the job stays completed.
    store.finish_instance(second, InstanceStatus.SUCCESS, T2 + timedelta(hours=1))
    assert store.instance(second).status is InstanceStatus.FAILURE
    # A new instance makes the job active again.
    schedule(store, job_id, [["a"]], scheduled_for=T2)
    job = store.job_by_id(job_id)
    assert (job.status, job.execution_count) == (JobStatus.ACTIVE, 3)
    with pytest.raises(NotFound):
        store.finish_instance("nope", InstanceStatus.SUCCESS, T2)
    with pytest.raises(ValueError, match="final status"):
        store.finish_instance(second, InstanceStatus.RUNNING, T2)


def test_finishing_leaves_canceled_and_recurring_jobs_alone(store: SqlStateStore) -> None:
    recurring = add_jobs(store, "nightly", scheduleRule="RRULE:FREQ=DAILY")["nightly"]
    canceled = add_jobs(store, "gone")["gone"]
    nightly, _ = schedule(store, recurring.id, [["a"]])
    store.finish_instance(nightly, InstanceStatus.SUCCESS, T1)
    assert store.job_by_id(recurring.id).status is JobStatus.ACTIVE

    gone, _ = schedule(store, canceled.id, [["a"]])
    store.start_instance(gone, T0)
    store.cancel_job(canceled.id, T0)  # pending instances only: `gone` keeps running
    store.finish_instance(gone, InstanceStatus.SUCCESS, T1)
    assert store.instance(gone).status is InstanceStatus.SUCCESS
    assert store.job_by_id(canceled.id).status is JobStatus.CANCELED


# -- canceling -------------------------------------------------------------------------------


def test_canceling_instances_ends_their_runs(store: SqlStateStore) -> None:
    jobs = add_jobs(store, "pend", "run", "keep")
    pend, (p1, p2) = schedule(store, jobs["pend"].id, [["a", "b"]])
    run, (done, running, waiting) = schedule(store, jobs["run"].id, [["a", "b"], ["c"]])
    keep, (kept,) = schedule(store, jobs["keep"].id, [["a"]])
    store.start_instance(run, T0)
    store.start_runs([done, running], T0)
    store.record_runs([record(done)])

    def cancel(job: str, running: bool) -> int:
        return store.write(
            lambda w: w.cancel_pending_instances(jobs[job].id, T1, running=running),
            lock_timeout=5,
            holder="test",
        )

    assert cancel("pend", running=False) == 1
    assert {(r.status, r.last_update_time) for r in store.runs(pend)} == {(RunStatus.CANCELED, T1)}
    assert store.run(p1).reason == "the instance was canceled"
    assert cancel("run", running=False) == 0  # a running instance keeps its runs going
    assert statuses(store, run) == [RunStatus.SUCCESS, RunStatus.RUNNING, RunStatus.PENDING]
    assert cancel("run", running=True) == 1
    assert statuses(store, run) == [RunStatus.SUCCESS, RunStatus.CANCELED, RunStatus.CANCELED]
    assert store.start_runs([p2, running, waiting], T2) == []
    assert statuses(store, keep) == [RunStatus.PENDING]
    assert store.run(kept).reason == ""


def test_canceling_an_instance_created_in_the_same_transaction(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]

    def mutation(writer: StateWriter) -> str:
        instance_id = writer.create_instance(job.id, 1, T0, T0, [Assignment("r1", "a", 0)])
        writer.cancel_pending_instances(job.id, T1, running=False)
        return instance_id

    instance_id = store.write(mutation, lock_timeout=5, holder="test")
    assert store.instance(instance_id).status is InstanceStatus.CANCELED
    run = store.run("r1")
    assert (run.status, run.last_update_time, run.reason) == (
        RunStatus.CANCELED,
        T1,
        "the instance was canceled",
    )
    store.cancel_job(job.id, T2)
    assert store.job_by_id(job.id).execution_count == 1


def test_a_failing_apply_creates_no_runs(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]

    def mutation(writer: StateWriter) -> None:
        writer.create_instance(job.id, 1, T0, T0, [Assignment("r1", "a", 0)])
        writer.jobs()  # flushed, not committed
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        store.write(mutation, lock_timeout=5, holder="test")
    assert count_rows(store, RUNS) == 0
    assert store.job_by_id(job.id).execution_count == 0


# -- queries for the CLI -----------------------------------------------------------------------


def test_list_runs_filters_and_pages(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    instance_id, ids = schedule(store, job.id, [["a", "b", "c"], ["d", "e"]])
    store.start_runs(ids[:2], T0)
    store.record_runs([record(ids[0]), record(ids[3], RunStatus.FAILURE)])

    def listed(**kwargs: Any) -> tuple[list[str], int]:
        items, total = store.list_runs(instance_id, **kwargs)
        return [r.node_id for r in items], total

    assert listed() == (["a", "b", "c", "d", "e"], 5)
    assert listed(size=2, page=2) == (["c", "d"], 5)
    assert listed(size=2, page=4) == ([], 5)
    assert listed(group=1) == (["d", "e"], 2)
    assert listed(status=RunStatus.PENDING) == (["c", "e"], 2)
    assert listed(group=0, status=RunStatus.RUNNING) == (["b"], 1)
    assert listed(group=7) == ([], 0)
    assert store.instance_counts(instance_id) == {
        RunStatus.PENDING: 2,
        RunStatus.RUNNING: 1,
        RunStatus.SUCCESS: 1,
        RunStatus.FAILURE: 1,
        RunStatus.TIMEOUT: 0,
        RunStatus.CANCELED: 0,
    }
    with pytest.raises(UsageError):
        store.list_runs(instance_id, size=0)


def test_unknown_ids_are_not_found(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    empty, _ = schedule(store, job.id, [])
    _, (run_id,) = schedule(store, job.id, [["a"]], scheduled_for=T1)
    store.record_runs([record(run_id)])
    assert store.runs(empty) == []
    assert store.list_runs(empty) == ([], 0)
    for call in (
        lambda: store.runs("nope"),
        lambda: store.list_runs("nope"),
        lambda: store.instance_counts("nope"),
        lambda: store.run("nope"),
        lambda: store.steps("nope"),
        lambda: store.attempt("nope", 0, 1),
        lambda: store.attempt(run_id, 0, 2),
        lambda: store.attempt(run_id, 1, 1),
    ):
        with pytest.raises(NotFound):
            call()
    assert store.attempt(run_id, 0, 1) == attempt(1)


# -- nodes -----------------------------------------------------------------------------------


def test_nodes_are_upserted_and_listed(store: SqlStateStore) -> None:
    store.upsert_nodes(
        [
            (
                "n2",
                "web-2",
                "local",
                {"os": "linux"},
                {"role": "web"},
                {"shell-interpreter": "1.0"},
            ),
            ("n1", "web-1", "local", {}, {}, {}),
        ],
        T0,
    )
    store.upsert_nodes([("n1", "web-1", "agent", {"platform": "debian"}, {"tier": 1}, {})], T1)
    store.upsert_nodes([], T2)
    assert store.list_nodes() == [
        StoredNode("n1", "web-1", "agent", {"platform": "debian"}, {"tier": 1}, {}, T0, T1),
        StoredNode(
            "n2",
            "web-2",
            "local",
            {"os": "linux"},
            {"role": "web"},
            {"shell-interpreter": "1.0"},
            T0,
            T0,
        ),
    ]
    assert store.node("n2").tags == {"role": "web"}
    with pytest.raises(NotFound):
        store.node("n3")


# -- migrations ------------------------------------------------------------------------------


def test_a_database_at_0001_upgrades_and_keeps_its_data(state_url: str) -> None:
    engine = open_engine(state_url)
    try:
        with engine.begin() as conn:
            config = _config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        _fill_0001(engine)
        store = SqlStateStore(engine)
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        [instance] = store.open_instances()
        assert store.instance_spec(instance) == {"name": "old", "scheduleRule": "immediate"}
        [run] = store.runs(instance.id)
        assert (run.id, run.node_id, run.status, run.reason) == ("r1", "n1", RunStatus.RUNNING, "")
        [step] = store.steps("r1")
        assert (step.status, step.inputs, step.outputs) == (StepStatus.SUCCESS, '{"a": 1}', "")
        assert step.attempts == (AttemptResult(1, StepStatus.SUCCESS, 0, T0, T1),)
        assert store.job_by_id("j1").name == "old"
        # And the upgraded schema takes new rows.
        store.record_runs([record("r1")])
        assert store.run("r1").status is RunStatus.SUCCESS
    finally:
        engine.dispose()


def _fill_0001(engine: sa.Engine) -> None:
    """Rows as courier at revision 0001 wrote them (lightweight tables: no model of today)."""

    def table(name: str, *columns: str, **typed: sa.types.TypeEngine[Any]) -> sa.TableClause:
        return sa.table(
            name, *(sa.column(c) for c in columns), *(sa.column(c, t) for c, t in typed.items())
        )

    utc = sa.DateTime(timezone=True)
    when = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    later = T1.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T1
    jobs = table(
        "jobs",
        "id",
        "name",
        "status",
        "managed",
        "version",
        "spec_hash",
        "execution_count",
        created_at=utc,
        modified_at=utc,
    )
    versions = table("job_versions", "job_id", "version", "spec", "hash", applied_at=utc)
    instances = table(
        "instances",
        "id",
        "job_id",
        "job_version",
        "status",
        "instance_type",
        scheduled_for=utc,
        created_at=utc,
        updated_at=utc,
    )
    runs = table("runs", "id", "instance_id", "node_id", "group_number", "status")
    steps = table("steps", "run_id", "step_number", "status", "num_attempts", inputs=sa.JSON())
    attempts = table(
        "attempts",
        "run_id",
        "step_number",
        "attempt_no",
        "status",
        "exit_code",
        started_at=utc,
        ended_at=utc,
    )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(jobs),
            {
                "id": "j1",
                "name": "old",
                "status": "active",
                "managed": True,
                "version": 1,
                "spec_hash": "h",
                "execution_count": 1,
                "created_at": when,
                "modified_at": when,
            },
        )
        conn.execute(
            sa.insert(versions),
            {
                "job_id": "j1",
                "version": 1,
                "spec": '{"name":"old","scheduleRule":"immediate"}',
                "hash": "h",
                "applied_at": when,
            },
        )
        conn.execute(
            sa.insert(instances),
            {
                "id": "i1",
                "job_id": "j1",
                "job_version": 1,
                "status": "running",
                "instance_type": "scheduled",
                "scheduled_for": when,
                "created_at": when,
                "updated_at": when,
            },
        )
        conn.execute(
            sa.insert(runs),
            {
                "id": "r1",
                "instance_id": "i1",
                "node_id": "n1",
                "group_number": 0,
                "status": "running",
            },
        )
        conn.execute(
            sa.insert(steps),
            {
                "run_id": "r1",
                "step_number": 0,
                "status": "success",
                "num_attempts": 1,
                "inputs": {"a": 1},
            },
        )
        conn.execute(
            sa.insert(attempts),
            {
                "run_id": "r1",
                "step_number": 0,
                "attempt_no": 1,
                "status": "success",
                "exit_code": 0,
                "started_at": when,
                "ended_at": later,
            },
        )
