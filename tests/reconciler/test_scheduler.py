"""The daemon's tick (`reconciler.scheduler`) with a fake clock on a real SQLite state: one
instance per occurrence, even with two schedulers on one database; exception windows; the
missed-run policy after downtime; long backlogs scanned across ticks, never silently capped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler import scheduler as scheduler_module
from reconciler import scheduling
from reconciler.applying import ApplyOptions, apply
from reconciler.interpreters import BUILTIN_SKILLS
from reconciler.model.enums import JobStatus
from reconciler.nodes.inventory import Inventory, inventory_from_document
from reconciler.ports import StoredInstance
from reconciler.scheduler import MissedRuns, Policy, Scheduler, decide
from state import SqlStateStore, open_engine
from state.tables import RUNS
from tests.reconciler.scheduler_support import desired, job_doc
from tests.state.helpers import count_rows

T0 = datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class FakeClock:
    def __init__(self, moment: datetime = T0) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def inventory() -> Inventory:
    nodes = [{"id": n, "transport": "local"} for n in ("web-1", "web-2")]
    return inventory_from_document({"nodes": nodes}, {}, BUILTIN_SKILLS)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Callable[[], SqlStateStore]]:
    """Stores on one SQLite file, each with its own engine, as separate daemons would have."""
    opened: list[SqlStateStore] = []

    def make() -> SqlStateStore:
        store = SqlStateStore(open_engine(f"sqlite:///{tmp_path / 'state.db'}"))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.engine.dispose()


@pytest.fixture
def store(stores: Callable[[], SqlStateStore]) -> SqlStateStore:
    return stores()


class Lines(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)

    def having(self, text: str) -> list[str]:
        return [line for line in self if text in line]


def make_scheduler(
    store: SqlStateStore,
    clock: FakeClock,
    inventory: Inventory,
    policy: Policy | None = None,
    log: Lines | None = None,
) -> Scheduler:
    return Scheduler(store, clock, inventory, policy, log=log)


def applied(
    store: SqlStateStore, at: datetime, inventory: Inventory, *docs: dict[str, Any]
) -> None:
    apply([desired(d) for d in docs], store, at, ApplyOptions(inventory=inventory))


def scheduled(store: SqlStateStore, name: str) -> list[datetime]:
    job = store.read().jobs[name]
    return sorted(i.scheduled_for for i in store.instances(job.id))


def instances_of(store: SqlStateStore, name: str) -> list[StoredInstance]:
    return store.instances(store.read().jobs[name].id)


# -- one instance per occurrence ----------------------------------------------------------------


def test_a_minutely_job_gets_one_instance_per_minute(
    store: SqlStateStore, inventory: Inventory
) -> None:
    clock = FakeClock()
    applied(store, T0, inventory, job_doc("tick"))
    log = Lines()
    sched = make_scheduler(store, clock, inventory, log=log)
    # Ticks every 5 seconds for 5 minutes: the rule starts at the job's creation (T0).
    for second in range(0, 5 * 60, 5):
        clock.moment = T0 + timedelta(seconds=second, milliseconds=300)
        sched.tick()
    assert scheduled(store, "tick") == [T0 + n * MINUTE for n in range(5)]
    job = store.read().jobs["tick"]
    assert job.next_execution_time == T0 + 5 * MINUTE
    assert job.execution_count == 5
    assert len(log.having("tick: instance ")) == 5
    assert not log.having("missed")
    # Each instance got its runs, fixed at creation: one per node of the group.
    for instance in instances_of(store, "tick"):
        assert sorted(r.node_id for r in store.runs(instance.id)) == ["web-1", "web-2"]


def test_nothing_is_due_between_occurrences(store: SqlStateStore, inventory: Inventory) -> None:
    clock = FakeClock(T0 + timedelta(seconds=1))
    applied(store, T0, inventory, job_doc("tick"))
    sched = make_scheduler(store, clock, inventory)
    assert len(sched.tick().created) == 1
    for second in (2, 30, 59):
        clock.moment = T0 + timedelta(seconds=second)
        assert sched.tick().created == ()
    clock.moment = T0 + MINUTE
    assert [c.scheduled_for for c in sched.tick().created] == [T0 + MINUTE]


def tick_together(schedulers: list[Scheduler]) -> None:
    """Start the schedulers' ticks at the same moment, each in its own thread."""
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def tick(sched: Scheduler) -> None:
        try:
            barrier.wait(5)
            sched.tick()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


