"""The StateStore contract, run the same on SQLite and on PostgreSQL (real databases, no mocks)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text, update
from sqlalchemy.exc import StatementError

from reconciler.errors import LockTimeout, NotFound, StateError, UsageError
from reconciler.model.enums import InstanceStatus, JobStatus
from reconciler.ports import (
    JobVersion,
    JournalEntry,
    StateStore,
    StateWriter,
)
from state import DuplicateJobName, DuplicateOccurrence, SqlStateStore
from state.migrating import current_revision, head_revision
from state.tables import INSTANCES, JOB_VERSIONS, JOBS, metadata
from state.writer import SqlStateWriter
from tests.state.conftest import StoreFactory
from tests.state.helpers import CET, T0, add_jobs, count_rows, new_job, spec, version

# -- jobs and versions ---------------------------------------------------------------------


def test_the_store_is_a_state_store(store: SqlStateStore) -> None:
    port: StateStore = store  # mypy checks the Protocol; the rest of the suite checks behaviour
    assert port.read().jobs == {}
    assert port.write(lambda w: isinstance(w, SqlStateWriter), lock_timeout=5, holder="test")


def test_insert_and_read_round_trip_specs_and_aware_timestamps(store: SqlStateStore) -> None:
    created = datetime(2026, 3, 1, 11, 30, 15, 123456, tzinfo=CET)  # == T0, another offset
    job = new_job("web", at=created, nxt=T0 + timedelta(days=1))
    s = spec("web", nested={"deep": [{"x": 1}, {"y": ["z"]}]})
    store.write(lambda w: w.insert_job(job, version(s)), lock_timeout=5, holder="test")

    stored = store.read().jobs["web"]
    assert stored.id == job.id
    assert stored.spec == s
    assert (stored.status, stored.managed, stored.version) == (JobStatus.ACTIVE, True, 1)
    assert stored.status is JobStatus.ACTIVE
    assert stored.hash == version(s).hash
    assert (stored.blob_id, stored.origin_path) == ("blob1", "jobs.d/web.json")
    assert stored.created_at == T0 and stored.created_at.tzinfo is UTC
    assert stored.modified_at == T0 and stored.modified_at.tzinfo is UTC
    assert stored.next_execution_time == T0 + timedelta(days=1)
    assert stored.next_execution_time is not None and stored.next_execution_time.tzinfo is UTC
    assert stored.execution_count == 0
    assert store.job_by_id(job.id) == stored
    without = store.read(with_specs=False).jobs["web"]
    assert without.spec == {} and without.hash == stored.hash
    assert store.specs([job.id, "missing"]) == {job.id: s}


def test_naive_datetimes_are_refused(store: SqlStateStore) -> None:
    naive = datetime(2026, 1, 1)  # the point of the test
    with pytest.raises(StatementError, match="naive datetime"):
        store.write(
            lambda w: w.insert_job(new_job("x", at=naive), version(spec("x"))),
            lock_timeout=5,
            holder="test",
        )
    assert store.read().jobs == {}


def test_versions_increment_and_are_all_kept(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    later = T0 + timedelta(hours=1)
    v2 = version(spec("web", "echo two"), at=later, commit="c2")
    v3 = JobVersion(spec("web", "echo three"), "h3", "jobs.d/moved/web.yaml", "c3", "blob3", later)
    nxt = later + timedelta(days=1)

    def mutation(writer: StateWriter) -> list[int]:
        return [writer.add_version(job.id, v2, None), writer.add_version(job.id, v3, nxt)]

    assert store.write(mutation, lock_timeout=5, holder="test") == [2, 3]
    stored = store.read().jobs["web"]
    assert (stored.version, stored.spec, stored.hash) == (3, v3.spec, "h3")
    assert (stored.blob_id, stored.origin_path) == ("blob3", "jobs.d/moved/web.yaml")
    assert (stored.modified_at, stored.next_execution_time) == (later, nxt)
    assert stored.created_at == T0
    history = store.job_versions(job.id)
    assert [v.spec["actions"] for v in history] == [
        spec("web")["actions"],
        v2.spec["actions"],
        v3.spec["actions"],
    ]
    assert [v.git_commit for v in history] == ["c0ffee", "c2", "c3"]
    assert store.write(lambda w: w.add_version(job.id, v2, None), lock_timeout=5, holder="t") == 4


def test_job_updates_status_schedule_and_management(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    at = T0 + timedelta(minutes=5)

    def mutation(writer: StateWriter) -> None:
        writer.set_status(job.id, JobStatus.CANCELED, at)
        writer.set_next_execution(job.id, at + timedelta(hours=1))
        writer.set_managed(job.id, False, None)

    store.write(mutation, lock_timeout=5, holder="test")
    stored = store.job_by_id(job.id)
    assert (stored.status, stored.modified_at) == (JobStatus.CANCELED, at)
    assert stored.next_execution_time == at + timedelta(hours=1)
    assert (stored.managed, stored.origin_path) == (False, None)


def test_unknown_job_and_duplicate_name_are_refused(store: SqlStateStore) -> None:
    add_jobs(store, "web")
    with pytest.raises(NotFound):
        store.write(
            lambda w: w.add_version("nope", version(spec("x")), None), lock_timeout=5, holder="test"
        )
    with pytest.raises(NotFound):
        store.write(
            lambda w: w.set_status("nope", JobStatus.CANCELED, T0), lock_timeout=5, holder="test"
        )
    with pytest.raises(DuplicateJobName, match="'web'"):
        add_jobs(store, "other", "web")
    with pytest.raises(DuplicateJobName, match="'twice'"):
        add_jobs(store, "twice", "twice")
    assert sorted(store.read().jobs) == ["web"]
    with pytest.raises(NotFound):
        store.job_by_id("nope")


# -- one transaction -----------------------------------------------------------------------


@pytest.mark.parametrize("flush_first", [False, True], ids=["buffered", "flushed"])
def test_a_failing_mutation_writes_nothing(store: SqlStateStore, flush_first: bool) -> None:
    existing = add_jobs(store, "kept")["kept"]
    store.write(lambda w: w.bump_serial(), lock_timeout=5, holder="test")
    before = store.read()

    def mutation(writer: StateWriter) -> None:
        for name in ("a", "b", "c"):
            job = new_job(name)
            writer.insert_job(job, version(spec(name)))
            writer.create_instance(job.id, 1, T0, T0)
        writer.add_version(existing.id, version(spec("kept", "echo new")), None)
        writer.cancel_pending_instances(existing.id, T0, running=True)
        writer.journal(JournalEntry(T0, T0, "test", None, "plan", "applied", {"create": 3}))
        writer.bump_serial()
        if flush_first:
            assert sorted(writer.jobs()) == ["a", "b", "c", "kept"]  # rows sent, not committed
        raise RuntimeError("crash halfway")

    with pytest.raises(RuntimeError, match="crash halfway"):
        store.write(mutation, lock_timeout=5, holder="test")
    assert store.read() == before
    assert store.instances() == []
    assert store.journal() == []
    assert count_rows(store, JOB_VERSIONS) == 1


# -- instances -----------------------------------------------------------------------------


def set_instance_status(store: SqlStateStore, instance_id: str, status: InstanceStatus) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(INSTANCES).where(INSTANCES.c.id == instance_id).values(status=status))


def test_cancel_pending_instances_counts(store: SqlStateStore) -> None:
    jobs = add_jobs(store, "a", "b")
    a, b = jobs["a"].id, jobs["b"].id

    def schedule(writer: StateWriter) -> list[str]:
        return [
            writer.create_instance(job_id, 1, T0 + timedelta(hours=h), T0)
            for job_id in (a, b)
            for h in range(3)
        ]

    a1, a2, a3, b1, _, _ = store.write(schedule, lock_timeout=5, holder="test")
    set_instance_status(store, a2, InstanceStatus.RUNNING)
    set_instance_status(store, a3, InstanceStatus.SUCCESS)
    at = T0 + timedelta(days=1)

    def cancel(running: bool) -> int:
        return store.write(
            lambda w: w.cancel_pending_instances(a, at, running=running),
            lock_timeout=5,
            holder="test",
        )

    assert cancel(running=False) == 1
    assert cancel(running=False) == 0
    assert cancel(running=True) == 1
    statuses = {i.id: i.status for i in store.instances(a)}
    assert statuses == {
        a1: InstanceStatus.CANCELED,
        a2: InstanceStatus.CANCELED,
        a3: InstanceStatus.SUCCESS,
    }
    assert {i.updated_at for i in store.instances(a) if i.status is InstanceStatus.CANCELED} == {at}
    assert {i.status for i in store.instances(b)} == {InstanceStatus.PENDING}
    assert store.instance(b1).status is InstanceStatus.PENDING


def test_cancel_counts_instances_created_in_the_same_transaction(store: SqlStateStore) -> None:
    old = add_jobs(store, "old")["old"]
    store.write(lambda w: w.create_instance(old.id, 1, T0, T0), lock_timeout=5, holder="test")

    def mutation(writer: StateWriter) -> list[int]:
        fresh = new_job("fresh")
        writer.insert_job(fresh, version(spec("fresh")))
        writer.create_instance(fresh.id, 1, T0, T0)
        writer.create_instance(old.id, 1, T0 + timedelta(hours=1), T0)
        counts = [writer.cancel_pending_instances(fresh.id, T0, running=False)]
        writer.jobs()  # flushes: the next instance is then a stored row, not a buffered one
        writer.create_instance(old.id, 1, T0 + timedelta(hours=2), T0)
        writer.jobs()
        counts.append(writer.cancel_pending_instances(old.id, T0, running=False))
        return counts

    assert store.write(mutation, lock_timeout=5, holder="test") == [1, 3]
    assert {i.status for i in store.instances()} == {InstanceStatus.CANCELED}
    assert len(store.instances()) == 4


def test_one_instance_per_occurrence(store: SqlStateStore) -> None:
    job = add_jobs(store, "web")["web"]
    first = store.write(lambda w: w.create_instance(job.id, 1, T0, T0), lock_timeout=5, holder="t")
    same_instant = T0.astimezone(CET)
    with pytest.raises(DuplicateOccurrence, match=job.id):
        store.write(
            lambda w: w.create_instance(job.id, 1, same_instant, T0), lock_timeout=5, holder="test"
        )

    def twice_in_one_transaction(writer: StateWriter) -> None:
        writer.create_instance(job.id, 1, T0 + timedelta(hours=1), T0)
        writer.create_instance(job.id, 1, T0 + timedelta(hours=1), T0)

    with pytest.raises(DuplicateOccurrence):
        store.write(twice_in_one_transaction, lock_timeout=5, holder="test")
    assert [i.id for i in store.instances()] == [first]
    instance = store.instance(first)
    assert (instance.job_id, instance.job_version, instance.scheduled_for) == (job.id, 1, T0)
    assert (instance.status, instance.instance_type) == (InstanceStatus.PENDING, "scheduled")
    with pytest.raises(NotFound):
        store.instance("nope")


# -- lock ----------------------------------------------------------------------------------


def test_a_second_writer_times_out_naming_the_holder(stores: StoreFactory) -> None:
    first, second = stores(), stores()  # two engines, as two processes would have
    held, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(writer: StateWriter) -> None:
        writer.bump_serial()
        held.set()
        release.wait(20)

    def run() -> None:
        try:
            first.write(hold, lock_timeout=5, holder="apply by alice@ci")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert held.wait(20)
        assert second.read().serial == 0  # readers are not blocked and see only commits
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            second.write(lambda w: w.bump_serial(), lock_timeout=0.5, holder="bob")
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(20)
    assert errors == []
    assert 0.4 <= waited < 5
    assert "apply by alice@ci" in caught.value.holder
    assert f"pid {os.getpid()}" in caught.value.holder
    assert "apply by alice@ci" in str(caught.value)
    assert second.read().serial == 1  # the blocked writer wrote nothing
    assert second.write(lambda w: w.bump_serial(), lock_timeout=5, holder="bob") == 2


# -- serial and journal --------------------------------------------------------------------


def test_serial_bumps_only_when_committed(store: SqlStateStore) -> None:
    assert store.read().serial == 0
    assert store.write(
        lambda w: [w.bump_serial(), w.bump_serial()], lock_timeout=5, holder="test"
    ) == [1, 2]
    assert store.write(lambda w: w.serial(), lock_timeout=5, holder="test") == 2

    def bump_then_fail(writer: StateWriter) -> None:
        writer.bump_serial()
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.write(bump_then_fail, lock_timeout=5, holder="test")
    assert store.read().serial == store.serial() == 2


def test_journal_rows(store: SqlStateStore) -> None:
    later = T0 + timedelta(seconds=3)
    applied = JournalEntry(
        T0,
        later,
        "alice",
        "abc123",
        "p1",
        "applied",
        {"create": 3, "update": 1, "cancel": 2, "noop": 7, "drift": 1},
    )
    noop = JournalEntry(later, later, "bob", None, "p2", "noop", {"noop": 14})

    def first(writer: StateWriter) -> None:
        writer.bump_serial()
        writer.journal(applied)

    store.write(first, lock_timeout=5, holder="test")
    store.write(lambda w: w.journal(noop), lock_timeout=5, holder="test")
    newest, oldest = store.journal()
    assert oldest.entry == applied and oldest.serial == 1
    assert newest.entry.counts == {"create": 0, "update": 0, "cancel": 0, "noop": 14, "drift": 0}
    assert (newest.entry.actor, newest.entry.git_commit, newest.serial) == ("bob", None, 1)
    assert newest.id > oldest.id
    assert [r.id for r in store.journal(limit=1)] == [newest.id]


# -- queries for the Chef-compatible CLI ---------------------------------------------------


def test_list_jobs_filters_sorts_and_pages(store: SqlStateStore) -> None:
    def mutation(writer: StateWriter) -> None:
        for i, name in enumerate(["delta", "alpha", "echo", "charlie", "bravo"]):
            writer.insert_job(new_job(name, at=T0 + timedelta(minutes=i)), version(spec(name)))

    store.write(mutation, lock_timeout=5, holder="test")
    ids = {name: job.id for name, job in store.read().jobs.items()}
    store.cancel_job(ids["echo"], T0)

    def names(**kwargs: Any) -> tuple[list[str], int]:
        items, total = store.list_jobs(**kwargs)
        return [job.name for job in items], total

    assert names() == (["alpha", "bravo", "charlie", "delta", "echo"], 5)
    assert names(order="desc", size=2) == (["echo", "delta"], 5)
    assert names(order="desc", size=2, page=3) == (["alpha"], 5)
    assert names(order="desc", size=2, page=4) == ([], 5)
    assert names(sort="createdAt") == (["delta", "alpha", "echo", "charlie", "bravo"], 5)
    assert names(sort="createdAt", order="desc", size=1) == (["bravo"], 5)
    assert names(status=JobStatus.CANCELED) == (["echo"], 1)
    assert names(status=JobStatus.ACTIVE, size=3)[1] == 4
    with pytest.raises(UsageError, match="sort key"):
        store.list_jobs(sort="color")
    with pytest.raises(UsageError, match="page >= 1"):
        store.list_jobs(page=0)


def test_list_instances_filters_and_pages(store: SqlStateStore) -> None:
    jobs = add_jobs(store, "a", "b")

    def mutation(writer: StateWriter) -> list[str]:
        return [
            writer.create_instance(jobs[name].id, 1, T0, T0 + timedelta(minutes=m))
            for m, name in enumerate(["a", "b"])
        ] + [
            writer.create_instance(
                jobs["a"].id, 1, T0 + timedelta(hours=1), T0 + timedelta(hours=1)
            )
        ]

    a1, b1, a2 = store.write(mutation, lock_timeout=5, holder="test")
    store.write(
        lambda w: w.cancel_pending_instances(jobs["b"].id, T0, running=False),
        lock_timeout=5,
        holder="test",
    )

    def ids(**kwargs: Any) -> tuple[list[str], int]:
        items, total = store.list_instances(**kwargs)
        return [i.id for i in items], total

    assert ids() == ([a2, b1, a1], 3)  # newest first
    assert ids(job_id=jobs["a"].id) == ([a2, a1], 2)
    assert ids(status=InstanceStatus.CANCELED) == ([b1], 1)
    assert ids(created_after=T0) == ([a2, b1], 2)
    assert ids(created_before=T0 + timedelta(hours=1)) == ([b1, a1], 2)
    assert ids(size=1, page=2) == ([b1], 3)


def test_cancel_job_and_add_unmanaged_job(store: SqlStateStore) -> None:
    s = spec("adhoc")
    job_id = store.insert_unmanaged("adhoc", version(s), at=T0, run_at=T0)
    job = store.job_by_id(job_id)
    assert (job.managed, job.origin_path, job.spec, job.version) == (False, None, s, 1)
    assert [i.status for i in store.instances(job_id)] == [InstanceStatus.PENDING]
    assert store.read().serial == 1
    with pytest.raises(DuplicateJobName):
        store.insert_unmanaged("adhoc", version(s), at=T0)

    assert store.cancel_job(job_id, T0 + timedelta(minutes=1)) == 1
    job = store.job_by_id(job_id)
    assert (job.status, job.modified_at) == (JobStatus.CANCELED, T0 + timedelta(minutes=1))
    assert [i.status for i in store.instances(job_id)] == [InstanceStatus.CANCELED]
    assert store.read().serial == 2
    with pytest.raises(NotFound):
        store.cancel_job("nope", T0)


# -- schema and migrations -----------------------------------------------------------------


def test_the_migrated_schema_matches_the_tables(store: SqlStateStore) -> None:
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_a_newer_database_is_refused(stores: StoreFactory) -> None:
    store = stores()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    message = (
        "the state database is at schema revision 9999_from_the_future, newer than this "
        f"courier (knows up to {head_revision()}); upgrade courier"
    )
    with pytest.raises(StateError) as caught:
        stores()
    assert str(caught.value) == message


def test_reopening_keeps_the_data(stores: StoreFactory) -> None:
    store = stores()
    job = add_jobs(store, "web")["web"]
    store.write(
        lambda w: (w.bump_serial(), w.create_instance(job.id, 1, T0, T0)),
        lock_timeout=5,
        holder="test",
    )
    before, instances = store.read(), store.instances()
    store.engine.dispose()

    again = stores()
    assert again.read() == before
    assert again.instances() == instances
    assert count_rows(again, JOBS) == 1
    with again.engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_concurrent_first_opens_migrate_once(stores: StoreFactory) -> None:
    barrier = threading.Barrier(3)
    opened: list[SqlStateStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait(10)
            opened.append(stores())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(opened) == 3
    assert all(s.read().serial == 0 for s in opened)
