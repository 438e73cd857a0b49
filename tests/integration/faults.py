"""Fault injection for `courier apply`: kill -9 it at a random moment and check that the state is
exactly the state before or exactly the state after (one transaction), and that a rerun converges.

Shared by `tests/integration/test_fault_injection.py` (a few dozen trials) and
`bench/fault_injection.py` (hundreds). Everything is real: git, SQLite files, processes, SIGKILL.
"""

from __future__ import annotations

import collections
import random
import shutil
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.support import GitRepo, describe, job_doc

FORMATS = ("json", "json", "json", "yaml", "toml")  # mostly JSON, as big repos tend to be
BASE_JOBS = 6


@dataclass(frozen=True)
class Snapshot:
    """What an apply may change, without ids and timestamps (those differ between runs)."""

    serial: int
    jobs: frozenset[tuple[Any, ...]]  # (name, version, hash, status, managed, path, blob)
    versions: frozenset[tuple[Any, ...]]  # (name, version, hash, source path, commit)
    instances: tuple[tuple[tuple[Any, ...], int], ...]  # ((name, version, status), count)
    applies: int  # journal rows of applies that changed something

    def describe(self) -> str:
        per_status = collections.Counter(str(j[3]) for j in self.jobs)
        return (
            f"serial {self.serial}, {len(self.jobs)} jobs {dict(per_status)}, "
            f"{len(self.versions)} versions, {sum(c for _, c in self.instances)} instances, "
            f"{self.applies} applies"
        )


