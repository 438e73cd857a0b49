"""The scheduler daemon's store methods (`state.occurrences`) on SQLite and PostgreSQL: one
instance per occurrence whoever asks, nothing written for a job that changed, a cursor that only
moves forward, and one claimer per pending instance.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus
from reconciler.ports import Assignment, StateWriter
from reconciler.scheduler import Advance, NewOccurrence
from state import SqlStateStore
from state.tables import INSTANCES, RUNS
from tests.state.conftest import StoreFactory
from tests.state.helpers import T0, count_rows, new_job, spec, version

AT = T0 + timedelta(minutes=1)


def recurring(store: SqlStateStore, name: str = "tick") -> Any:
    """A recurring job whose cursor (next execution time) is T0."""

    def mutation(writer: StateWriter) -> None:
        writer.insert_job(
            new_job(name, nxt=T0), version(spec(name, scheduleRule="RRULE:FREQ=MINUTELY"))
        )

    store.write(mutation, lock_timeout=5, holder="test")
    return store.read().jobs[name]


def advance(job: Any, when: Any = T0, runs: int = 2, *, next_at: Any = None) -> Advance:
    assignments = tuple(
        Assignment(f"{job.name}-{when:%H%M}-{n}-{job.version}", "a", 0) for n in range(runs)
    )
    return Advance(
        job.id,
        job.version,
        next_at if next_at is not None else when + timedelta(minutes=1),
        NewOccurrence(when, assignments),
    )


def schedule(store: SqlStateStore, *advances: Advance) -> list[str | None]:
    return store.schedule_occurrences(list(advances), AT, lock_timeout=5, holder="test")


def test_an_occurrence_becomes_one_instance_with_its_runs(store: SqlStateStore) -> None:
    job = recurring(store)
    [instance_id] = schedule(store, advance(job))
    assert instance_id is not None
    instance = store.instance(instance_id)
    assert (instance.scheduled_for, instance.status, instance.job_version) == (
        T0,
        InstanceStatus.PENDING,
        1,
    )
    runs = store.runs(instance_id)
    assert [r.status for r in runs] == [RunStatus.PENDING] * 2
    stored = store.job_by_id(job.id)
    assert stored.next_execution_time == T0 + timedelta(minutes=1)
    assert stored.execution_count == 1
    assert store.last_scheduled([job.id, "no-such-job"]) == {job.id: T0}


def test_the_same_occurrence_twice_is_refused_quietly(stores: StoreFactory) -> None:
    first, second = stores(), stores()
    job = recurring(first)
    assert schedule(first, advance(job))[0] is not None
    # Another daemon (its own engine) asks for the same occurrence, with other run ids.
    again = advance(job)
    again = Advance(
        again.job_id,
        again.version,
        again.next_execution_time,
        NewOccurrence(T0, (Assignment("other-run", "a", 0),)),
    )
    assert schedule(second, again) == [None]
    assert count_rows(first, INSTANCES) == 1
    assert count_rows(first, RUNS) == 2
    assert first.job_by_id(job.id).execution_count == 1


def test_a_batch_goes_on_past_a_duplicate(store: SqlStateStore) -> None:
    tick, tock = recurring(store, "tick"), recurring(store, "tock")
    schedule(store, advance(tick))
    created = schedule(store, advance(tick), advance(tock))
    assert created[0] is None and created[1] is not None
    assert store.last_scheduled([tick.id, tock.id]) == {tick.id: T0, tock.id: T0}


def test_racing_daemons_create_one_instance(stores: StoreFactory) -> None:
    job = recurring(stores())
    results: list[str | None] = []
    barrier = threading.Barrier(4)

    def race() -> None:
        store = stores()
        barrier.wait(10)
        results.extend(schedule(store, advance(job)))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4
    assert sum(r is not None for r in results) == 1
    assert count_rows(stores(), INSTANCES) == 1


def test_nothing_is_written_for_a_job_that_changed_or_was_canceled(store: SqlStateStore) -> None:
    job = recurring(store)
    stale = Advance(job.id, job.version + 1, T0 + timedelta(hours=1), advance(job).occurrence)
    assert schedule(store, stale) == [None]
    store.cancel_job(job.id, T0)
    assert schedule(store, advance(job)) == [None]
    assert count_rows(store, INSTANCES) == 0
    stored = store.job_by_id(job.id)
    assert stored.status is JobStatus.CANCELED
    assert stored.next_execution_time == T0


def test_the_cursor_only_moves_forward(store: SqlStateStore) -> None:
    job = recurring(store)
    later = T0 + timedelta(minutes=5)
    schedule(store, Advance(job.id, job.version, later))
    schedule(store, Advance(job.id, job.version, T0 + timedelta(minutes=2)))
    assert store.job_by_id(job.id).next_execution_time == later
    schedule(store, Advance(job.id, job.version, None))  # the rule ran out: final
    assert store.job_by_id(job.id).next_execution_time is None


def test_one_claimer_gets_a_pending_instance(stores: StoreFactory) -> None:
    first, second = stores(), stores()
    job = recurring(first)
    [instance_id] = schedule(first, advance(job))
    assert instance_id is not None
    assert first.claim_instance(instance_id, AT) is True
    assert second.claim_instance(instance_id, AT) is False
    assert first.instance(instance_id).status is InstanceStatus.RUNNING