def test_two_schedulers_on_one_database_create_each_occurrence_once(
    stores: Callable[[], SqlStateStore], inventory: Inventory
) -> None:
    first, second = stores(), stores()
    applied(first, T0, inventory, job_doc("tick"), job_doc("tock"))
    clock = FakeClock()
    schedulers = [make_scheduler(s, clock, inventory) for s in (first, second)]
    for minute in range(4):
        clock.moment = T0 + minute * MINUTE + timedelta(seconds=2)
        tick_together(schedulers)
    for name in ("tick", "tock"):
        times = scheduled(first, name)
        assert times == [T0 + n * MINUTE for n in range(4)], name
        assert first.read().jobs[name].execution_count == 4
    # The loser of each race left no runs behind: two per instance, and no more.
    assert count_rows(first, RUNS) == 2 * 2 * 4


def test_a_restarted_scheduler_does_not_repeat_an_occurrence(
    stores: Callable[[], SqlStateStore], inventory: Inventory
) -> None:
    store = stores()
    applied(store, T0, inventory, job_doc("tick"))
    clock = FakeClock(T0 + timedelta(seconds=3))
    make_scheduler(store, clock, inventory).tick()
    clock.moment += timedelta(seconds=10)
    assert make_scheduler(stores(), clock, inventory).tick().created == ()
    assert scheduled(store, "tick") == [T0]


# -- exception windows ---------------------------------------------------------------------------


def test_exception_windows_skip_occurrences(store: SqlStateStore, inventory: Inventory) -> None:
    # A 2-minute blackout every 10 minutes, starting at T0 + 2 min: 03:02 and 03:03 are skipped.
    start = (T0 + 2 * MINUTE).strftime("%Y%m%dT%H%M%SZ")
    window = {"rrule": f"RRULE:DTSTART={start};FREQ=MINUTELY;INTERVAL=10", "duration": 2}
    applied(store, T0, inventory, job_doc("tick", exceptionRules=[window]))
    clock = FakeClock()
    sched = make_scheduler(store, clock, inventory)
    for minute in range(7):
        clock.moment = T0 + minute * MINUTE + timedelta(seconds=1)
        sched.tick()
    expected = [0, 1, 4, 5, 6]
    assert scheduled(store, "tick") == [T0 + n * MINUTE for n in expected]
    # Inside the window the next execution time already points past it.
    assert store.read().jobs["tick"].next_execution_time == T0 + 7 * MINUTE


# -- missed runs ---------------------------------------------------------------------------------


def after_downtime(
    store: SqlStateStore, inventory: Inventory, policy: Policy, late: timedelta
) -> tuple[Lines, FakeClock]:
    """One instance at T0, then a new scheduler `late` after T0 + 3 min (3 missed minutes)."""
    applied(store, T0, inventory, job_doc("tick"))
    clock = FakeClock(T0 + timedelta(seconds=1))
    make_scheduler(store, clock, inventory).tick()
    assert scheduled(store, "tick") == [T0]
    clock.moment = T0 + 3 * MINUTE + late
    log = Lines()
    make_scheduler(store, clock, inventory, policy, log).tick()
    return log, clock


def test_catch_up_creates_one_instance_for_the_latest_missed(
    store: SqlStateStore, inventory: Inventory
) -> None:
    log, _ = after_downtime(store, inventory, Policy(), timedelta(seconds=40))
    assert scheduled(store, "tick") == [T0, T0 + 3 * MINUTE]
    [line] = log.having("missed")
    assert line.startswith("3 missed occurrences of tick; catching up with the latest")
    assert "2026-11-24T03:03:00Z" in line and "skipping 2" in line
    assert store.read().jobs["tick"].next_execution_time == T0 + 4 * MINUTE


def test_catch_up_after_a_long_downtime_is_still_one_instance(
    store: SqlStateStore, inventory: Inventory
) -> None:
    log, _ = after_downtime(store, inventory, Policy(), timedelta(days=2))
    latest = T0 + 3 * MINUTE + timedelta(days=2)
    assert scheduled(store, "tick") == [T0, latest]
    assert log.having(f"{3 + 2 * 24 * 60} missed occurrences of tick")


