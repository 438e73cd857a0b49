"""The runner of one agent node (`courier runner`, DESIGN.md §5): enroll, then claim the node's
offered runs, execute each with the same step runner as local nodes while a heartbeat renews the
lease, and release the result. The orchestrator (`executing.orchestrating`) offers the runs and
waits for their status; this is the other half.

Not pure: threads, waits, and (through `execute_run`) processes. The store, clock, executor and log
are injected, so tests and the bench drive `AgentRunner` directly; the CLI wires the real ones.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from reconciler.errors import NotFound, StateError
from reconciler.executing.orchestrating import node_workdir
from reconciler.executing.running import RunContext, execute_run
from reconciler.model.enums import RunStatus
from reconciler.model.job import JobTemplate
from reconciler.nodes.inventory import Node, Transport
from reconciler.ports import ClaimedRun, Clock, EvidenceStore, FleetStore, RunRecord

T = TypeVar("T")

RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0
IDLE_MAX_S = 5.0
REENROLL_S = 60.0  # an idle runner refreshes its node's `last_seen_at` this often
_SLICE_S = 0.5  # the longest uninterrupted wait: signals are handled between waits
RUNNER_ENV = "COURIER_RUNNER"
"""Set in every step's environment to the runner's owner id (`guard.py` finds orphans by it)."""

Execute = Callable[[ClaimedRun, threading.Event], RunRecord]
"""Run a claimed run to its end (the `threading.Event` cancels it); the record to release."""


class AgentStore(FleetStore, Protocol):
    """What a runner needs from the state: the fleet port and enrolment."""

    def enroll_node(
        self,
        node_id: str,
        name: str,
        attributes: Mapping[str, object],
        skills: Mapping[str, str],
        at: datetime,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """One runner: which node, who it is (the lease owner), and its timings in seconds.

    The lease must outlast a heartbeat: a runner that could not renew for `lease - heartbeat`
    stops its step, so it has ended before another runner may take the run over.
    """

    node_id: str
    owner: str
    lease: float = 30.0
    heartbeat: float = 10.0
    poll: float = 1.0
    once: bool = False  # handle the runs claimable now, then return

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat < self.lease:
            raise ValueError(f"heartbeat ({self.heartbeat}s) must be shorter than the lease")
        if self.poll <= 0:
            raise ValueError("poll must be positive")

    @property
    def idle_max(self) -> float:
        """Idle polls back off from `poll` to this: a few seconds, never less than `poll`."""
        return max(self.poll, min(5 * self.poll, IDLE_MAX_S))


def step_executor(
    node: Node,
    *,
    nodes_root: Path,
    env: Mapping[str, str],
    evidence: EvidenceStore,
    clock: Clock,
) -> Execute:
    """The real executor: the claimed job version's steps through `execute_run` on `node`, in
    its folder `<nodes_root>/<id>/`, the same code local nodes run."""
    workdir = node_workdir(nodes_root, node.id)

    def execute(claimed: ClaimedRun, cancel: threading.Event) -> RunRecord:
        job = JobTemplate.model_validate(claimed.spec)
        ctx = RunContext(
            job_name=claimed.job_name,
            instance_id=claimed.instance.id,
            run_id=claimed.run.id,
            node=node,
            workdir=workdir,
            env=env,
        )
        outcome = execute_run(job.actions.steps, ctx, evidence=evidence, clock=clock, cancel=cancel)
        return RunRecord(
            claimed.run.id,
            outcome.status,
            outcome.started_at,
            outcome.ended_at,
            outcome.steps,
            outcome.reason,
        )

    return execute


def agent_node(
    node_id: str, name: str, attributes: Mapping[str, object], skills: Mapping[str, str]
) -> Node:
    """This machine as the agent node `node_id`: gathered attributes, the skills it really has."""
    return Node(node_id, name or node_id, Transport.AGENT, dict(attributes), {}, dict(skills))


class AgentRunner:
    """The loop of one runner. `run()` returns when `stop()` was called (or, with `once`, when
    nothing is left to claim); a database that went away is retried, never fatal."""

    def __init__(
        self,
        store: AgentStore,
        settings: RunnerSettings,
        node: Node,
        execute: Execute,
        clock: Clock,
        *,
        log: Callable[[str], None] = lambda line: None,
        on_run: Callable[[str | None], None] = lambda run_id: None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.node = node
        self.execute = execute
        self.clock = clock
        self.log = log
        self.on_run = on_run  # told the run in flight, then None (`OrphanGuard.running`)
        self.handled = 0  # runs released or dropped
        self._stopping = threading.Event()
        self._killing = threading.Event()
        self._lock = threading.Lock()
        self._cancel: threading.Event | None = None  # the current run's
        self._outage = 0  # consecutive failed database calls
        self._claimed_at, self._claimed_mono = clock.now(), time.monotonic()
        self._enrolled = time.monotonic()

    # -- control ----------------------------------------------------------------------------

    def stop(self) -> None:
        """First call: take no new run, finish the current one, release it. Second call: also
        kill the running step (the run is released as `canceled`)."""
        with self._lock:
            if self._stopping.is_set():
                self._killing.set()
                if self._cancel is not None:
                    self._cancel.set()
            self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def busy(self) -> bool:
        """True while a claimed run is executing."""
        return self._cancel is not None

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Enroll, then claim and execute runs until stopped; returns how many were handled."""
        if not self._retry("enroll", self._enroll):
            return self.handled
        skills = ", ".join(f"{k} {v}" for k, v in sorted(self.node.skills.items()))
        self.log(f"enrolled node {self.node.id} ({skills}); waiting for runs")
        idle = self.settings.poll
        while not self._stopping.is_set():
            try:
                if time.monotonic() - self._enrolled >= REENROLL_S:
                    self._call("enroll", self._enroll)  # `last_seen_at`: this runner is alive
                claimed = self._call("claim", self._claim)
            except _Failed:
                continue  # logged, and waited for, by `_call`
            if claimed is None:
                if self.settings.once:
                    break
                self._wait(idle * random.uniform(0.8, 1.0))  # noqa: S311 - jitter, not crypto
                idle = min(idle * 2, self.settings.idle_max)
                continue
            idle = self.settings.poll
            self._handle(claimed)
        return self.handled

    def _enroll(self) -> bool:
        n = self.node
        self.store.enroll_node(n.id, n.name, n.attributes, n.skills, self.clock.now())
        self._enrolled = time.monotonic()
        return True

    def _claim(self) -> ClaimedRun | None:
        s = self.settings
        self._claimed_at, self._claimed_mono = self.clock.now(), time.monotonic()
        return self.store.claim_run(s.node_id, s.owner, s.lease, self._claimed_at)

    # -- one run ----------------------------------------------------------------------------

    def _handle(self, claimed: ClaimedRun) -> None:
        run = claimed.run
        reclaimed = run.received_time is not None and run.received_time < self._claimed_at
        again = " again (the lease of its previous runner expired)" if reclaimed else ""
        started = time.monotonic()
        self.log(
            f"claimed run {run.id} of job {claimed.job_name} "
            f"(instance {claimed.instance.id}){again}"
        )
        cancel = threading.Event()
        with self._lock:
            self._cancel = cancel
            if self._killing.is_set():
                cancel.set()
        self.on_run(run.id)
        try:
            record, lost = self._execute_with_heartbeat(claimed, cancel)
        finally:
            self.on_run(None)
        with self._lock:
            self._cancel = None
        self.handled += 1
        took = time.monotonic() - started
        if lost:
            self.log(f"dropped the result of run {run.id} ({record.status}, {took:.1f}s): {lost}")
            return
        try:
            released = self._retry(
                "release", lambda: self.store.release_run(record, self.settings.owner)
            )
        except NotFound:
            self.log(f"run {run.id} is no longer in the state: its result is dropped")
            return
        if released is None:
            self.log(f"stopped before run {run.id} could be released; its lease will expire")
        elif released:
            self.log(
                f"finished run {run.id} of job {claimed.job_name}: {record.status} ({took:.1f}s)"
            )
        else:
            self.log(f"lease lost on run {run.id} before its release: its result is dropped")

    def _execute_with_heartbeat(
        self, claimed: ClaimedRun, cancel: threading.Event
    ) -> tuple[RunRecord, str]:
        """Run `execute` in a worker thread and renew the lease every heartbeat; when the lease
        is lost, cancel the step. Returns the record and why it is lost ("" when held)."""
        s = self.settings
        done = threading.Event()
        result: list[RunRecord] = []

        def work() -> None:
            try:
                result.append(self.execute(claimed, cancel))
            except Exception as exc:  # a bug or a bad spec: report it as the run's failure
                now = self.clock.now()
                reason = f"the runner could not execute the run: {type(exc).__name__}: {exc}"
                result.append(RunRecord(claimed.run.id, RunStatus.FAILURE, now, now, (), reason))
            finally:
                done.set()

        worker = threading.Thread(target=work, name=f"courier-run-{claimed.run.id}", daemon=True)
        renewed = self._claimed_mono  # when the lease was asked for: it runs from then
        worker.start()
        lost = ""
        next_beat = renewed + s.heartbeat
        while not done.is_set():
            now = time.monotonic()
            if now < next_beat:
                done.wait(min(next_beat - now, _SLICE_S))
                continue
            if lost:
                next_beat = now + s.heartbeat
                continue
            try:
                held = self.store.renew_lease(claimed.run.id, s.owner, s.lease, self.clock.now())
            except Exception as exc:  # the database is away (or worse): keep trying, for now
                held = None
                self.log(f"could not renew the lease of run {claimed.run.id}: {_why(exc)}")
            if held:
                renewed, next_beat = now, now + s.heartbeat
            elif held is False:
                lost = "lease lost: the run was canceled, timed out or taken by another runner"
            elif now - renewed >= s.lease - s.heartbeat:
                # Stop before the lease can expire: by then another runner may take the run.
                lost = f"lease not renewed for {now - renewed:.0f}s: the database is unreachable"
            else:
                next_beat = now + min(1.0, s.heartbeat)
            if lost:
                self.log(f"{lost}; stopping run {claimed.run.id}")
                cancel.set()
                next_beat = now + s.heartbeat
        worker.join()
        return result[0], lost

    # -- waiting and reconnecting ------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(left, _SLICE_S))

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """One state call. When it fails (the database went away: `StateError`; or anything
        but `NotFound`, which callers handle), log one line, back off (0.5 s doubling to 10 s)
        and raise `_Failed`, so the caller tries again: a runner never dies of an outage."""
        try:
            value = call()
        except NotFound:
            raise
        except Exception as exc:
            delay = min(RECONNECT_FIRST_S * 2**self._outage, RECONNECT_MAX_S)
            self._outage += 1
            self.log(f"state database unavailable ({what}): {_why(exc)}; retry in {delay:.1f}s")
            self._wait(delay)
            raise _Failed from exc
        if self._outage:
            self.log(f"state database available again after {self._outage} failed call(s)")
            self._outage = 0
        return value

    def _retry(self, what: str, call: Callable[[], T]) -> T | None:
        """`call` until it succeeds; None when the runner is stopped meanwhile (for `release`:
        only when told twice, since a result is worth waiting for)."""
        while True:
            try:
                return self._call(what, call)
            except _Failed:
                give_up = self._killing if what == "release" else self._stopping
                if give_up.is_set():
                    return None
                if what == "release":  # `_wait` returns at once when stopping: pace it here
                    self._killing.wait(RECONNECT_FIRST_S)


