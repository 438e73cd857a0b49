"""The daemon loop (`reconciler.daemon`) on a real SQLite state with real shell steps: each
pending instance is executed by one daemon only, and a stop lets started runs finish within the
grace period, starts no new ones, and interrupts (records) what outlives it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.applying import ApplyOptions, apply
from reconciler.daemon import INTERRUPTED, NOT_STARTED, Dispatcher, Stop, run_daemon
from reconciler.evidence.filesystem import FileEvidenceStore
from reconciler.executing.orchestrating import Executor, InstanceOutcome
from reconciler.interpreters import BUILTIN_SKILLS
from reconciler.model.enums import InstanceStatus, RunStatus
from reconciler.nodes.inventory import Inventory, inventory_from_document
from reconciler.scheduler import Scheduler
from state import SqlStateStore, open_engine
from tests.reconciler.scheduler_support import desired, job_doc


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def inventory() -> Inventory:
    nodes = [{"id": n, "transport": "local"} for n in ("web-1", "web-2")]
    return inventory_from_document({"nodes": nodes}, {}, BUILTIN_SKILLS)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Callable[[], SqlStateStore]]:
    opened: list[SqlStateStore] = []

    def make() -> SqlStateStore:
        store = SqlStateStore(open_engine(f"sqlite:///{tmp_path / 'state.db'}"))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.engine.dispose()


def pending_instance(
    store: SqlStateStore, inventory: Inventory, command: str, batch: int = 2
) -> str:
    """Apply an immediate job running `command` on web-1 and web-2 (`batch` at a time)."""
    doc = job_doc("now", "immediate")
    doc["target"]["groups"][0]["batchSize"]["value"] = batch
    doc["actions"]["steps"][0]["command"]["linux"] = [command]
    result = apply([desired(doc)], store, Clock().now(), ApplyOptions(inventory=inventory))
    [instance_id] = result.instances
    return instance_id


def dispatcher(
    store: SqlStateStore, inventory: Inventory, tmp_path: Path, log: list[str] | None = None
) -> Dispatcher:
    executor = Executor(
        store=store,
        inventory=inventory,
        evidence=FileEvidenceStore(tmp_path / "evidence"),
        clock=Clock(),
        nodes_root=tmp_path / "nodes",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    return Dispatcher(executor, store, log=log.append if log is not None else None)


def daemon_in_thread(
    store: SqlStateStore,
    inventory: Inventory,
    disp: Dispatcher,
    stop: Stop,
    grace: float,
    log: list[str],
) -> tuple[threading.Thread, list[list[InstanceOutcome]]]:
    out: list[list[InstanceOutcome]] = []
    sched = Scheduler(store, Clock(), inventory)

    def target() -> None:
        out.append(
            run_daemon(sched, disp, stop, clock=Clock(), interval=0.1, grace=grace, log=log.append)
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_for(condition: Callable[[], Any], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_statuses(store: SqlStateStore, instance_id: str) -> dict[str, tuple[RunStatus, str]]:
    return {r.node_id: (r.status, r.reason) for r in store.runs(instance_id)}


def test_of_two_daemons_one_executes_each_instance(
    stores: Callable[[], SqlStateStore], inventory: Inventory, tmp_path: Path
) -> None:
    first, second = stores(), stores()
    instance_id = pending_instance(first, inventory, "echo once >> ../../ran.txt")
    dispatchers = [dispatcher(s, inventory, tmp_path) for s in (first, second)]
    barrier = threading.Barrier(2)
    started: list[int] = []

    def go(d: Dispatcher) -> None:
        barrier.wait(5)
        started.append(d.dispatch(Clock().now()))

    threads = [threading.Thread(target=go, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(started) == [0, 1]
    for d in dispatchers:
        assert d.wait(30)
    assert first.instance(instance_id).status is InstanceStatus.SUCCESS
    # Each node ran the step once (both nodes share this machine's .courier/nodes parent).
    assert (tmp_path / "ran.txt").read_text().splitlines() == ["once", "once"]
    for run in first.runs(instance_id):
        [step] = first.steps(run.id)
        assert step.num_attempts == 1


def test_a_stop_lets_started_runs_finish(
    stores: Callable[[], SqlStateStore], inventory: Inventory, tmp_path: Path
) -> None:
    store = stores()
    instance_id = pending_instance(store, inventory, "sleep 1; echo done")
    disp, stop, log = dispatcher(store, inventory, tmp_path), Stop(), []
    thread, out = daemon_in_thread(store, inventory, disp, stop, 30, log)
    wait_for(lambda: store.instance(instance_id).status is InstanceStatus.RUNNING)
    stop.request()
    thread.join(30)
    assert not thread.is_alive()
    [outcome] = out[0]
    assert outcome.status is InstanceStatus.SUCCESS
    assert store.instance(instance_id).status is InstanceStatus.SUCCESS
    assert any(line.startswith("stopping: 1 instance(s) running") for line in log)
    assert log[-1] == "stopped"


def test_a_stop_starts_no_new_runs(
    stores: Callable[[], SqlStateStore], inventory: Inventory, tmp_path: Path
) -> None:
    store = stores()
    instance_id = pending_instance(store, inventory, "sleep 1", batch=1)  # web-1, then web-2
    disp, stop, log = dispatcher(store, inventory, tmp_path), Stop(), []
    thread, _ = daemon_in_thread(store, inventory, disp, stop, 30, log)
    wait_for(lambda: RunStatus.RUNNING in {s for s, _ in run_statuses(store, instance_id).values()})
    stop.request()
    thread.join(30)
    assert run_statuses(store, instance_id) == {
        "web-1": (RunStatus.SUCCESS, ""),
        "web-2": (RunStatus.CANCELED, NOT_STARTED),
    }
    assert store.instance(instance_id).status is InstanceStatus.CANCELED


@pytest.mark.parametrize("how", ["grace over", "second signal"])
def test_runs_outliving_the_grace_period_are_interrupted(
    stores: Callable[[], SqlStateStore], inventory: Inventory, tmp_path: Path, how: str
) -> None:
    store = stores()
    instance_id = pending_instance(store, inventory, "sleep 60")
    disp, stop, log = dispatcher(store, inventory, tmp_path), Stop(), []
    grace = 0.5 if how == "grace over" else 120
    thread, _ = daemon_in_thread(store, inventory, disp, stop, grace, log)
    wait_for(lambda: store.instance(instance_id).status is InstanceStatus.RUNNING)
    time.sleep(0.5)  # both steps are running
    began = time.monotonic()
    stop.request()
    if how == "second signal":
        time.sleep(0.3)
        stop.request()
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - began < 20
    for status, reason in run_statuses(store, instance_id).values():
        assert status is RunStatus.CANCELED
        assert reason.startswith(INTERRUPTED)
    assert store.instance(instance_id).status is InstanceStatus.CANCELED
    why = "a second signal" if how == "second signal" else "still running after 0.5s"
    assert f"interrupting 1 instance(s) ({why})" in log


def test_once_runs_what_is_due_and_returns(
    stores: Callable[[], SqlStateStore], inventory: Inventory, tmp_path: Path
) -> None:
    store = stores()
    instance_id = pending_instance(store, inventory, "echo hi")
    disp = dispatcher(store, inventory, tmp_path)
    outcomes = run_daemon(
        Scheduler(store, Clock(), inventory),
        disp,
        Stop(),
        clock=Clock(),
        interval=5,
        grace=1,
        once=True,
    )
    assert [(o.instance_id, o.status) for o in outcomes] == [(instance_id, InstanceStatus.SUCCESS)]
