"""`courier daemon`'s loop: tick the scheduler, execute due instances, stop gracefully (§5).

Each tick creates the instances that came due (`scheduler`), then the dispatcher claims pending
instances (one daemon of several gets each) and runs every one in its own thread through
`execute_due`, which enforces group timeouts and offers agent nodes' runs to their runners. On a
first stop request no instance is created or claimed and no run started any more, while started
runs get `grace` seconds to finish; after that, or on a second request, they are stopped and
recorded as interrupted. Signals are the CLI's business: it calls `Stop.request()`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from reconciler.errors import CourierError
from reconciler.executing.orchestrating import Executor, InstanceOutcome, execute_due
from reconciler.model.enums import InstanceStatus, RunStatus
from reconciler.nodes.inventory import Inventory
from reconciler.ports import (
    AttemptResult,
    ClaimedRun,
    Clock,
    ExecutionStore,
    FleetStore,
    RunRecord,
    StepResult,
    StoredInstance,
    StoredRun,
)
from reconciler.scheduler import Log, Scheduler, _quiet

INTERRUPTED = "interrupted: courier daemon stopped"
NOT_STARTED = "not started: courier daemon stopping"
STOP_WAIT_S = 30.0
"""How long interrupted instances get to stop their steps (process groups get SIGTERM, then
SIGKILL) and record that before the daemon exits without them."""


class ClaimingStore(ExecutionStore, Protocol):
    def claim_instance(self, instance_id: str, at: datetime) -> bool: ...


class Stop:
    """Stop requests: the first asks for a graceful stop, the second for an immediate one.

    Plain flags, polled: a signal handler may call `request` at any point of the main thread,
    where taking a lock (as `threading.Event.set` does) could deadlock.
    """

    POLL_S = 0.05

    def __init__(self) -> None:
        self.requested = False
        self.forced = False

    def request(self) -> None:
        if self.requested:
            self.forced = True
        self.requested = True

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, self.POLL_S))
        return True


class LogProgress:
    """Plain log lines for instances, and for runs that did not succeed."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._jobs: dict[str, str] = {}

    def instance_started(self, instance: StoredInstance, job: str, runs: int) -> None:
        self._jobs[instance.id] = job
        self.log(f"{job}: instance {instance.id} started, {runs} run(s)")

    def run_finished(self, instance: StoredInstance, run: StoredRun, status: RunStatus) -> None:
        if status is not RunStatus.SUCCESS:
            job = self._jobs.get(instance.id, instance.job_id)
            self.log(f"{job}: instance {instance.id} node {run.node_id}: run {run.id} {status}")

    def instance_finished(self, instance: StoredInstance, status: InstanceStatus) -> None:
        job = self._jobs.pop(instance.id, instance.job_id)
        self.log(f"{job}: instance {instance.id} {status}")