class _Failed(Exception):
    """A state call failed and was logged and waited for; try again."""


def _why(exc: Exception) -> str:
    return exc.message if isinstance(exc, StateError) else f"{type(exc).__name__}: {exc}"


class OrphanGuard:
    """Makes the steps of the run in flight die with this runner, where `/proc` allows (Linux).

    Steps run in sessions of their own, so a runner killed with SIGKILL would leave its step
    running while another runner takes the run over. `guard.py` holds the read end of a pipe
    only this process writes to, and is told which run is in flight; when the pipe closes
    without `quit` (this process died), it kills the process groups of that run's processes:
    those whose environment has both `COURIER_RUNNER=<token>` and `COURIER_RUN_ID=<run>`.
    Processes that earlier runs left in the background are not touched.
    """

    def __init__(self, token: str) -> None:
        read, write = os.pipe()  # not inherited by steps (PEP 446): only we hold `write`
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", str(Path(__file__).with_name("guard.py")), token],
                stdin=read,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the runner does not end the guard
            )
        finally:
            os.close(read)
        self._pipe = os.fdopen(write, "w", buffering=1, encoding="utf-8")

    @staticmethod
    def available() -> bool:
        return Path("/proc/self/environ").exists()

    def running(self, run_id: str | None) -> None:
        """The run now in flight (None: none)."""
        self._send(f"run {run_id}" if run_id else "idle")

    def close(self) -> None:
        """A clean exit: the guard leaves without killing anything."""
        self._send("quit")
        with contextlib.suppress(OSError):
            self._pipe.close()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):  # a guard that died cannot be told; steps go on
            self._pipe.write(line + "\n")