def snapshot(db: Path) -> Snapshot:
    """Read the state straight from the SQLite file (the standard library, not courier)."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        serial_row = conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
        jobs = conn.execute(
            "SELECT name, version, spec_hash, status, managed, origin_path, blob_id FROM jobs"
        ).fetchall()
        versions = conn.execute(
            "SELECT j.name, v.version, v.hash, v.source_path, v.git_commit "
            "FROM job_versions v JOIN jobs j ON j.id = v.job_id"
        ).fetchall()
        instances = conn.execute(
            "SELECT j.name, i.job_version, i.status, count(*) "
            "FROM instances i JOIN jobs j ON j.id = i.job_id "
            "GROUP BY j.name, i.job_version, i.status"
        ).fetchall()
        applies = conn.execute(
            "SELECT count(*) FROM apply_journal WHERE outcome = 'applied'"
        ).fetchone()[0]
    return Snapshot(
        serial=int(serial_row[0]) if serial_row else 0,
        jobs=frozenset(map(tuple, jobs)),
        versions=frozenset(map(tuple, versions)),
        instances=tuple(sorted((tuple(row[:3]), row[3]) for row in instances)),
        applies=applies,
    )


def integrity(db: Path) -> str:
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def copy_db(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), with the backup API."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def sqlite_url(db: Path) -> str:
    return f"sqlite:///{db}"


def holder_file(db: Path) -> Path:
    """Published by courier while it holds the apply lock, i.e. while its transaction is open."""
    return db.with_name(db.name + ".holder.json")


@dataclass
class Scenario:
    """A repository whose HEAD differs from the seeded state by `new_jobs` creates, an update that
    re-runs, a metadata-only update and a cancel; the seed state, and the reference end state."""

    repo: GitRepo
    seed: Path
    before: Snapshot
    after: Snapshot
    duration: float  # seconds of one uninterrupted apply, start to exit
    window: tuple[float, float] | None  # when its transaction held the lock, from the start


def run(repo: GitRepo, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return repo.courier(*args, timeout=300)


def checked(proc: subprocess.CompletedProcess[str], *codes: int) -> None:
    if proc.returncode not in codes:
        raise AssertionError(describe(proc))


def prepare(root: Path, new_jobs: int = 200, workers: int = 2) -> Scenario:
    """Build the repository, the seed state and the reference after-state under `root`.

    The reference apply is timed alongside `workers - 1` other applies, as trials will run, so
    that kill delays are measured against a lifetime under the same load."""
    repo = GitRepo(root / "repo")
    for i in range(BASE_JOBS):
        repo.write_job(f"base/base-{i}.json", job_doc(f"base-{i}", command=f"echo base {i}"))
    repo.commit("base jobs")
    seed = root / "seed.db"
    checked(run(repo, "--state", sqlite_url(seed), "apply"), 0)

    for i in range(new_jobs):
        fmt = FORMATS[i % len(FORMATS)]
        name = f"fleet-{i:05d}"
        repo.write_job(f"fleet/{i % 10}/{name}.{fmt}", job_doc(name, command=f"echo {name}"))
    repo.write_job("base/base-0.json", job_doc("base-0", command="echo base 0, changed"))
    repo.write_job("base/base-1.json", job_doc("base-1", command="echo base 1", description="d"))
    repo.remove("base/base-2.json")
    repo.commit(f"{new_jobs} new jobs, two updates, one removal")

    reference = root / "reference.db"
    copy_db(seed, reference)
    companions = []
    for i in range(workers - 1):
        copy_db(seed, root / f"companion-{i}.db")
        companions.append(repo.popen("--state", sqlite_url(root / f"companion-{i}.db"), "apply"))
    duration, window, proc = _timed_apply(repo, reference)
    for companion in companions:
        companion.communicate()
    checked(proc, 0)
    checked(run(repo, "--state", sqlite_url(reference), "plan", "--detailed-exitcode"), 0)
    before, after = snapshot(seed), snapshot(reference)
    if before == after:
        raise AssertionError("the scenario's apply changed nothing")
    return Scenario(repo, seed, before, after, duration, window)


def _timed_apply(
    repo: GitRepo, db: Path
) -> tuple[float, tuple[float, float] | None, subprocess.CompletedProcess[str]]:
    """Apply once, watching the holder file to learn when the transaction ran."""
    marker = holder_file(db)
    started = time.monotonic()
    proc = repo.popen("--state", sqlite_url(db), "apply")
    seen: list[float] = []
    while proc.poll() is None:
        if marker.exists():
            seen.append(time.monotonic() - started)
        time.sleep(0.001)
    duration = time.monotonic() - started
    out, err = proc.communicate()
    window = (min(seen), max(seen)) if seen else None
    return duration, window, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Lifetime:
    """How long one full apply takes right now: the median of the latest full applies timed by
    the trials (the machine's load changes during a campaign, and kill points follow it)."""

    def __init__(self, first: float, keep: int = 7) -> None:
        self._recent: collections.deque[float] = collections.deque([first], maxlen=keep)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._recent.append(seconds)

    def current(self) -> float:
        with self._lock:
            return statistics.median(self._recent)


@dataclass(frozen=True)
class Outcome:
    point: float  # where the kill was aimed, as a fraction of an apply's lifetime
    delay: float  # seconds after the start
    landed: str  # "before" | "during" | "after" (the commit) | "finished" (exited before the kill)
    state: str  # "before" | "after" | "neither"
    converged: bool
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("before", "after") and self.converged and not self.detail


def trial(
    scenario: Scenario,
    workdir: Path,
    point: float,
    lifetime: Lifetime,
    *,
    check_plan: bool = True,
) -> Outcome:
    """Start an apply on a copy of the seed state, SIGKILL it at `point` of its expected
    lifetime, check the state, rerun the apply and check that it converged."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "state.db"
    copy_db(scenario.seed, db)
    url = sqlite_url(db)
    delay = point * lifetime.current()
    proc = scenario.repo.popen("--state", url, "apply")
    time.sleep(delay)
    finished = proc.poll() is not None
    if not finished:
        proc.kill()
    out, err = proc.communicate()
    problems: list[str] = []
    if finished and proc.returncode != 0:
        problems.append(f"apply exited {proc.returncode} on its own:\n{out}\n{err}")

    state_now = snapshot(db)
    state = _which(scenario, state_now)
    in_transaction = holder_file(db).exists()
    if finished:
        landed = "finished"
    elif in_transaction:
        landed = "during"
    else:
        landed = "after" if state == "after" else "before"
    if state == "neither":
        problems.append(f"state after the kill is neither before nor after: {state_now.describe()}")
    if in_transaction and state != "before":
        problems.append("killed inside the transaction, yet its changes are visible")
    check = integrity(db)
    if check != "ok":
        problems.append(f"integrity_check: {check}")

    started = time.monotonic()
    rerun = scenario.repo.courier("--state", url, "apply", timeout=300)
    if state == "before" and rerun.returncode == 0:
        lifetime.observe(time.monotonic() - started)  # it did the whole apply
    converged = rerun.returncode == 0 and snapshot(db) == scenario.after
    if rerun.returncode != 0:
        problems.append(f"the rerun failed:\n{describe(rerun)}")
    elif not converged:
        problems.append(f"the rerun ended at {snapshot(db).describe()}")
    if converged and check_plan:
        plan = scenario.repo.courier("--state", url, "plan", "--detailed-exitcode", timeout=300)
        if plan.returncode != 0:
            converged = False
            problems.append(f"plan after the rerun:\n{describe(plan)}")
    if not problems:  # a failed trial keeps its state file for a post-mortem
        shutil.rmtree(workdir, ignore_errors=True)
    return Outcome(point, delay, landed, state, converged, "\n".join(problems))


def _which(scenario: Scenario, state: Snapshot) -> str:
    if state == scenario.before:
        return "before"
    if state == scenario.after:
        return "after"
    return "neither"


def kill_points(
    scenario: Scenario, count: int, rng: random.Random, targeted: float = 0.3
) -> list[float]:
    """Where to kill, as fractions of an apply's lifetime: spread over 0 .. 1.2, with a
    `targeted` share in (and just around) the transaction window measured while preparing."""
    out = []
    for _ in range(count):
        if scenario.window is not None and rng.random() < targeted:
            low, high = (t / scenario.duration for t in scenario.window)
            out.append(max(0.0, rng.uniform(low - 0.05, high + 0.05)))
        else:
            out.append(rng.uniform(0.0, 1.2))
    return out


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def landed(self) -> dict[str, int]:
        counts = collections.Counter(o.landed for o in self.outcomes)
        return {k: counts.get(k, 0) for k in ("before", "during", "after", "finished")}

    @property
    def states(self) -> dict[str, int]:
        counts = collections.Counter(o.state for o in self.outcomes)
        return {k: counts.get(k, 0) for k in ("before", "after", "neither")}

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def summary(self) -> str:
        return (
            f"{len(self.outcomes)} trials; kills landed {self.landed}; state found {self.states}; "
            f"{sum(o.converged for o in self.outcomes)} reruns converged; "
            f"{len(self.failures)} failures"
        )


def campaign(
    scenario: Scenario,
    workdir: Path,
    points: Iterable[float],
    *,
    workers: int = 2,
    plan_every: int = 1,
    progress: Callable[[int, Outcome], None] | None = None,
) -> Report:
    """Run one trial per kill point, `workers` at a time. Every trial compares the rerun's state
    with the reference after-state (which `prepare` proved converged with a real `plan`); every
    `plan_every`-th trial also runs `plan --detailed-exitcode` itself."""
    lifetime = Lifetime(scenario.duration)

    def one(item: tuple[int, float]) -> Outcome:
        index, point = item
        outcome = trial(
            scenario,
            workdir / f"trial-{index:04d}",
            point,
            lifetime,
            check_plan=index % plan_every == 0,
        )
        if progress is not None:
            progress(index, outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return Report(list(pool.map(one, enumerate(points))))
