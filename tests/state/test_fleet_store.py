"""The FleetStore contract (offer, claim, lease, release) and node enrolment, on SQLite and
PostgreSQL (the PostgreSQL half is skipped unless COURIER_TEST_PG_URL is set)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest

from reconciler.errors import NotFound
from reconciler.model.enums import RunStatus, StepStatus
from reconciler.ports import Assignment, AttemptResult, FleetStore, RunRecord, StepResult
from state import SqlStateStore
from state.tables import RUNS, STEPS
from tests.state.conftest import StoreFactory
from tests.state.helpers import T0, add_jobs, count_rows, spec

LEASE = 30.0


def schedule(store: SqlStateStore, nodes: Sequence[str], job: str = "deploy") -> list[str]:
    """A job with one instance that has one run per node (group 0); returns the run ids."""
    job_id = add_jobs(store, job)[job].id
    assignments = [Assignment(str(uuid.uuid4()), node, 0) for node in nodes]
    store.write(
        lambda w: w.create_instance(job_id, 1, T0, T0, assignments),
        lock_timeout=5,
        holder="test",
    )
    return [a.run_id for a in assignments]


def record(run_id: str, status: RunStatus = RunStatus.SUCCESS) -> RunRecord:
    start, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    attempt = AttemptResult(1, StepStatus.SUCCESS, 0, start, end)
    step = StepResult(1, StepStatus.SUCCESS, 1, attempts=(attempt,))
    return RunRecord(run_id, status, start, end, (step,))


def test_the_store_is_a_fleet_store(store: SqlStateStore) -> None:
    port: FleetStore = store  # mypy checks the Protocol, isinstance what the orchestrator asks
    assert isinstance(port, FleetStore)


def test_only_offered_runs_are_claimed_oldest_offer_first(store: SqlStateStore) -> None:
    first, second, other = schedule(store, ["n1", "n1", "n2"])
    assert store.claim_run("n1", "r-a", LEASE, T0) is None  # created, not offered yet

    assert store.offer_runs([second, "missing"], T0) == [second]
    assert store.offer_runs([first, second], T0 + timedelta(seconds=1)) == [first, second]
    claimed = store.claim_run("n1", "r-a", LEASE, T0 + timedelta(seconds=2))
    assert claimed is not None
    # `second` was offered first, and offering it again kept that time
    assert claimed.run.id == second
    assert claimed.job_name == "deploy"
    assert claimed.spec == spec("deploy")
    assert claimed.instance.id == claimed.run.instance_id
    assert claimed.lease_expires_at == T0 + timedelta(seconds=2 + LEASE)
    assert claimed.run.status is RunStatus.RUNNING
    assert claimed.run.received_time == T0 + timedelta(seconds=2)

    again = store.claim_run("n1", "r-a", LEASE, T0 + timedelta(seconds=3))
    assert again is not None
    assert again.run.id == first
    assert store.claim_run("n1", "r-a", LEASE, T0 + timedelta(seconds=4)) is None
    assert store.claim_run("n2", "r-b", LEASE, T0 + timedelta(seconds=4)) is None  # not offered
    assert store.run_statuses([first, second, other, "missing"]) == {
        first: RunStatus.RUNNING,
        second: RunStatus.RUNNING,
        other: RunStatus.PENDING,
    }


def test_a_canceled_run_is_neither_offered_nor_claimed(store: SqlStateStore) -> None:
    run, offered = schedule(store, ["n1", "n1"])
    store.offer_runs([offered], T0)
    store.end_runs([run, offered], RunStatus.CANCELED, T0, "canceled")
    assert store.offer_runs([run], T0) == []
    assert store.claim_run("n1", "r-a", LEASE, T0) is None


@pytest.mark.parametrize("nodes", [1, 3])
def test_concurrent_claims_take_each_run_exactly_once(stores: StoreFactory, nodes: int) -> None:
    setup = stores()
    node_ids = [f"n{i}" for i in range(nodes)]
    run_ids = schedule(setup, [node_ids[i % nodes] for i in range(36)])
    setup.offer_runs(run_ids, T0)
    workers = 8
    # One store (so one engine and pool) per runner, as separate processes would have.
    runners = [stores() for _ in range(workers)]
    barrier = threading.Barrier(workers)
    claimed: list[list[str]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        node = node_ids[index % nodes]
        try:
            barrier.wait(30)
            while True:
                got = runners[index].claim_run(node, f"runner-{index}", LEASE, T0)
                if got is None:
                    return
                claimed[index].append(got.run.id)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    every = [run_id for ids in claimed for run_id in ids]
    assert sorted(every) == sorted(run_ids)  # each run once: none lost, none twice
    assert set(setup.run_statuses(run_ids).values()) == {RunStatus.RUNNING}


def test_an_expired_lease_is_claimed_again_and_the_old_owner_loses_it(
    store: SqlStateStore,
) -> None:
    [run_id] = schedule(store, ["n1"])
    store.offer_runs([run_id], T0)
    assert store.claim_run("n1", "dead", 3, T0) is not None
    assert store.renew_lease(run_id, "dead", 3, T0 + timedelta(seconds=2))  # now until T0+5
    assert store.claim_run("n1", "next", 3, T0 + timedelta(seconds=4)) is None

    taken = store.claim_run("n1", "next", 3, T0 + timedelta(seconds=6))
    assert taken is not None
    assert taken.run.id == run_id
    assert taken.run.received_time == T0  # the first claim's
    assert not store.renew_lease(run_id, "dead", 3, T0 + timedelta(seconds=7))
    assert not store.release_run(record(run_id, RunStatus.FAILURE), "dead")
    assert count_rows(store, STEPS) == 0
    assert store.renew_lease(run_id, "next", 3, T0 + timedelta(seconds=7))
    assert store.release_run(record(run_id), "next")
    assert store.run(run_id).status is RunStatus.SUCCESS
    [step] = store.steps(run_id)
    assert step.status is StepStatus.SUCCESS
    # A finished run is not claimable, however old its lease.
    assert store.claim_run("n1", "later", 3, T0 + timedelta(hours=1)) is None


def test_a_late_heartbeat_keeps_a_lease_nobody_took(store: SqlStateStore) -> None:
    [run_id] = schedule(store, ["n1"])
    store.offer_runs([run_id], T0)
    store.claim_run("n1", "slow", 3, T0)
    assert store.renew_lease(run_id, "slow", 3, T0 + timedelta(seconds=10))
    assert store.claim_run("n1", "other", 3, T0 + timedelta(seconds=11)) is None


@pytest.mark.parametrize("ending", [RunStatus.CANCELED, RunStatus.TIMEOUT])
def test_the_lease_is_lost_when_the_run_is_canceled_or_times_out(
    store: SqlStateStore, ending: RunStatus
) -> None:
    [run_id] = schedule(store, ["n1"])
    store.offer_runs([run_id], T0)
    store.claim_run("n1", "r-a", LEASE, T0)
    store.end_runs([run_id], ending, T0 + timedelta(seconds=1), "stopped")
    assert not store.renew_lease(run_id, "r-a", LEASE, T0 + timedelta(seconds=2))
    assert not store.release_run(record(run_id), "r-a")
    assert store.run(run_id).status is ending
    assert count_rows(store, STEPS) == 0


def test_a_release_by_another_owner_is_refused(store: SqlStateStore) -> None:
    [run_id] = schedule(store, ["n1"])
    store.offer_runs([run_id], T0)
    store.claim_run("n1", "r-a", LEASE, T0)
    assert not store.release_run(record(run_id), "r-b")
    assert not store.renew_lease(run_id, "r-b", LEASE, T0)
    assert store.run(run_id).status is RunStatus.RUNNING
    assert store.release_run(record(run_id), "r-a")
    assert not store.release_run(record(run_id), "r-a")  # released already
    with pytest.raises(NotFound):
        store.release_run(record("missing"), "r-a")


def test_the_lease_columns_follow_the_run(store: SqlStateStore) -> None:
    [run_id] = schedule(store, ["n1"])
    store.offer_runs([run_id], T0)
    store.claim_run("n1", "r-a", LEASE, T0)
    store.renew_lease(run_id, "r-a", LEASE, T0 + timedelta(seconds=5))
    with store.engine.connect() as conn:
        row = conn.execute(RUNS.select().where(RUNS.c.id == run_id)).one()
    assert (row.lease_owner, row.lease_expires_at) == ("r-a", T0 + timedelta(seconds=35))
    assert (row.offered_at, row.last_update_time) == (T0, T0 + timedelta(seconds=5))
    store.release_run(record(run_id), "r-a")
    with store.engine.connect() as conn:
        row = conn.execute(RUNS.select().where(RUNS.c.id == run_id)).one()
    assert (row.lease_owner, row.lease_expires_at) == ("r-a", None)  # who ran it stays


def test_enroll_node_inserts_then_refreshes_keeping_tags(store: SqlStateStore) -> None:
    store.enroll_node("n1", "web-1", {"os": "linux"}, {"shell-interpreter": "1.0.0"}, T0)
    store.upsert_nodes([("n1", "web-1", "agent", {}, {"role": "web"}, {})], T0)
    later = T0 + timedelta(minutes=5)
    store.enroll_node("n1", "web-1b", {"os": "linux", "cpu_count": 2}, {"courier": "1"}, later)
    node = store.node("n1")
    assert (node.name, node.transport) == ("web-1b", "agent")
    assert node.attributes == {"os": "linux", "cpu_count": 2}
    assert node.skills == {"courier": "1"}
    assert node.tags == {"role": "web"}
    assert (node.enrolled_at, node.last_seen_at) == (T0, later)
