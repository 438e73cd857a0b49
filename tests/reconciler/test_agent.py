"""`AgentRunner`, the runner loop, on an in-memory fleet store: claims, heartbeats, lost leases,
database outages, stop and kill. Real threads and short real timings (lease under a second)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.errors import NotFound, StateError
from reconciler.model.enums import InstanceStatus, RunStatus
from reconciler.nodes.agent import (
    AgentRunner,
    Execute,
    OrphanGuard,
    RunnerSettings,
    agent_node,
)
from reconciler.ports import ClaimedRun, RunRecord, StoredInstance, StoredRun

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeFleet:
    """Offered runs of one node; `fail_*` make the next calls raise `StateError`."""

    def __init__(self, *run_ids: str) -> None:
        self.offered = list(run_ids)
        self.released: list[RunRecord] = []
        self.enrolled: list[tuple[str, dict[str, object], dict[str, str]]] = []
        self.renewals = 0
        self.renew_answer: bool | None = True  # None: raise StateError
        self.fail_claims = 0
        self.bug_claims = 0
        self.gone = False  # release: the run was deleted from the state
        self.lock = threading.Lock()

    def enroll_node(
        self,
        node_id: str,
        name: str,
        attributes: Mapping[str, object],
        skills: Mapping[str, str],
        at: datetime,
    ) -> None:
        self.enrolled.append((node_id, dict(attributes), dict(skills)))

    def offer_runs(self, run_ids: Sequence[str], at: datetime) -> list[str]:
        return list(run_ids)

    def claim_run(
        self, node_id: str, owner: str, lease_seconds: float, at: datetime
    ) -> ClaimedRun | None:
        if self.fail_claims:
            self.fail_claims -= 1
            raise StateError("state database postgresql://db: connection refused")
        if self.bug_claims:
            self.bug_claims -= 1
            raise RuntimeError("a bug")
        if not self.offered:
            return None
        run_id = self.offered.pop(0)
        instance = StoredInstance("i1", "j1", 1, InstanceStatus.RUNNING, T0, T0, T0)
        run = StoredRun(run_id, "i1", node_id, 0, RunStatus.RUNNING, at, at)
        expires = at + timedelta(seconds=lease_seconds)
        return ClaimedRun(run, instance, "deploy", {}, expires)

    def renew_lease(self, run_id: str, owner: str, lease_seconds: float, at: datetime) -> bool:
        self.renewals += 1
        if self.renew_answer is None:
            raise StateError("state database postgresql://db: server closed the connection")
        return self.renew_answer

    def release_run(self, record: RunRecord, owner: str) -> bool:
        if self.gone:
            raise NotFound(f"no run with id {record.run_id}")
        self.released.append(record)
        return True

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        return {}


def step(seconds: float, seen: list[threading.Event] | None = None) -> Execute:
    """An executor that 'runs' for `seconds` unless canceled, like a step's process."""

    def execute(claimed: ClaimedRun, cancel: threading.Event) -> RunRecord:
        if seen is not None:
            seen.append(cancel)
        start = datetime.now(UTC)
        status = RunStatus.CANCELED if cancel.wait(seconds) else RunStatus.SUCCESS
        return RunRecord(claimed.run.id, status, start, datetime.now(UTC), ())

    return execute


def runner(
    store: FakeFleet, execute: Execute, *, once: bool = True, lease: float = 0.6
) -> tuple[AgentRunner, list[str]]:
    lines: list[str] = []
    settings = RunnerSettings("n1", "me", lease=lease, heartbeat=0.2, poll=0.05, once=once)
    node = agent_node("n1", "", {"os": "linux"}, {"shell-interpreter": "1.0.0"})
    agent = AgentRunner(store, settings, node, execute, Clock(), log=lines.append)
    return agent, lines


def test_once_enrolls_then_runs_and_releases_every_offered_run() -> None:
    store = FakeFleet("r1", "r2")
    agent, lines = runner(store, step(0.05))
    assert agent.run() == 2
    assert store.enrolled == [("n1", {"os": "linux"}, {"shell-interpreter": "1.0.0"})]
    assert [(r.run_id, r.status) for r in store.released] == [
        ("r1", RunStatus.SUCCESS),
        ("r2", RunStatus.SUCCESS),
    ]
    assert any(line.startswith("claimed run r1 of job deploy") for line in lines)
    assert any(line.startswith("finished run r2 of job deploy: success") for line in lines)


def test_a_long_run_is_kept_by_heartbeats() -> None:
    store = FakeFleet("r1")
    agent, _ = runner(store, step(1.0))
    agent.run()
    assert store.renewals >= 3
    assert [r.status for r in store.released] == [RunStatus.SUCCESS]


