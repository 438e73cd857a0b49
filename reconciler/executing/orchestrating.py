"""Instance -> runs on nodes: groups in order or together, batches, success criteria, timeouts.

DESIGN.md §4. Runs were fixed when the instance was created; this module decides when each one
is dispatched, executes local nodes' runs in a thread pool through `execute_run`, and records
results in batches (one transaction per wake-up, not per run). One implementation serves
`apply --wait` and the daemon; node transports other than `local` are not executed here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any, Protocol

from reconciler.errors import CourierError
from reconciler.executing.running import RunContext, RunOutcome, execute_run
from reconciler.model.enums import ExecutionType, InstanceStatus, RunStatus, StepStatus
from reconciler.model.job import Group, JobTemplate
from reconciler.nodes.inventory import Inventory, Transport
from reconciler.ports import (
    Clock,
    EvidenceStore,
    ExecutionStore,
    FleetStore,
    RunRecord,
    StepResult,
    StoredInstance,
    StoredRun,
)
from reconciler.targeting import CriteriaState, success_state, window

TERMINAL = frozenset({RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.TIMEOUT, RunStatus.CANCELED})
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Progress(Protocol):
    """What the CLI shows while instances run (rich on a terminal, plain lines in CI)."""

    def instance_started(self, instance: StoredInstance, job: str, runs: int) -> None: ...
    def run_finished(self, instance: StoredInstance, run: StoredRun, status: RunStatus) -> None: ...
    def instance_finished(self, instance: StoredInstance, status: InstanceStatus) -> None: ...


class _Quiet:
    def instance_started(self, instance: StoredInstance, job: str, runs: int) -> None:
        pass

    def run_finished(self, instance: StoredInstance, run: StoredRun, status: RunStatus) -> None:
        pass

    def instance_finished(self, instance: StoredInstance, status: InstanceStatus) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Executor:
    """Everything execution needs from outside, built by the CLI (the composition root)."""

    store: ExecutionStore
    inventory: Inventory
    evidence: EvidenceStore
    clock: Clock
    nodes_root: Path
    env: Mapping[str, str]
    workers: int = 32
    progress: Progress = field(default_factory=_Quiet)
    cancel: threading.Event = field(default_factory=threading.Event)
    sleep: Callable[[float], None] | None = None


@dataclass(frozen=True, slots=True)
class InstanceOutcome:
    instance_id: str
    job_name: str
    status: InstanceStatus
    counts: Mapping[str, int]


def node_workdir(root: Path, node_id: str) -> Path:
    """`.courier/nodes/<id>/`: ids that are not plain names are hashed (no path traversal)."""
    safe = (
        node_id
        if _SAFE_ID.match(node_id) and node_id not in (".", "..")
        else ("id-" + sha256(node_id.encode()).hexdigest()[:32])
    )
    path = root / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def execute_due(
    ex: Executor, *, now: datetime, deadline: datetime | None = None
) -> list[InstanceOutcome]:
    """Run every open instance scheduled at or before `now` to its end (or to `deadline`)."""
    outcomes = []
    with ThreadPoolExecutor(max_workers=max(1, ex.workers), thread_name_prefix="run") as pool:
        claim = getattr(ex.store, "claim_instance", None)
        for instance in ex.store.open_instances():
            if instance.scheduled_for > now:
                continue
            if instance.status is not InstanceStatus.PENDING:
                continue  # running: another executor (a daemon, another apply --wait) has it
            if claim is not None and not claim(instance.id, ex.clock.now()):
                continue  # another executor claimed it first
            outcomes.append(_Instance(ex, pool, instance, deadline).execute())
    return outcomes


class _Instance:
    def __init__(
        self,
        ex: Executor,
        pool: ThreadPoolExecutor,
        instance: StoredInstance,
        deadline: datetime | None,
    ) -> None:
        self.ex = ex
        self.pool = pool
        self.instance = instance
        self.deadline = deadline
        self.job = JobTemplate.model_validate(ex.store.instance_spec(instance))
        self.runs = ex.store.runs(instance.id)
        self.status: dict[str, RunStatus] = {r.id: r.status for r in self.runs}
        self.remote: dict[Future[RunRecord], StoredRun] = {}
        self.lock = threading.Lock()

    def execute(self) -> InstanceOutcome:
        ex, inst = self.ex, self.instance
        ex.progress.instance_started(inst, self.job.name, len(self.runs))
        ex.store.start_instance(inst.id, ex.clock.now())
        groups = [
            [r for r in self.runs if r.group_number == n]
            for n in range(len(self.job.target.groups))
        ]
        if self.job.target.executionType is ExecutionType.PARALLEL:
            results_by_thread: list[list[bool]] = []
            threads = []
            for n, runs in enumerate(groups):
                results: list[bool] = []
                results_by_thread.append(results)
                threads.append(
                    threading.Thread(target=self._group_into, args=(n, runs, results), daemon=True)
                )
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ok = all(bool(r and r[0]) for r in results_by_thread)
        else:
            ok = True
            for n, runs in enumerate(groups):
                if not ok:
                    self._end([r.id for r in runs], RunStatus.CANCELED, "an earlier group failed")
                    continue
                ok = self._group(n, runs)
        status = InstanceStatus.SUCCESS if ok else InstanceStatus.FAILURE
        if self.ex.cancel.is_set():
            status = InstanceStatus.CANCELED
        ex.store.finish_instance(inst.id, status, ex.clock.now())
        ex.progress.instance_finished(inst, status)
        counts: dict[str, int] = {}
        for s in self.status.values():
            counts[str(s)] = counts.get(str(s), 0) + 1
        return InstanceOutcome(inst.id, self.job.name, status, counts)

    def _group_into(self, number: int, runs: list[StoredRun], out: list[bool]) -> None:
        out.append(self._group(number, runs))

    # -- one group -------------------------------------------------------------------------

    def _group(self, number: int, runs: list[StoredRun]) -> bool:
        spec: Group = self.job.target.groups[number]
        total = len(runs)
        pending = [r for r in runs if r.status is RunStatus.PENDING]
        in_flight: dict[Future[RunRecord], tuple[StoredRun, threading.Event]] = {}
        started = self.ex.clock.now()
        timeout_at = started + timedelta(seconds=spec.timeoutSeconds)
        if self.deadline is not None:
            timeout_at = min(timeout_at, self.deadline)
        size = window(spec.batchSize, total) if total else 1
        rolling = spec.distributionMethod.value == "rolling"
        stop_dispatch = False
        next_poll = started + timedelta(seconds=1)

        def state() -> CriteriaState:
            counts = self._counts(runs)
            finished = sum(v for k, v in counts.items() if RunStatus(k) in TERMINAL)
            return success_state(spec.successCriteria, counts, total, finished)

        while pending or in_flight:
            if not stop_dispatch and pending and not self.ex.cancel.is_set():
                free = size - len(in_flight)
                # batching: a new batch only when the previous one is done; rolling: refill.
                if (rolling and free > 0) or (not rolling and not in_flight):
                    batch, pending = pending[:free], pending[free:]
                    self._dispatch(batch, in_flight)
            if self.ex.cancel.is_set():
                for _run, event in in_flight.values():
                    event.set()
                if pending:
                    self._end([r.id for r in pending], RunStatus.CANCELED, "canceled")
                    pending = []
            if not in_flight:
                if stop_dispatch and pending:
                    self._end([r.id for r in pending], RunStatus.CANCELED, "group stopped early")
                    pending = []
                continue
            remaining = (timeout_at - self.ex.clock.now()).total_seconds()
            if remaining <= 0:
                self._time_out(in_flight, pending, spec.timeoutSeconds)
                pending = []
                break
            done, _ = wait(
                list(in_flight),
                timeout=min(remaining, 0.5 if not self.remote else 0.2),
                return_when=FIRST_COMPLETED,
            )
            self._poll_remote()
            done = {f for f in in_flight if f.done()}
            if done:
                self._record([r for r in (f.result() for f in done) if r is not None])
                for f in done:
                    run, _event = in_flight.pop(f)
                    self.ex.progress.run_finished(self.instance, run, self.status[run.id])
            if self.ex.clock.now() >= next_poll:
                # `courier jobs cancel --running` in another process cancels runs in the state:
                # signal the ones running here (their process groups get SIGTERM, then SIGKILL).
                next_poll = self.ex.clock.now() + timedelta(seconds=1)
                self._signal_canceled(in_flight)
            if spec.earlyTermination and state() is CriteriaState.FAILED:
                stop_dispatch = True
                if pending:
                    self._end([r.id for r in pending], RunStatus.CANCELED, "group stopped early")
                    pending = []
        return state() is CriteriaState.MET

    def _dispatch(
        self,
        batch: Sequence[StoredRun],
        in_flight: dict[Future[RunRecord], tuple[StoredRun, threading.Event]],
    ) -> None:
        now = self.ex.clock.now()
        remote = [r for r in batch if self._is_agent(r)]
        if remote:
            # Fleet mode: offer the runs; each node's `courier runner` claims and executes them.
            offered = set(self._fleet().offer_runs([r.id for r in remote], now))
            for run in remote:
                if run.id not in offered:
                    self.status[run.id] = RunStatus.CANCELED
                    continue
                self.status[run.id] = RunStatus.PENDING
                future: Future[RunRecord] = Future()
                self.remote[future] = run
                in_flight[future] = (run, threading.Event())
        batch = [r for r in batch if not self._is_agent(r)]
        if not batch:
            return
        started = set(self.ex.store.start_runs([r.id for r in batch], now))
        for run in batch:
            if run.id not in started:  # canceled meanwhile (jobs cancel, a new version)
                self.status[run.id] = RunStatus.CANCELED
                continue
            self.status[run.id] = RunStatus.RUNNING
            event = threading.Event()
            in_flight[self.pool.submit(self._execute, run, event)] = (run, event)

    def _is_agent(self, run: StoredRun) -> bool:
        node = self.ex.inventory.node(run.node_id)
        return node is not None and node.transport is Transport.AGENT

    def _fleet(self) -> FleetStore:
        store = self.ex.store
        if not isinstance(store, FleetStore):
            raise CourierError("agent nodes need a state store that supports fleet mode")
        return store

    def _poll_remote(self) -> None:
        """Resolve the futures of offered runs that their runners have finished."""
        if not self.remote:
            return
        statuses = self._fleet().run_statuses([r.id for r in self.remote.values()])
        for future, run in list(self.remote.items()):
            status = statuses.get(run.id)
            if status in TERMINAL:
                with self.lock:
                    self.status[run.id] = status
                del self.remote[future]
                future.set_result(None)  # type: ignore[arg-type]  # recorded by the runner
            elif status is RunStatus.RUNNING:
                with self.lock:
                    self.status[run.id] = status

    def _execute(self, run: StoredRun, cancel: threading.Event) -> RunRecord:
        ex = self.ex
        started = ex.clock.now()
        node = ex.inventory.node(run.node_id)
        if node is None or node.transport is not Transport.LOCAL:
            reason = (
                f"node {run.node_id!r} is not in the inventory (nodes.yaml)"
                if node is None
                else f"node {run.node_id!r} is not a local node; its `courier runner` runs it"
            )
            return RunRecord(run.id, RunStatus.FAILURE, started, ex.clock.now(), (), reason)
        ctx = RunContext(
            job_name=self.job.name,
            instance_id=self.instance.id,
            run_id=run.id,
            node=node,
            workdir=node_workdir(ex.nodes_root, node.id),
            env=ex.env,
        )
        if ex.cancel.is_set():
            cancel.set()
        kwargs: dict[str, Any] = {}
        if ex.sleep is not None:
            kwargs["sleep"] = ex.sleep
        outcome: RunOutcome = execute_run(
            self.job.actions.steps,
            ctx,
            evidence=ex.evidence,
            clock=ex.clock,
            cancel=cancel,
            **kwargs,
        )
        return RunRecord(
            run.id,
            outcome.status,
            outcome.started_at,
            outcome.ended_at,
            outcome.steps,
            outcome.reason,
        )

    def _signal_canceled(
        self, in_flight: dict[Future[RunRecord], tuple[StoredRun, threading.Event]]
    ) -> None:
        if not in_flight:
            return
        current = {r.id: r.status for r in self.ex.store.runs(self.instance.id)}
        for run, event in in_flight.values():
            if current.get(run.id) is RunStatus.CANCELED:
                event.set()
                with self.lock:
                    self.status[run.id] = RunStatus.CANCELED

    def _record(self, records: list[RunRecord]) -> None:
        if not records:
            return
        self.ex.store.record_runs(records)
        with self.lock:
            for r in records:
                if self.status.get(r.run_id) is not RunStatus.CANCELED:
                    self.status[r.run_id] = r.status

    def _time_out(
        self,
        in_flight: dict[Future[RunRecord], tuple[StoredRun, threading.Event]],
        pending: list[StoredRun],
        seconds: int,
    ) -> None:
        reason = f"group timeout of {seconds}s reached"
        ids = [run.id for run, _ in in_flight.values()] + [r.id for r in pending]
        self._end(ids, RunStatus.TIMEOUT, reason)
        for _run, event in in_flight.values():
            event.set()  # stop the steps; their late results may still replace `timeout`
        local = [f for f in in_flight if f not in self.remote]
        done, _ = wait(local, timeout=10)
        late = [r for r in (f.result() for f in done) if r is not None]
        if late:
            self.ex.store.record_runs(late)

    def _end(self, run_ids: list[str], status: RunStatus, reason: str) -> None:
        if not run_ids:
            return
        self.ex.store.end_runs(run_ids, status, self.ex.clock.now(), reason)
        with self.lock:
            for run_id in run_ids:
                self.status[run_id] = status

    def _counts(self, runs: list[StoredRun]) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.lock:
            for r in runs:
                key = str(self.status[r.id])
                counts[key] = counts.get(key, 0) + 1
        return counts


def step_summary(steps: Sequence[StepResult]) -> str:
    failed = [s for s in steps if s.status is StepStatus.FAILURE]
    return failed[-1].reason if failed else ""