def test_skip_runs_only_the_current_occurrence(store: SqlStateStore, inventory: Inventory) -> None:
    policy = Policy(MissedRuns.SKIP, on_time=timedelta(seconds=10))
    log, _ = after_downtime(store, inventory, policy, timedelta(seconds=4))
    # 03:03 came due 4 s ago: current, so it runs; 03:01 and 03:02 were missed and are skipped.
    assert scheduled(store, "tick") == [T0, T0 + 3 * MINUTE]
    [line] = log.having("skipped")
    assert line.startswith("2 missed occurrence(s) of tick skipped")


def test_skip_creates_nothing_when_every_due_occurrence_is_old(
    store: SqlStateStore, inventory: Inventory
) -> None:
    policy = Policy(MissedRuns.SKIP, on_time=timedelta(seconds=10))
    log, clock = after_downtime(store, inventory, policy, timedelta(seconds=30))
    assert scheduled(store, "tick") == [T0]
    [line] = log.having("skipped")
    assert line.startswith("3 missed occurrence(s) of tick skipped")
    assert store.read().jobs["tick"].next_execution_time == T0 + 4 * MINUTE
    # It is not repeated on the next tick, and the next occurrence runs on time.
    sched = make_scheduler(store, clock, inventory, policy, log)
    clock.moment += timedelta(seconds=5)
    assert sched.tick().created == ()
    clock.moment = T0 + 4 * MINUTE + timedelta(seconds=2)
    assert [c.scheduled_for for c in sched.tick().created] == [T0 + 4 * MINUTE]
    assert len(log.having("skipped")) == 1


def test_occurrences_from_before_the_job_existed_are_not_missed(
    store: SqlStateStore, inventory: Inventory
) -> None:
    # DTSTART three minutes before the apply: the job starts with the first occurrence at or
    # after its creation, as Kubernetes CronJobs do; nothing is caught up.
    start = (T0 - 3 * MINUTE).strftime("%Y%m%dT%H%M%SZ")
    applied(store, T0, inventory, job_doc("tick", f"RRULE:DTSTART={start};FREQ=MINUTELY"))
    assert store.read().jobs["tick"].next_execution_time == T0
    clock = FakeClock(T0 + timedelta(seconds=20))
    log = Lines()
    make_scheduler(store, clock, inventory, log=log).tick()
    assert scheduled(store, "tick") == [T0]
    assert not log.having("missed")


def test_a_job_applied_while_no_daemon_ran_catches_up_once(
    store: SqlStateStore, inventory: Inventory
) -> None:
    applied(store, T0, inventory, job_doc("tick"))  # never ticked: T0 .. T0+3 min are missed
    clock = FakeClock(T0 + 3 * MINUTE + timedelta(seconds=5))
    log = Lines()
    make_scheduler(store, clock, inventory, log=log).tick()
    assert scheduled(store, "tick") == [T0 + 3 * MINUTE]
    assert log.having("4 missed occurrences of tick; catching up with the latest")


@pytest.mark.parametrize(
    ("missed", "due", "age_s", "runs", "skipped"),
    [
        (MissedRuns.CATCH_UP, 0, 0, False, 0),
        (MissedRuns.CATCH_UP, 1, 3600, True, 0),
        (MissedRuns.CATCH_UP, 5, 3600, True, 4),
        (MissedRuns.SKIP, 1, 5, True, 0),
        (MissedRuns.SKIP, 1, 11, False, 1),
        (MissedRuns.SKIP, 3, 10, True, 2),
        (MissedRuns.SKIP, 3, 3600, False, 3),
    ],
)
def test_decide(missed: MissedRuns, due: int, age_s: int, runs: bool, skipped: int) -> None:
    now = T0 + timedelta(hours=1)
    latest = now - timedelta(seconds=age_s) if due else None
    decision = decide(due, latest, now, Policy(missed, on_time=timedelta(seconds=10)))
    assert (decision.run is not None, decision.skipped) == (runs, skipped)
    if runs:
        assert decision.run == latest


# -- long backlogs: scanned across ticks, and said so -------------------------------------------