class Dispatcher:
    """Claims due pending instances and executes each in a thread, at most `max_instances`."""

    def __init__(
        self,
        executor: Executor,
        store: ClaimingStore,
        *,
        max_instances: int = 8,
        log: Log | None = None,
    ) -> None:
        self.executor = executor
        self.store = store
        self.max_instances = max(1, max_instances)
        self.log: Log = log if log is not None else _quiet
        self.outcomes: list[InstanceOutcome] = []
        self._threads: dict[str, threading.Thread] = {}
        self._views: dict[str, _OneInstance] = {}
        self._lock = threading.Lock()
        self._draining = False

    def set_inventory(self, inventory: Inventory) -> None:
        """Instances claimed from now on resolve node ids against `inventory`."""
        self.executor = dataclasses.replace(self.executor, inventory=inventory)

    def dispatch(self, now: datetime) -> int:
        """Claim and start due pending instances while slots are free; returns how many."""
        if self._draining:
            return 0
        free = self.max_instances - self.running()
        started = 0
        for instance in self.store.open_instances():
            if free <= 0:
                break
            if instance.status is not InstanceStatus.PENDING or instance.scheduled_for > now:
                continue
            if not self.store.claim_instance(instance.id, self.executor.clock.now()):
                continue  # another daemon took it
            view = _OneInstance(self.store, instance)
            thread = threading.Thread(
                target=self._execute, args=(view,), name=f"instance-{instance.id}", daemon=True
            )
            with self._lock:
                self._threads[instance.id] = thread
                self._views[instance.id] = view
            thread.start()
            free -= 1
            started += 1
        return started

    def running(self) -> int:
        with self._lock:
            for instance_id in [i for i, t in self._threads.items() if not t.is_alive()]:
                del self._threads[instance_id]
                del self._views[instance_id]
            return len(self._threads)

    def wait(self, timeout: float, until: Callable[[], bool] | None = None) -> bool:
        """Wait until no instance runs (True), `timeout` passed or `until()` holds (False)."""
        deadline = time.monotonic() + timeout
        while self.running():
            left = deadline - time.monotonic()
            if left <= 0 or (until is not None and until()):
                return False
            time.sleep(min(left, Stop.POLL_S))
        return True

    def drain(self) -> None:
        """Claim no more instances; running ones start no more runs (those end canceled)."""
        self._draining = True
        with self._lock:
            views = list(self._views.values())
        for view in views:
            view.draining = True

    def interrupt(self) -> None:
        """Stop every running step now: runs end canceled, recorded as interrupted."""
        self.drain()
        with self._lock:
            views = list(self._views.values())
        for view in views:
            view.interrupt(self.executor.clock.now())
        self.executor.cancel.set()

    def _execute(self, view: _OneInstance) -> None:
        instance = view.instance
        executor = dataclasses.replace(self.executor, store=view)
        view.draining = self._draining
        try:
            now = max(self.executor.clock.now(), instance.scheduled_for)
            self.outcomes.extend(execute_due(executor, now=now))
        except Exception as exc:  # the thread's boundary: log it, and end the instance
            message = exc.message if isinstance(exc, CourierError) else repr(exc)
            self.log(f"instance {instance.id}: execution stopped: {message}")
            try:
                self.store.finish_instance(
                    instance.id, InstanceStatus.FAILURE, self.executor.clock.now()
                )
            except CourierError as again:
                self.log(f"instance {instance.id}: cannot record its end: {again.message}")


class _OneInstance:
    """The store as the executor of one claimed instance sees it: that instance is the only
    open one, and while the daemon stops no run starts and canceled runs say why."""

    def __init__(self, store: ClaimingStore, instance: StoredInstance) -> None:
        self.store = store
        self.instance = instance
        self.draining = False
        self.interrupted = False
        self.stopped_runs = False
        self._offered: set[str] = set()

    def interrupt(self, at: datetime) -> None:
        self.interrupted = True
        if self._offered:  # runners see their lease lost and stop those steps
            self.store.end_runs(sorted(self._offered), RunStatus.CANCELED, at, INTERRUPTED)
            self.stopped_runs = True

    # -- ExecutionStore ---------------------------------------------------------------------

    def open_instances(self) -> list[StoredInstance]:
        return [self.instance]

    def instance_spec(self, instance: StoredInstance) -> dict[str, Any]:
        return self.store.instance_spec(instance)

    def runs(self, instance_id: str) -> list[StoredRun]:
        return self.store.runs(instance_id)

    def start_instance(self, instance_id: str, at: datetime) -> None:
        self.store.start_instance(instance_id, at)

    def start_runs(self, run_ids: Sequence[str], at: datetime) -> list[str]:
        if self.draining:
            self._not_started(run_ids, at)
            return []
        return self.store.start_runs(run_ids, at)

    def record_runs(self, records: Sequence[RunRecord]) -> None:
        if self.interrupted:
            records = [
                dataclasses.replace(
                    r, reason=f"{INTERRUPTED} ({r.reason})" if r.reason else INTERRUPTED
                )
                if r.status is RunStatus.CANCELED
                else r
                for r in records
            ]
            if any(r.status is RunStatus.CANCELED for r in records):
                self.stopped_runs = True
        self.store.record_runs(records)

    def end_runs(
        self, run_ids: Sequence[str], status: RunStatus, at: datetime, reason: str
    ) -> None:
        if self.interrupted and status is RunStatus.CANCELED:
            reason = INTERRUPTED
            self.stopped_runs = True
        self.store.end_runs(run_ids, status, at, reason)

    def finish_instance(self, instance_id: str, status: InstanceStatus, at: datetime) -> None:
        if self.stopped_runs:
            status = InstanceStatus.CANCELED  # the daemon, not the job, ended it
        self.store.finish_instance(instance_id, status, at)

    def run(self, run_id: str) -> StoredRun:
        return self.store.run(run_id)

    def steps(self, run_id: str) -> list[StepResult]:
        return self.store.steps(run_id)

    def attempt(self, run_id: str, step_number: int, attempt_no: int) -> AttemptResult:
        return self.store.attempt(run_id, step_number, attempt_no)

    # -- FleetStore (agent nodes' runs are offered, and watched until their runners end them) --

    def offer_runs(self, run_ids: Sequence[str], at: datetime) -> list[str]:
        if self.draining:
            self._not_started(run_ids, at)
            return []
        offered = self._fleet().offer_runs(run_ids, at)
        self._offered.update(offered)
        return offered

    def claim_run(
        self, node_id: str, owner: str, lease_seconds: float, at: datetime
    ) -> ClaimedRun | None:
        return self._fleet().claim_run(node_id, owner, lease_seconds, at)

    def renew_lease(self, run_id: str, owner: str, lease_seconds: float, at: datetime) -> bool:
        return self._fleet().renew_lease(run_id, owner, lease_seconds, at)

    def release_run(self, record: RunRecord, owner: str) -> bool:
        return self._fleet().release_run(record, owner)

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        return self._fleet().run_statuses(run_ids)

    def _fleet(self) -> FleetStore:
        if not isinstance(self.store, FleetStore):
            raise CourierError("agent nodes need a state store that supports fleet mode")
        return self.store

    def _not_started(self, run_ids: Sequence[str], at: datetime) -> None:
        if run_ids:
            self.store.end_runs(run_ids, RunStatus.CANCELED, at, NOT_STARTED)
            self.stopped_runs = True