def test_a_lost_lease_cancels_the_step_and_drops_its_result() -> None:
    store = FakeFleet("r1")
    store.renew_answer = False  # canceled, timed out, or taken over
    cancels: list[threading.Event] = []
    agent, lines = runner(store, step(5.0, cancels))
    started = time.monotonic()
    agent.run()
    assert time.monotonic() - started < 4  # at the first heartbeat, not after 5 s
    assert cancels[0].is_set()
    assert store.released == []
    assert any("lease lost" in line for line in lines)


def test_a_database_out_for_the_lease_stops_the_step_before_the_lease_can_expire() -> None:
    store = FakeFleet("r1")
    store.renew_answer = None
    cancels: list[threading.Event] = []
    agent, lines = runner(store, step(5.0, cancels), lease=0.8)
    started = time.monotonic()
    agent.run()
    took = time.monotonic() - started
    assert cancels[0].is_set()
    assert 0.5 <= took < 4  # stopped at lease - heartbeat (0.6 s), not at the step's end
    assert store.released == []
    assert any("could not renew the lease" in line for line in lines)
    assert any("the database is unreachable" in line for line in lines)


def test_claims_are_retried_while_the_database_is_away() -> None:
    store = FakeFleet("r1")
    store.fail_claims = 2
    agent, lines = runner(store, step(0.01))
    assert agent.run() == 1
    failures = [line for line in lines if "unavailable (claim)" in line]
    assert [line.rsplit(" ", 1)[-1] for line in failures] == ["0.5s", "1.0s"]  # backing off
    assert any("available again after 2 failed call(s)" in line for line in lines)
    assert [r.run_id for r in store.released] == ["r1"]


def test_stop_finishes_the_run_and_a_second_stop_kills_it() -> None:
    for kills, expected in ((1, RunStatus.SUCCESS), (2, RunStatus.CANCELED)):
        store = FakeFleet("r1", "r2")
        agent, _ = runner(store, step(0.6), once=False)
        thread = threading.Thread(target=agent.run)
        thread.start()
        deadline = time.monotonic() + 5
        while not agent.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(kills):
            agent.stop()
        thread.join(5)
        assert not thread.is_alive()
        assert [(r.run_id, r.status) for r in store.released] == [("r1", expected)]
        assert store.offered == ["r2"]  # no new claim once stopping


def test_an_executor_error_is_released_as_the_runs_failure() -> None:
    def broken(claimed: ClaimedRun, cancel: threading.Event) -> RunRecord:
        raise ValueError("bad spec")

    store = FakeFleet("r1")
    agent, _ = runner(store, broken)
    agent.run()
    [record] = store.released
    assert record.status is RunStatus.FAILURE
    assert "ValueError: bad spec" in record.reason


@pytest.mark.parametrize(("lease", "heartbeat"), [(1.0, 1.0), (1.0, 2.0), (1.0, 0.0)])
def test_the_heartbeat_must_be_shorter_than_the_lease(lease: float, heartbeat: float) -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        RunnerSettings("n1", "me", lease=lease, heartbeat=heartbeat)


def test_an_unexpected_error_does_not_end_the_loop() -> None:
    store = FakeFleet("r1")
    store.bug_claims = 1
    agent, lines = runner(store, step(0.01))
    assert agent.run() == 1
    assert any("RuntimeError: a bug" in line for line in lines)
    assert [r.run_id for r in store.released] == ["r1"]


def test_a_run_gone_from_the_state_is_dropped_and_the_loop_goes_on() -> None:
    store = FakeFleet("r1", "r2")
    store.gone = True
    agent, lines = runner(store, step(0.01))
    assert agent.run() == 2
    assert sum("no longer in the state" in line for line in lines) == 2


@pytest.mark.skipif(not OrphanGuard.available(), reason="the orphan guard needs /proc (Linux)")
@pytest.mark.parametrize("runner_dies", [True, False])
def test_the_orphan_guard_kills_the_run_in_flight_only_when_its_runner_dies(
    runner_dies: bool,
) -> None:
    def step_process(run_id: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "COURIER_RUNNER": "token-1", "COURIER_RUN_ID": run_id}
        return subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)

    earlier, current = step_process("r0"), step_process("r1")  # r0: left in the background
    guard = OrphanGuard("token-1")
    try:
        guard.running("r0")
        guard.running(None)
        guard.running("r1")
        if runner_dies:
            guard._pipe.close()  # what the kernel does to a SIGKILLed runner's pipe
            guard._process.wait(10)
        else:
            guard.close()
        if runner_dies:
            assert current.wait(5) == -9  # SIGKILLed by the guard
        else:
            time.sleep(0.3)
            assert current.poll() is None
        assert earlier.poll() is None
    finally:
        for proc in (earlier, current):
            proc.kill()
            proc.wait()
