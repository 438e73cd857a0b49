"""`courier daemon` as real processes (DESIGN.md §5, issue 6): two daemons on one state create
one catch-up instance after missed minutes, and SIGTERM/SIGINT stop a daemon gracefully (exit 0)
with started runs finished, or interrupted and recorded so on a second signal. On SQLite, and on
PostgreSQL when `COURIER_TEST_PG_URL` is set.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from reconciler.model.enums import InstanceStatus, RunStatus
from state.tables import JOBS
from tests.integration.support import GitRepo, collect, describe, expect, job_doc

WAIT_S = 90  # generous: CI machines run many tests at once


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def state_url(request: pytest.FixtureRequest, git_repo: GitRepo) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    git_repo.state_db.parent.mkdir()
    return git_repo.state_url


def wait_until(what: str, condition: Callable[[], Any], procs: list[subprocess.Popen[str]]) -> Any:
    """Poll `condition` until it is truthy; fail (with the daemons' output) after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"a daemon exited while waiting for {what}:\n{describe(collect(proc))}")
        time.sleep(0.2)
    outputs = [describe(collect(stop(p))) for p in procs]
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(outputs))


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> subprocess.Popen[str]:
    if proc.poll() is None:
        proc.send_signal(signum)
    return proc


def test_two_daemons_create_one_catch_up_instance(git_repo: GitRepo, state_url: str) -> None:
    # A minutely job whose daemon has been down for over 3 minutes: its cursor (next execution
    # time) still points at the first of the 4 occurrences since.
    start = (datetime.now(UTC) - timedelta(minutes=3, seconds=2)).replace(microsecond=0)
    rule = f"RRULE:DTSTART={start:%Y%m%dT%H%M%SZ};FREQ=MINUTELY"
    git_repo.write_job("tick.yaml", job_doc("tick", command="echo tick", schedule=rule))
    git_repo.commit()
    expect(git_repo.courier("--state", state_url, "apply"), 0)
    store = git_repo.store(state_url)
    job = store.read().jobs["tick"]
    with store.engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job.id).values(next_execution_time=start))

    daemons = [git_repo.popen("--state", state_url, "daemon", "--interval", "1") for _ in "ab"]
    try:
        wait_until(
            "the catch-up instance to run",
            lambda: [i for i in store.instances(job.id) if i.status is InstanceStatus.SUCCESS],
            daemons,
        )
        time.sleep(3)  # both daemons tick a few more times
        instances = sorted(store.instances(job.id), key=lambda i: i.scheduled_for)
        cursor = store.job_by_id(job.id).next_execution_time
    finally:
        results = [collect(stop(p), timeout=60) for p in daemons]
    for result in results:
        expect(result, 0)
    # One instance for the 4 missed occurrences: the latest. On a slow machine the next minute
    # may have come due meanwhile; it has its own instance, once.
    # The catch-up instance is the latest occurrence due when the daemons started: 4 missed if
    # they started within the minute, more when a loaded machine made the set-up slower.
    times = [i.scheduled_for for i in instances]
    missed = (times[0] - start) // timedelta(minutes=1) + 1
    assert missed >= 4, times
    assert (times[0] - start) % timedelta(minutes=1) == timedelta(0), times
    assert times == [times[0] + timedelta(minutes=n) for n in range(len(times))], times
    assert cursor == times[-1] + timedelta(minutes=1)
    logs = "".join(r.stderr for r in results)
    catching_up = f"{missed} missed occurrences of tick; catching up with the latest"
    assert logs.count(catching_up) == 1, logs
    assert logs.count(f"tick: instance {instances[0].id} for ") == 1, logs
    assert logs.count(f"tick: instance {instances[0].id} started, 1 run(s)") == 1, logs
    assert logs.count("daemon: stopped") == 2, logs


def immediate(git_repo: GitRepo, state_url: str, command: str) -> tuple[Any, str]:
    """Apply an immediate job running `command` (no --wait: the daemon runs it)."""
    git_repo.write_job("now.json", job_doc("now", command=command))
    git_repo.commit()
    expect(git_repo.courier("--state", state_url, "apply"), 0)
    store = git_repo.store(state_url)
    [instance] = store.instances(store.read().jobs["now"].id)
    return store, instance.id


def step_started(store: Any, instance_id: str) -> bool:
    return any(r.status is RunStatus.RUNNING for r in store.runs(instance_id))


def test_sigint_lets_the_running_step_finish(git_repo: GitRepo, state_url: str) -> None:
    store, instance_id = immediate(git_repo, state_url, "sleep 2; echo finished")
    daemon = git_repo.popen("--state", state_url, "daemon", "--interval", "1")
    wait_until("the step to start", lambda: step_started(store, instance_id), [daemon])
    began = time.monotonic()
    result = expect(collect(stop(daemon, signal.SIGINT), timeout=60), 0)
    assert time.monotonic() - began < 30
    assert "SIGINT: stopping" in result.stderr
    assert store.instance(instance_id).status is InstanceStatus.SUCCESS
    [run] = store.runs(instance_id)
    assert run.status is RunStatus.SUCCESS
    [step] = store.steps(run.id)
    assert step.status.value == "success"


def test_a_second_sigterm_interrupts_the_running_step(git_repo: GitRepo, state_url: str) -> None:
    store, instance_id = immediate(git_repo, state_url, "sleep 120")
    daemon = git_repo.popen("--state", state_url, "daemon", "--interval", "1", "--grace", "300")
    wait_until("the step to start", lambda: step_started(store, instance_id), [daemon])
    time.sleep(0.5)
    began = time.monotonic()
    stop(daemon)
    time.sleep(0.5)
    result = expect(collect(stop(daemon), timeout=60), 0)
    assert time.monotonic() - began < 30
    assert "second signal: interrupting the running steps now" in result.stderr
    [run] = store.runs(instance_id)
    assert run.status is RunStatus.CANCELED
    assert run.reason.startswith("interrupted: courier daemon stopped"), run.reason
    assert store.instance(instance_id).status is InstanceStatus.CANCELED