def test_a_backlog_beyond_the_scan_cap_is_scanned_on_across_ticks(
    store: SqlStateStore, inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduling, "MAX_DUE_SCAN", 10)
    monkeypatch.setattr(scheduler_module, "MAX_DUE_SCAN", 10)
    applied(store, T0 - 24 * MINUTE, inventory, job_doc("tick"))  # 25 minutes without a daemon
    clock = FakeClock(T0 + timedelta(seconds=1))
    log = Lines()
    sched = make_scheduler(store, clock, inventory, Policy(scan_chunks=1), log)
    reports = [sched.tick() for _ in range(3)]
    assert [r.deferred for r in reports] == [1, 1, 0]
    assert [len(r.created) for r in reports] == [0, 0, 1]
    continuing = log.having("continuing next tick")
    assert len(continuing) == 2
    assert continuing[0].startswith("tick: 10 occurrences due so far, up to 2026-11-24T02:45:00Z")
    assert log.having("25 missed occurrences of tick; catching up with the latest")
    assert scheduled(store, "tick") == [T0]


# -- what the scheduler leaves alone ---------------------------------------------------------------


def test_immediate_and_canceled_jobs_are_not_scheduled(
    store: SqlStateStore, inventory: Inventory
) -> None:
    applied(store, T0, inventory, job_doc("once", "immediate"), job_doc("tick"))
    job = store.read().jobs["tick"]
    store.cancel_job(job.id, T0)
    clock = FakeClock(T0 + 5 * MINUTE)
    assert make_scheduler(store, clock, inventory).tick().created == ()
    assert len(instances_of(store, "once")) == 1  # apply's own, nothing more
    assert instances_of(store, "tick") == []
    assert store.read().jobs["tick"].status is JobStatus.CANCELED


class ApplyDuringTick:
    """The store, with an apply of `doc` slipped in after the tick has read the specs."""

    def __init__(self, store: SqlStateStore, inventory: Inventory, doc: dict[str, Any]) -> None:
        self.store, self.inventory, self.doc = store, inventory, doc
        self.read = store.read
        self.last_scheduled = store.last_scheduled
        self.schedule_occurrences = store.schedule_occurrences

    def specs(self, ids: Any) -> dict[str, dict[str, Any]]:
        found = self.store.specs(ids)
        applied(self.store, T0 + timedelta(milliseconds=500), self.inventory, self.doc)
        return found


def test_a_job_changed_by_an_apply_mid_tick_is_left_to_the_next_tick(
    store: SqlStateStore, inventory: Inventory
) -> None:
    applied(store, T0, inventory, job_doc("tick"))
    clock = FakeClock(T0 + timedelta(seconds=1))
    changed = job_doc("tick")
    changed["actions"]["steps"][0]["command"]["linux"] = ["echo changed"]
    racing = make_scheduler(store, clock, inventory)
    racing.store = ApplyDuringTick(store, inventory, changed)
    assert racing.tick().created == ()
    # Version 1's occurrence was not created; the update restarted the schedule (its pending
    # instances would have been canceled) and version 2 runs from the next occurrence on.
    job = store.read().jobs["tick"]
    assert (job.version, job.next_execution_time) == (2, T0 + MINUTE)
    assert instances_of(store, "tick") == []
    clock.moment = T0 + MINUTE + timedelta(seconds=1)
    [created] = make_scheduler(store, clock, inventory).tick().created
    assert created.scheduled_for == T0 + MINUTE
    [instance] = instances_of(store, "tick")
    assert instance.job_version == 2


def test_an_unresolvable_target_is_reported_once_and_retried(
    store: SqlStateStore, inventory: Inventory
) -> None:
    doc = job_doc("tick")
    doc["target"]["groups"][0] = {
        **doc["target"]["groups"][0],
        "nodeListType": "savedList",
        "listId": "11111111-1111-1111-1111-111111111111",
    }
    del doc["target"]["groups"][0]["nodeIdentifiers"]
    apply([desired(doc)], store, T0, ApplyOptions())  # no inventory: apply resolves no nodes
    clock = FakeClock(T0 + timedelta(seconds=1))
    log = Lines()
    sched = make_scheduler(store, clock, inventory, log=log)
    assert sched.tick().deferred == 1
    assert sched.tick().deferred == 1
    assert len(log.having("cannot resolve its nodes")) == 1
    assert instances_of(store, "tick") == []
