"""Concurrent applies on one state (DESIGN.md §3 locking): two started together both succeed,
create each job once and leave a converged state; one started while the lock is held waits up to
`--lock-timeout` and then fails naming the holder. On SQLite, and on PostgreSQL when
`COURIER_TEST_PG_URL` is set.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import GitRepo, collect, expect, job_doc

HOLDER = "integration-test lock holder"


def jobs_repo(repo: GitRepo, count: int = 12) -> list[str]:
    names = [f"job-{i:03d}" for i in range(count)]
    for i, name in enumerate(names):
        repo.write_job(f"{name}.{('json', 'yaml', 'toml')[i % 3]}", job_doc(name))
    repo.commit(f"{count} jobs")
    return names


def state_args(url: str | None) -> list[str]:
    return ["--state", url] if url else []


def assert_applied_once(store: Any, names: list[str]) -> None:
    listed = store.list_jobs(size=1000)
    assert listed.total == len(names)
    counts = collections.Counter(job.name for job in listed.items)
    assert counts == dict.fromkeys(names, 1)
    # Each immediate job got exactly one instance: the loser of the race created nothing.
    per_job = collections.Counter(i.job_id for i in store.instances())
    assert sorted(per_job.values()) == [1] * len(names)
    outcomes = [r.entry.outcome for r in store.journal()]
    assert sorted(outcomes) == ["applied", "noop"], outcomes
    assert store.serial() == 1


def race(repo: GitRepo, url: str | None, names: list[str]) -> None:
    extra = state_args(url)
    procs = [repo.popen(*extra, "apply") for _ in range(2)]
    results = [collect(p) for p in procs]
    for result in results:
        expect(result, 0)
    assert_applied_once(repo.store(url), names)
    expect(repo.courier(*extra, "plan", "--detailed-exitcode"), 0)


def test_two_applies_together_on_a_fresh_sqlite_state(git_repo: GitRepo) -> None:
    names = jobs_repo(git_repo)
    assert not git_repo.state_db.exists()  # both processes also race to create the schema
    race(git_repo, None, names)


@pytest.mark.pg
def test_two_applies_together_on_a_fresh_postgresql_state(git_repo: GitRepo, pg_url: str) -> None:
    names = jobs_repo(git_repo)
    race(git_repo, pg_url, names)
    assert not git_repo.state_db.exists()


@contextmanager
def lock_held(repo: GitRepo, url: str) -> Iterator[threading.Event]:
    """Hold the apply lock from this process (a store.write whose mutation waits) until the
    yielded event is set."""
    store = repo.store(url)
    release = threading.Event()
    entered = threading.Event()
    failure: list[BaseException] = []

    def mutation(writer: Any) -> None:
        entered.set()
        release.wait(60)

    def hold() -> None:
        try:
            store.write(mutation, lock_timeout=5, holder=HOLDER)
        except BaseException as exc:
            failure.append(exc)
            entered.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert entered.wait(30), "the test could not take the apply lock"
    assert not failure, failure
    try:
        yield release
    finally:
        release.set()
        thread.join(30)
    assert not failure, failure


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def state_url(request: pytest.FixtureRequest, git_repo: GitRepo) -> str:
    """The state URL of each backend (PostgreSQL only when COURIER_TEST_PG_URL is set)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    git_repo.state_db.parent.mkdir()  # an explicit sqlite URL needs its folder to exist
    return git_repo.state_url


def test_apply_while_the_lock_is_held_names_the_holder(git_repo: GitRepo, state_url: str) -> None:
    jobs_repo(git_repo, 3)
    expect(git_repo.courier("--state", state_url, "apply"), 0)
    git_repo.write_job("late.json", job_doc("late"))
    git_repo.commit()
    serial = git_repo.store(state_url).serial()

    with lock_held(git_repo, state_url):
        started = time.monotonic()
        proc = git_repo.courier("--state", state_url, "apply", "--lock-timeout", "1")
        elapsed = time.monotonic() - started
    expect(proc, 1)
    assert HOLDER in proc.stderr, proc.stderr
    assert "lock" in proc.stderr
    assert elapsed < 20, "--lock-timeout 1 did not bound the wait"
    assert git_repo.store(state_url).serial() == serial
    # Once the lock is free the same apply goes through.
    expect(git_repo.courier("--state", state_url, "apply", "--lock-timeout", "1"), 0)
    assert "late" in git_repo.store(state_url).read().jobs


def wait_until_connected(pid: int, timeout: float = 60) -> None:
    """Wait until process `pid` has the state database open: its SQLite file or a socket (the
    only sockets courier opens are to PostgreSQL). Linux /proc; elsewhere just wait a while."""
    fds = Path(f"/proc/{pid}/fd")
    if not fds.is_dir():
        time.sleep(5)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            targets = [os.readlink(fd) for fd in fds.iterdir()]
            if any(t.endswith("state.db") or t.startswith("socket:") for t in targets):
                return
        time.sleep(0.05)
    raise AssertionError(f"courier (pid {pid}) never opened the state database")


def test_apply_waits_for_a_short_lock(git_repo: GitRepo, state_url: str) -> None:
    jobs_repo(git_repo, 3)
    with lock_held(git_repo, state_url) as release:
        proc = git_repo.popen("--state", state_url, "apply", "--lock-timeout", "60")
        # Let it reach the state and queue behind the lock, then let go.
        wait_until_connected(proc.pid)
        time.sleep(1.5)
        assert proc.poll() is None, "apply did not wait for the lock"
        release.set()
        result = collect(proc)
    expect(result, 0)
    assert len(git_repo.store(state_url).read().jobs) == 3


def test_raw_sqlite_write_lock_makes_apply_time_out(git_repo: GitRepo) -> None:
    """Another program (not courier) holding SQLite's write lock: courier cannot name it, but
    says that the state is locked instead of failing with a traceback."""
    jobs_repo(git_repo, 2)
    expect(git_repo.courier("apply"), 0)
    git_repo.write_job("late.yaml", job_doc("late"))
    git_repo.commit()
    with closing(sqlite3.connect(git_repo.state_db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            proc = git_repo.courier("apply", "--lock-timeout", "1")
        finally:
            conn.execute("ROLLBACK")
    expect(proc, 1)
    assert "lock" in proc.stderr, proc.stderr
    expect(git_repo.courier("apply", "--lock-timeout", "1"), 0)