def run_daemon(
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    stop: Stop,
    *,
    clock: Clock,
    interval: float,
    grace: float,
    once: bool = False,
    log: Log | None = None,
    refresh: Callable[[], None] | None = None,
) -> list[InstanceOutcome]:
    """Tick every `interval` seconds until `stop` is requested (with `once`: one tick, run what
    is due to its end), then stop gracefully. Returns the outcomes of the instances it ran."""
    say: Log = log if log is not None else _quiet
    _mention_running(dispatcher, say)
    ticked = False
    while not stop.requested:
        started = 0
        try:
            if refresh is not None:
                refresh()
            if not (once and ticked):
                scheduler.tick()
                ticked = True
            started = dispatcher.dispatch(clock.now())
        except CourierError as exc:  # the state is down or locked: the next tick tries again
            if once:
                raise
            say(f"error: {exc.message}; trying again in {interval:g}s")
        if once and ticked and not started and not dispatcher.running():
            break
        stop.sleep(0.2 if once else interval)
    _shutdown(dispatcher, stop, grace, say)
    return list(dispatcher.outcomes)


def _mention_running(dispatcher: Dispatcher, say: Log) -> None:
    try:
        opened = dispatcher.store.open_instances()
    except CourierError:
        return
    running = [i for i in opened if i.status is InstanceStatus.RUNNING]
    if running:
        say(
            f"{len(running)} instance(s) already running, each run by the daemon or "
            "`apply --wait` that started it (this daemon does not adopt them)"
        )


def _shutdown(dispatcher: Dispatcher, stop: Stop, grace: float, say: Log) -> None:
    dispatcher.drain()
    running = dispatcher.running()
    if running and stop.requested:
        say(
            f"stopping: {running} instance(s) running; started runs get {grace:g}s to finish "
            "(signal again to interrupt them now)"
        )
    if running and not dispatcher.wait(grace, until=lambda: stop.forced):
        why = "a second signal" if stop.forced else f"still running after {grace:g}s"
        say(f"interrupting {dispatcher.running()} instance(s) ({why})")
        dispatcher.interrupt()
        if not dispatcher.wait(STOP_WAIT_S):
            say(f"{dispatcher.running()} instance(s) did not stop within {STOP_WAIT_S:g}s")
    if stop.requested:
        say("stopped")
