"""Benchmark execution: one job over 1,000 local nodes, and the same work through Ansible.

    .venv/bin/python bench/bench_execute.py [--nodes 1000] [--repeat 2] [--ansible-hosts 1000]
        [--ansible-timeout 900] [--no-ansible] [--no-profile] [--no-write]

The targets of issue 4 and DESIGN.md §8: a job with one trivial step (`true`) over 1,000
`transport: local` nodes (one group, batch 100%, success 100%) runs at >= 300 runs/s on this
2-core machine, and >= 20x the hosts/s of `ansible -i INVENTORY all -c local -m command -a true
-f 32` over an inventory of the same 1,000 hosts (ansible-core from PyPI, in its own venv under
bench/out/, never in the project's venv).

Each repeat measures, on fresh copies of one git repository (`nodes.yaml` with n0000..n0999 and
`jobs.d/bench-true.json`):

- E2E: `courier apply --wait` in a fresh repo, the whole CLI as a subprocess;
- EXECUTE ONLY: `courier apply` in a fresh repo, then `courier daemon --once` (one scheduler
  tick, run what is due to its end, exit): a process that only executes. The runs/s target is
  judged on it (on the next item where a courier has no `daemon --once`);
- APPLY + EXEC: `courier apply` in another fresh repo, then `courier apply --wait` there: the
  second process has nothing to apply (a no-op plan) and executes the due instance; E2E minus the
  plain apply is shown beside it as a cross-check;
- the executor's own span, from the state: first run dispatched to last run recorded;
- FIXED: `courier apply --wait` once more in that repo, with nothing to apply and nothing due:
  the cost every process pays (start-up, imports, state, inventory, plan);
- a baseline in this process: 1,000 `sh -c true` spawned from 32 threads (the ceiling of DESIGN.md
  §8), so a loaded machine shows up as a low baseline rather than as a courier regression;
- Ansible on the same hosts.

Wall-clock, CPU (user + system of the process and its children, from GNU `time -v`) and peak
RSS (`time -v`'s maximum resident set size: the largest single process, so for Ansible one of
its forks or the controller, not their sum). Then, once, a profile of the 1,000-node
`apply --wait` in process (`cli.main.run` under cProfile: every thread with a CPU-time clock,
and again with a wall clock, where the main thread is the orchestrator), `python -X importtime`,
and the pieces of the worker path timed alone in one thread (spawn, evidence zip and store, the
evidence folder, the whole `execute_run`).
Prints everything and rewrites the `## execute` section of bench/RESULTS.md (notes between
`<!-- keep -->` and `<!-- /keep -->` in it survive). Generated files go to bench/out/execute/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
WORK = OUT / "execute"
RESULTS = HERE / "RESULTS.md"
BIN = Path(sys.executable).parent
COURIER = BIN / "courier"
GNU_TIME = Path("/usr/bin/time")

RUNS_TARGET = 300.0  # runs/s, issue 4
RATIO_TARGET = 20.0  # x Ansible's hosts/s, issue 4
TEMPLATE_VERSION = "1"
JOB_NAME = "bench-true"
ANSIBLE_FALLBACK_HOSTS = 200
COMPONENT_COUNT = 500  # repetitions of each piece of the worker path


# --- set-up ----------------------------------------------------------------------------------


def node_ids(n: int) -> list[str]:
    return [f"n{i:04d}" for i in range(n)]


def job_document(nodes: Sequence[str]) -> dict[str, Any]:
    """One job, one group over every node, batch 100%, success 100%, one step: `true`."""
    return {
        "name": JOB_NAME,
        "description": "bench: one trivial step on every node",
        "scheduleRule": "immediate",
        "exceptionRules": [],
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 3600,
                    "batchSize": {"type": "percent", "value": 100},
                    "distributionMethod": "batching",
                    "successCriteria": [
                        {"status": "success", "numRuns": {"type": "percent", "value": 100}}
                    ],
                    "nodeListType": "nodes",
                    "nodeIdentifiers": list(nodes),
                }
            ],
        },
        "actions": {
            "accessMode": "agent",
            "steps": [
                {
                    "name": "true",
                    "interpreter": {
                        "name": "chef-platform/shell-interpreter",
                        "skill": {"minVersion": "1.0.0", "maxVersion": "9.99.99"},
                    },
                    "command": {"linux": ["true"], "darwin": ["true"]},
                }
            ],
        },
    }


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=120,
    )


def make_template(n: int) -> Path:
    """bench/out/execute/template-<n>: a committed git repo with nodes.yaml and the job."""
    repo = WORK / f"template-{n}"
    stamp = repo / ".git" / "bench-stamp"
    if stamp.exists() and stamp.read_text() == TEMPLATE_VERSION:
        return repo
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "jobs.d").mkdir(parents=True)
    ids = node_ids(n)
    lines = ["# bench: local nodes, each its own working directory under .courier/nodes/", "nodes:"]
    lines += [f"  - {{id: {node}, transport: local}}" for node in ids]
    (repo / "nodes.yaml").write_text("\n".join(lines) + "\n")
    (repo / "jobs.d" / f"{JOB_NAME}.json").write_text(json.dumps(job_document(ids), indent=2))
    (repo / ".gitignore").write_text(".courier/\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    stamp.write_text(TEMPLATE_VERSION)
    return repo


def fresh_repo(template: Path) -> Path:
    (WORK / "tmp").mkdir(parents=True, exist_ok=True)
    repo = Path(tempfile.mkdtemp(prefix="repo-", dir=WORK / "tmp"))
    shutil.copytree(template, repo, symlinks=True, dirs_exist_ok=True)
    return repo


def courier_env() -> dict[str, str]:
    """This environment without settings that would point courier elsewhere; CI: plain output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env["CI"] = "1"
    return env


# --- measuring a process ---------------------------------------------------------------------


@dataclass
class Proc:
    wall: float
    rc: int | None
    cpu: float  # user + system, the process and its children
    rss_kb: int
    stdout: str
    stderr: str
    timed_out: bool = False
    load: str = ""


def gnu_time() -> bool:
    if not GNU_TIME.exists():
        return False
    probe = subprocess.run(
        [str(GNU_TIME), "-v", "true"], capture_output=True, text=True, timeout=30, check=False
    )
    return "Maximum resident set size" in probe.stderr


HAVE_GNU_TIME = gnu_time()


def run_timed(
    argv: Sequence[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Proc:
    """Run `argv`, time it, and kill its whole process group if it outlives `timeout`."""
    with tempfile.NamedTemporaryFile("r", dir=WORK, suffix=".time") as report:
        cmd = [str(GNU_TIME), "-v", "-o", report.name, *argv] if HAVE_GNU_TIME else list(argv)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rss = after.ru_maxrss  # fallback: the largest child of this process so far
        text = Path(report.name).read_text() if HAVE_GNU_TIME else ""
    if text:
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        rss = int(found.group(1)) if found else rss
    load = "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    return Proc(wall, proc.returncode, cpu, rss, out, err, timed_out, load)


def executor_span(repo: Path) -> tuple[float, dict[str, int]]:
    """From the state: seconds from the first run's dispatch to the last run's record; counts."""
    with sqlite3.connect(repo / ".courier" / "state.db") as db:
        counts = dict(db.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        first, last = db.execute(
            "SELECT min(received_time), max(last_update_time) FROM runs"
        ).fetchone()
    if not first or not last:
        return float("nan"), counts
    span = datetime.datetime.fromisoformat(last) - datetime.datetime.fromisoformat(first)
    return span.total_seconds(), counts


def check_courier(proc: Proc, what: str, counts: dict[str, int] | None, n: int) -> str:
    """'' when the process did what it should; otherwise why the number cannot be used."""
    if proc.timed_out:
        return f"{what}: timed out after {proc.wall:.0f}s"
    if proc.rc != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-400:]
        return f"{what}: exit {proc.rc}: {tail}"
    if counts is not None and counts.get("success", 0) != n:
        return f"{what}: runs by status {counts}, expected {n} success"
    return ""


# --- courier ---------------------------------------------------------------------------------


@dataclass
class CourierRound:
    e2e: Proc
    e2e_span: float
    apply: Proc
    exec: Proc
    exec_span: float
    idle: Proc  # `apply --wait` once more: nothing to apply, nothing due (the fixed costs)
    daemon: Proc | None  # `daemon --once` after a plain `apply`: execution only (None: no such)
    daemon_span: float
    problems: list[str] = field(default_factory=list)


def headline(r: CourierRound) -> tuple[Proc, str]:
    """The process the runs/s target is judged on: execution only (`daemon --once` after an
    `apply`) where courier has it, else `apply --wait` after an `apply` (a no-op plan too)."""
    if r.daemon is not None:
        return r.daemon, "execute-only process (`daemon --once`)"
    return r.exec, "exec process (`apply --wait` after `apply`)"


def has_daemon_once() -> bool:
    """Whether this courier has `daemon --once` (one tick, run what is due, exit)."""
    probe = subprocess.run(
        [str(COURIER), "daemon", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=courier_env(),
    )
    return probe.returncode == 0 and "--once" in probe.stdout


def courier_round(
    template: Path, n: int, timeout: float, e2e_first: bool, daemon: bool
) -> CourierRound:
    """The repos are copied before and deleted after every measurement, and the disk is synced
    before each one: deleting thousands of folders is I/O the next process would pay for."""
    env = courier_env()
    problems: list[str] = []
    fresh_e2e, fresh_split = fresh_repo(template), fresh_repo(template)
    fresh_daemon = fresh_repo(template) if daemon else None

    def timed(argv: list[str], repo: Path) -> Proc:
        os.sync()
        return run_timed([str(COURIER), *argv], repo, timeout, env)

    def e2e() -> tuple[Proc, float]:
        proc = timed(["apply", "--wait"], fresh_e2e)
        span, counts = executor_span(fresh_e2e) if proc.rc == 0 else (float("nan"), None)
        problems.append(check_courier(proc, "apply --wait", counts, n))
        return proc, span

    def split() -> tuple[Proc, Proc, float, Proc]:
        plain = timed(["apply"], fresh_split)
        problems.append(check_courier(plain, "apply", None, n))
        execute = timed(["apply", "--wait"], fresh_split)
        span, counts = executor_span(fresh_split) if execute.rc == 0 else (float("nan"), None)
        problems.append(check_courier(execute, "apply --wait after apply", counts, n))
        if "Nothing to apply" not in execute.stdout and execute.rc == 0:
            problems.append("the second apply --wait applied something: not an execution-only run")
        idle = timed(["apply", "--wait"], fresh_split)
        problems.append(check_courier(idle, "apply --wait with nothing due", None, n))
        return plain, execute, span, idle

    def execute_only() -> tuple[Proc | None, float]:
        if fresh_daemon is None:
            return None, float("nan")
        plain = timed(["apply"], fresh_daemon)
        problems.append(check_courier(plain, "apply (before daemon --once)", None, n))
        proc = timed(["daemon", "--once"], fresh_daemon)
        span, counts = executor_span(fresh_daemon) if proc.rc == 0 else (float("nan"), None)
        problems.append(check_courier(proc, "daemon --once", counts, n))
        return proc, span

    try:
        if e2e_first:
            e2e_proc, e2e_span = e2e()
            plain, execute, exec_span, idle = split()
            daemon_proc, daemon_span = execute_only()
        else:
            daemon_proc, daemon_span = execute_only()
            plain, execute, exec_span, idle = split()
            e2e_proc, e2e_span = e2e()
    finally:
        for repo in (fresh_e2e, fresh_split, fresh_daemon):
            if repo is not None:
                shutil.rmtree(repo, ignore_errors=True)
        os.sync()
    problems = [p for p in problems if p]
    return CourierRound(
        e2e_proc, e2e_span, plain, execute, exec_span, idle, daemon_proc, daemon_span, problems
    )


def spawn_baseline(n: int, workers: int = 32) -> float:
    """Seconds to spawn and reap `n` `sh -c true` from `workers` threads (no bookkeeping)."""
    sh = shutil.which("sh") or "/bin/sh"

    def one(_: int) -> int:
        return subprocess.run(
            [sh, "-c", "true"], stdin=subprocess.DEVNULL, check=False, start_new_session=True
        ).returncode

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - started
    if any(codes):
        raise SystemExit("baseline: `sh -c true` failed")
    return elapsed


# --- ansible ---------------------------------------------------------------------------------


def ansible_venv() -> tuple[Path, str]:
    """bench/out/execute/ansible-venv with ansible-core from PyPI (installed once, kept)."""
    venv = WORK / "ansible-venv"
    ansible = venv / "bin" / "ansible"
    if not ansible.exists():
        print("installing ansible-core into bench/out/execute/ansible-venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "ansible-core"], check=True, timeout=900
        )
    version = subprocess.run(
        [str(ansible), "--version"], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()[0]
    return venv, version


def ansible_files(venv: Path, hosts: int) -> tuple[Path, dict[str, str]]:
    python = venv / "bin" / "python"
    inventory = WORK / f"ansible-{hosts}.ini"
    lines = ["[all]"] + [
        f"{h} ansible_connection=local ansible_python_interpreter={python}" for h in node_ids(hosts)
    ]
    inventory.write_text("\n".join(lines) + "\n")
    tmp = WORK / "ansible-tmp"
    config = WORK / "ansible.cfg"
    config.write_text(
        "[defaults]\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        "deprecation_warnings = False\n"
        "nocolor = True\n"
        f"local_tmp = {tmp}/local\n"
        f"remote_tmp = {tmp}/remote\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(config)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return inventory, env


@dataclass
class AnsibleRun:
    hosts: int  # hosts actually run
    proc: Proc
    ok: int  # hosts that reported CHANGED rc=0
    extrapolated: bool
    problem: str = ""

    @property
    def hosts_per_s(self) -> float:
        return self.hosts / self.proc.wall if self.proc.wall else float("nan")


def ansible_round(venv: Path, hosts: int, timeout: float) -> AnsibleRun:
    inventory, env = ansible_files(venv, hosts)
    argv = [
        str(venv / "bin" / "ansible"),
        "-i",
        str(inventory),
        "all",
        "-c",
        "local",
        "-m",
        "command",
        "-a",
        "true",
        "-f",
        "32",
    ]
    proc = run_timed(argv, WORK, timeout, env)
    ok = len(re.findall(r"^\S+ \| CHANGED \| rc=0", proc.stdout, re.MULTILINE))
    problem = ""
    if proc.timed_out:
        problem = f"timed out after {proc.wall:.0f}s"
    elif proc.rc != 0 or ok != hosts:
        problem = f"exit {proc.rc}, {ok} of {hosts} hosts ok: {proc.stderr.strip()[-300:]}"
    return AnsibleRun(hosts, proc, ok, extrapolated=False, problem=problem)


def ansible_measure(venv: Path, hosts: int, timeout: float, fallback: bool) -> AnsibleRun:
    """All `hosts`, unless that outlives `timeout`: then ANSIBLE_FALLBACK_HOSTS, extrapolated."""
    if not fallback:
        run = ansible_round(venv, hosts, timeout)
        if not run.proc.timed_out:
            return run
        print(f"  ansible on {hosts} hosts: {run.problem}; measuring 200 hosts", flush=True)
    small = ansible_round(venv, min(hosts, ANSIBLE_FALLBACK_HOSTS), timeout)
    small.extrapolated = small.hosts < hosts
    return small


# --- profile ---------------------------------------------------------------------------------


def profile_child(repo: Path, out: Path, clock: str) -> None:
    """In this (child) process: `courier apply --wait` in `repo` through `cli.main.run`, every
    thread under its own cProfile with `clock` (cpu: time.thread_time; wall: perf_counter)."""
    import cProfile

    timer = time.thread_time if clock == "cpu" else time.perf_counter
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        prof = cProfile.Profile(timer)
        with lock:
            profiles.append(prof)
        prof.enable()
        try:
            original(self)
        finally:
            prof.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    os.chdir(repo)
    os.environ.update(courier_env())
    sys.argv = ["courier", "apply", "--wait"]
    main = cProfile.Profile(timer)
    own0, kids0 = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    started = time.perf_counter()
    code: Any = 0
    main.enable()
    try:
        from cli.main import run  # imported under the profile: import time counts

        run()
    except SystemExit as exc:
        code = exc.code
    finally:
        main.disable()
    wall = time.perf_counter() - started
    own1, kids1 = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    pstats.Stats(main).dump_stats(str(out) + ".main")
    if profiles:
        workers = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            workers.add(prof)
        workers.dump_stats(str(out) + ".threads")
    facts = {
        "code": code,
        "wall": wall,
        "threads": len(profiles),
        "cpu_self": (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime),
        "cpu_children": (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime),
        "rss_kb": own1.ru_maxrss,
    }
    Path(str(out) + ".json").write_text(json.dumps(facts))


def short(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name  # a built-in
    p = Path(path)
    try:
        where = p.relative_to(ROOT).as_posix()
    except ValueError:
        parts = p.parts
        where = (
            "/".join(parts[parts.index("site-packages") + 1 :])
            if "site-packages" in parts
            else p.name
        )
    return f"{where}:{line}({name})"


def _ours(path: str) -> bool:
    """Courier's own code, less the CLI's entry frames (they only wrap the whole run)."""
    if not path.startswith(str(ROOT)) or path.startswith(str(ROOT / ".venv")):
        return False
    return not path.endswith(("cli/main.py", "cli/errors.py"))


def top(
    stats: pstats.Stats, key: int, count: int, only_ours: bool = False
) -> list[tuple[str, float, int]]:
    """(function, seconds, calls) by tottime (key=2) or cumtime (key=3)."""
    rows = []
    for func, (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if only_ours and not _ours(func[0]):
            continue
        rows.append((short(func), tt if key == 2 else ct, nc))
    rows.sort(key=lambda r: r[1], reverse=True)
    return rows[:count]


def pick(stats: pstats.Stats, names: Sequence[str]) -> dict[str, float]:
    """Cumulative seconds of named functions (`file-suffix:function`), summed over matches."""
    found: dict[str, float] = {}
    for func, (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for name in names:
            suffix, fn = name.rsplit(":", 1)
            if func[2] == fn and func[0].endswith(suffix):
                found[name] = found.get(name, 0.0) + ct
    return {name: found[name] for name in names if name in found}


MAIN_PARTS = [
    "<frozen importlib._bootstrap>:_find_and_load",
    "cli/wiring.py:open_store",
    "state/migrating.py:migrate",
    "cli/wiring.py:load_inventory",
    "cli/commands/reconcile.py:_desired",
    "cli/wiring.py:head_commit",
    "reconciler/applying.py:apply",
    "cli/commands/reconcile.py:run_due",
    "reconciler/executing/orchestrating.py:__init__",
    "state/store.py:start_runs",
    "reconciler/executing/orchestrating.py:_dispatch",
    "concurrent/futures/_base.py:wait",
    "reconciler/executing/orchestrating.py:_record",
    "cli/progress.py:run_finished",
    "reconciler/executing/orchestrating.py:_signal_canceled",
    "state/store.py:finish_instance",
    "concurrent/futures/thread.py:shutdown",
]
THREAD_PARTS = [
    "reconciler/executing/orchestrating.py:_execute",
    "reconciler/executing/orchestrating.py:node_workdir",
    "reconciler/executing/running.py:execute_run",
    "reconciler/executing/attempt.py:run_attempt",
    "tempfile.py:mkdtemp",
    "tempfile.py:TemporaryFile",
    "reconciler/interpreters/base.py:run_commands",
    "subprocess.py:_execute_child",
    "subprocess.py:wait",
    "reconciler/executing/attempt.py:_tail",
    "reconciler/executing/attempt.py:_outputs",
    "reconciler/executing/attempt.py:_zip",
    "reconciler/evidence/filesystem.py:put",
    "shutil.py:rmtree",
]
PROFILES = (("exec", "wall"), ("exec", "cpu"), ("e2e", "cpu"))
"""(which process, which clock): "exec" is `apply --wait` after a plain `apply` (subprocess)."""


def profile(template: Path, n: int, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for mode, clock in PROFILES:
        repo = fresh_repo(template)
        out = WORK / f"profile-{mode}-{clock}"
        try:
            if mode == "exec":
                plain = run_timed([str(COURIER), "apply"], repo, timeout, courier_env())
                if plain.rc != 0:
                    raise SystemExit(f"profile: courier apply failed: {plain.stderr[-800:]}")
            child = subprocess.run(
                [sys.executable, __file__, "--profile-child", str(repo), str(out), clock],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=courier_env(),
            )
            span, counts = executor_span(repo)
        finally:
            shutil.rmtree(repo, ignore_errors=True)
        facts = json.loads(Path(str(out) + ".json").read_text())
        if child.returncode != 0 or facts["code"] not in (0, None) or counts.get("success") != n:
            raise SystemExit(f"profile run failed: {child.stderr[-800:]} {facts} {counts}")
        main = pstats.Stats(str(out) + ".main")
        threads = pstats.Stats(str(out) + ".threads")
        both = pstats.Stats(str(out) + ".main")
        both.add(str(out) + ".threads")
        result[f"{mode}-{clock}"] = {
            "facts": facts,
            "span": span,
            "main_parts": pick(main, MAIN_PARTS),
            "thread_parts": pick(threads, THREAD_PARTS),
            "top_tottime": top(both, 2, 15),
            "top_ours": top(both, 3, 15, only_ours=True),
        }
        for suffix in (".main", ".threads", ".json"):
            Path(str(out) + suffix).unlink(missing_ok=True)
    return result


def import_times(template: Path, timeout: float) -> list[tuple[str, float]]:
    """Own import time by top-level package during `apply --wait` (python -X importtime)."""
    repo = fresh_repo(template)
    try:
        child = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "cli.main", "apply", "--wait"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=courier_env(),
        )
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    own: dict[str, float] = {}
    for line in child.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if found:
            package = found.group(4).split(".")[0]
            own[package] = own.get(package, 0.0) + int(found.group(1)) / 1e6
    return sorted(own.items(), key=lambda kv: kv[1], reverse=True)


def components(template: Path, count: int) -> list[tuple[str, float, float, str]]:
    """Per-run costs of the executor's worker path, one thread, no contention: (what, wall ms,
    CPU ms, note) per operation, averaged over `count`. Each piece is timed alone, then the
    whole `execute_run` of the bench job, so the pieces can be compared with the whole."""
    from datetime import UTC
    from datetime import datetime as dt

    rows: list[tuple[str, float, float, str]] = []
    scratch = Path(tempfile.mkdtemp(prefix="components-", dir=WORK / "tmp"))

    def measure(what: str, fn: Any, note: str = "") -> None:
        fn(-1)  # warm up (imports, first directory)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(count):
            fn(i)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        rows.append((what, wall / count * 1000, cpu / count * 1000, note))

    try:
        from reconciler.evidence.filesystem import FileEvidenceStore
        from reconciler.evidence.zipping import build_zip
        from reconciler.executing.orchestrating import node_workdir
        from reconciler.executing.running import RunContext, execute_run
        from reconciler.model.job import JobTemplate
        from reconciler.ports import evidence_key

        env = courier_env()
        sh = shutil.which("sh") or "/bin/sh"
        store = FileEvidenceStore(scratch / "evidence")
        flat = scratch / "flat"
        flat.mkdir()
        blob = b"x" * 1100  # about the size of one attempt's zip here
        members = [
            ("stdout.txt", b""),
            ("stderr.txt", b""),
            ("command.txt", b"true\n"),
            ("outputs.json", b"{}"),
            ("result.json", b"{" + b" " * 600 + b"}"),
        ]
        now = dt.now(UTC)

        def spawn(_: int) -> None:
            with tempfile.TemporaryFile() as out:
                subprocess.run(
                    [sh, "-c", "true"],
                    cwd=scratch,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                    check=True,
                )

        def put_nested(i: int) -> None:
            store.put(evidence_key(f"r{i}", 1, 1), blob)

        def put_flat(i: int) -> None:
            path = flat / f"evidence-run-r{i}-step-1-attempt-1.zip"
            part = path.with_name(f".{path.name}.part")
            part.write_bytes(blob)
            part.replace(path)

        def evidence_dir(_: int) -> None:
            folder = Path(tempfile.mkdtemp(prefix="courier-evidence-"))
            list(os.walk(folder))
            shutil.rmtree(folder)

        def temp_files(_: int) -> None:
            with tempfile.TemporaryFile() as a, tempfile.TemporaryFile() as b:
                a.seek(0, os.SEEK_END), b.seek(0, os.SEEK_END)

        measure("spawn `sh -c true` and wait (with env, cwd, own session)", spawn)
        measure(
            "build_zip of the 5 members of an attempt", lambda _: build_zip(members, now, bytes)
        )
        measure(
            "FileEvidenceStore.put: run/<id>/step/1/attempt/1/<file>.zip",
            put_nested,
            "5 new directories per attempt",
        )
        measure("same bytes, one flat folder (write .part, rename)", put_flat, "what-if")
        measure("mkdtemp + walk + rmtree ($COURIER_EVIDENCE_DIR)", evidence_dir)
        measure("two TemporaryFile (stdout, stderr)", temp_files)
        measure("node_workdir (folder exists)", lambda _: node_workdir(scratch / "nodes", "n0000"))

        from cli.wiring import SystemClock, load_inventory

        inventory = load_inventory(template)
        job = JobTemplate.model_validate(
            json.loads((template / "jobs.d" / f"{JOB_NAME}.json").read_text())
        )
        node = inventory.node("n0000")
        assert node is not None
        runs_store = FileEvidenceStore(scratch / "runs-evidence")
        clock = SystemClock()

        def whole(i: int) -> None:
            ctx = RunContext(
                job_name=job.name,
                instance_id="bench",
                run_id=f"run-{i}",
                node=node,
                workdir=node_workdir(scratch / "nodes", node.id),
                env=env,
            )
            outcome = execute_run(
                job.actions.steps, ctx, evidence=runs_store, clock=clock, cancel=threading.Event()
            )
            if str(outcome.status) != "success":
                raise RuntimeError(f"execute_run: {outcome.status} {outcome.reason}")

        measure("whole `execute_run` of the bench job (one run, one thread)", whole, "the sum")
    except Exception as exc:  # the code under test changes often: report, do not crash the bench
        rows.append((f"not measured: {type(exc).__name__}: {exc}", float("nan"), float("nan"), ""))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def components_table(rows: list[tuple[str, float, float, str]], count: int) -> str:
    lines = [
        f"Per-run costs of the worker path, one thread, no contention ({count} of each, "
        "in the bench process):",
        "",
        "| operation | wall ms | CPU ms (this process) | note |",
        "|---|---|---|---|",
    ]
    lines += [f"| {what} | {wall:.3f} | {cpu:.3f} | {note} |" for what, wall, cpu, note in rows]
    return "\n".join(lines)


# --- report ----------------------------------------------------------------------------------


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds and seconds == seconds and seconds > 0 else float("nan")


def fmt_rate(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def courier_table(rounds: list[CourierRound], baselines: list[float], n: int) -> str:
    lines = [
        "| round | what | wall | CPU (with `sh` children) | peak RSS | runs/s | load at the end |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(i: int, what: str, p: Proc | None, wall: float, cpu: str, bold: bool) -> None:
        runs = "" if what.startswith(("plain", "fixed")) else fmt_rate(rate(n, wall))
        lines.append(
            f"| {i} | {what} | {wall:.2f} s | {cpu} "
            f"| {f'{p.rss_kb / 1024:.0f} MiB' if p else ''} "
            f"| {f'**{runs}**' if bold else runs} | {p.load if p else ''} |"
        )

    for i, (r, base) in enumerate(zip(rounds, baselines, strict=True), 1):
        row(i, "e2e: `apply --wait`, fresh repo", r.e2e, r.e2e.wall, f"{r.e2e.cpu:.2f} s", True)
        row(i, "plain `apply`, fresh repo", r.apply, r.apply.wall, f"{r.apply.cpu:.2f} s", False)
        row(i, "e2e minus plain apply", None, r.e2e.wall - r.apply.wall, "", False)
        row(
            i,
            "**exec process**: `apply --wait` after the `apply`",
            r.exec,
            r.exec.wall,
            f"{r.exec.cpu:.2f} s",
            True,
        )
        row(
            i,
            "fixed: `apply --wait`, nothing due",
            r.idle,
            r.idle.wall,
            f"{r.idle.cpu:.2f} s",
            False,
        )
        row(
            i,
            "exec process minus fixed",
            None,
            r.exec.wall - r.idle.wall,
            f"{r.exec.cpu - r.idle.cpu:.2f} s",
            False,
        )
        if r.daemon is not None:
            row(
                i,
                "**execute-only process**: `daemon --once` after a plain `apply`",
                r.daemon,
                r.daemon.wall,
                f"{r.daemon.cpu:.2f} s",
                True,
            )
            row(i, "executor span (state), `daemon --once`", None, r.daemon_span, "", False)
        row(i, "executor span (state), exec process", None, r.exec_span, "", False)
        row(i, "executor span (state), e2e", None, r.e2e_span, "", False)
        row(i, f"baseline: {n} x `sh -c true`, 32 threads", None, base, "", False)
    return "\n".join(lines)


def ansible_table(runs: list[AnsibleRun], rounds: list[CourierRound], n: int) -> str:
    lines = [
        "| round | hosts run | wall | CPU | peak RSS (one process) | hosts/s | courier/ansible "
        f"({headline(rounds[0])[1].split(' (')[0] if rounds else '-'}) "
        "| courier/ansible (e2e) | load after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, (a, r) in enumerate(zip(runs, rounds, strict=False), 1):
        note = (
            f" (of {n}; extrapolated: {n} hosts ≈ {n / a.hosts_per_s:.0f} s)"
            if a.extrapolated
            else ""
        )
        lines.append(
            f"| {i} | {a.hosts}{note} | {a.proc.wall:.1f} s | {a.proc.cpu:.1f} s "
            f"| {a.proc.rss_kb / 1024:.0f} MiB | **{a.hosts_per_s:.1f}** "
            f"| **{rate(n, headline(r)[0].wall) / a.hosts_per_s:.0f}x** "
            f"| {rate(n, r.e2e.wall) / a.hosts_per_s:.0f}x | {a.proc.load} |"
        )
    return "\n".join(lines)


def _parts(parts: dict[str, float]) -> str:
    return ", ".join(f"`{k.rsplit(':', 1)[1]}` {v:.2f}" for k, v in parts.items())


def _facts(p: dict[str, Any]) -> str:
    f = p["facts"]
    return (
        f"{f['wall']:.2f} s wall, courier's own CPU {f['cpu_self']:.2f} s, step processes' CPU "
        f"{f['cpu_children']:.2f} s, {f['threads']} threads, peak RSS {f['rss_kb'] / 1024:.0f} "
        f"MiB; executor span {p['span']:.2f} s"
    )


def profile_text(prof: dict[str, Any], imports: list[tuple[str, float]], n: int) -> str:
    wall, cpu, e2e = prof["exec-wall"], prof["exec-cpu"], prof["e2e-cpu"]
    out = [
        f"Profiles of the {n:,}-node runs in process (`cli.main.run` under cProfile, every "
        "thread profiled; the profiler slows Python code down, so the seconds are inflated and "
        "the shares are what matter). Seconds are cumulative; for worker threads they are summed "
        'over the threads. "exec" is `apply --wait` after a plain `apply`.',
        "",
        f"- exec, wall clock: {_facts(wall)}.",
        f"  - main thread (wall s): {_parts(wall['main_parts'])}",
        f"- exec, CPU clock (`time.thread_time`): {_facts(cpu)}.",
        f"  - main thread (CPU s): {_parts(cpu['main_parts'])}",
        f"  - worker threads (CPU s, summed): {_parts(cpu['thread_parts'])}",
        f"- e2e (`apply --wait` in a fresh repo), CPU clock: {_facts(e2e)}.",
        f"  - main thread (CPU s): {_parts(e2e['main_parts'])}",
        "",
        "Top own CPU time, all threads of the exec process:",
        "",
        "| function | CPU s (own) | calls |",
        "|---|---|---|",
    ]
    out += [f"| `{name}` | {sec:.3f} | {calls} |" for name, sec, calls in cpu["top_tottime"][:15]]
    out += [
        "",
        "Top cumulative CPU time in courier's code, all threads of the exec process:",
        "",
        "| function | CPU s (cumulative) | calls |",
        "|---|---|---|",
    ]
    out += [f"| `{name}` | {sec:.3f} | {calls} |" for name, sec, calls in cpu["top_ours"][:15]]
    out += [
        "",
        "Import time by top-level package (`python -X importtime`, own time, during "
        "`apply --wait`): "
        + ", ".join(f"{p} {s * 1000:.0f} ms" for p, s in imports[:10])
        + f"; total {sum(s for _, s in imports):.2f} s.",
    ]
    return "\n".join(out)


def write_results(section: str) -> None:
    """Replace the `## execute` section of RESULTS.md, keeping everything else."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if not text.startswith("# "):
        text = (
            "# Benchmark results\n\n"
            "Numbers from the scripts in `bench/`; each script rewrites its own `##` section.\n\n"
            + text
        )
    start = text.find("\n## execute\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        old = text[start + 1 : end + 1 if end >= 0 else len(text)]
        keep = re.search(r"<!-- keep -->.*?<!-- /keep -->\n", old, re.DOTALL)
        if keep:  # hand-written notes inside the section survive reruns
            section = section.rstrip("\n") + "\n\n" + keep.group(0)
        rest = text[end + 1 :] if end >= 0 else ""
        text = text[: start + 1] + section + ("\n" + rest if rest else "")
    RESULTS.write_text(text.rstrip("\n") + "\n")


def code_version() -> str:
    """The commit measured, and the files changed since outside bench/ (others edit meanwhile)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = [line[3:] for line in status if not line[3:].startswith("bench/")]
    return f"{head}" + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


# --- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of every measurement")
    parser.add_argument("--ansible-hosts", type=int, default=None, help="default: --nodes")
    parser.add_argument(
        "--ansible-timeout",
        type=float,
        default=900,
        help=f"seconds; past it, Ansible is measured on {ANSIBLE_FALLBACK_HOSTS} hosts and "
        "extrapolated linearly",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per courier process")
    parser.add_argument("--no-ansible", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    parser.add_argument(
        "--profile-only", action="store_true", help="only the profiles; print, write nothing"
    )
    parser.add_argument("--profile-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile_child:
        repo, out, clock = args.profile_child
        profile_child(Path(repo), Path(out), clock)
        return 0

    n = args.nodes
    WORK.mkdir(parents=True, exist_ok=True)
    version_at_start = code_version()
    daemon = has_daemon_once()
    template = make_template(n)
    print(f"repo: {n} local nodes, job {JOB_NAME} (one step `true`); {machine()}", flush=True)
    if not HAVE_GNU_TIME:
        print("no GNU time: peak RSS is the largest child so far (getrusage)", flush=True)

    if args.profile_only:
        print(profile_text(profile(template, n, args.timeout), import_times(template, 300), n))
        print("\n" + components_table(components(template, COMPONENT_COUNT), COMPONENT_COUNT))
        return 0

    venv, ansible_version = (None, "")
    if not args.no_ansible:
        venv, ansible_version = ansible_venv()
        print(f"ansible: {ansible_version}", flush=True)

    rounds: list[CourierRound] = []
    baselines: list[float] = []
    ansible_runs: list[AnsibleRun] = []
    problems: list[str] = []
    for i in range(1, args.repeat + 1):
        print(f"round {i}: courier ...", flush=True)
        r = courier_round(template, n, args.timeout, e2e_first=i % 2 == 1, daemon=daemon)
        rounds.append(r)
        problems += [f"round {i}: {p}" for p in r.problems]
        baselines.append(spawn_baseline(n))
        print(
            f"  e2e {r.e2e.wall:.2f}s ({rate(n, r.e2e.wall):.0f} runs/s), "
            f"apply {r.apply.wall:.2f}s, "
            f"exec process {r.exec.wall:.2f}s ({rate(n, r.exec.wall):.0f} runs/s), span "
            f"{r.exec_span:.2f}s ({rate(n, r.exec_span):.0f} runs/s), "
            f"fixed {r.idle.wall:.2f}s, "
            + (
                f"daemon --once {r.daemon.wall:.2f}s ({rate(n, r.daemon.wall):.0f} runs/s), "
                if r.daemon
                else ""
            )
            + f"RSS "
            f"{r.exec.rss_kb / 1024:.0f}/{r.e2e.rss_kb / 1024:.0f} MiB, baseline "
            f"{baselines[-1]:.2f}s; {r.exec.load}",
            flush=True,
        )
        for p in r.problems:
            print(f"  PROBLEM: {p}", flush=True)
        if venv is not None:
            hosts = args.ansible_hosts or n
            fallback = any(a.extrapolated for a in ansible_runs)  # it timed out before
            shown = ANSIBLE_FALLBACK_HOSTS if fallback else hosts
            print(f"round {i}: ansible on {shown} hosts ...", flush=True)
            a = ansible_measure(venv, hosts, args.ansible_timeout, fallback)
            ansible_runs.append(a)
            if a.problem:
                problems.append(f"round {i}: ansible: {a.problem}")
            print(
                f"  {a.hosts} hosts in {a.proc.wall:.1f}s: {a.hosts_per_s:.1f} hosts/s, RSS "
                f"{a.proc.rss_kb / 1024:.0f} MiB, ratio ({headline(r)[1]}) "
                f"{rate(n, headline(r)[0].wall) / a.hosts_per_s:.0f}x; {a.proc.load}"
                + (f"; PROBLEM: {a.problem}" if a.problem else ""),
                flush=True,
            )

    prof: dict[str, Any] | None = None
    imports: list[tuple[str, float]] = []
    comp_text = "(no component costs: --no-profile)"
    if not args.no_profile:
        print("profile ...", flush=True)
        prof = profile(template, n, args.timeout)
        imports = import_times(template, args.timeout)
        comp_text = components_table(components(template, COMPONENT_COUNT), COMPONENT_COUNT)

    label = headline(rounds[0])[1] if rounds else "exec process"
    head_rates = [rate(n, headline(r)[0].wall) for r in rounds]
    exec_rates = [rate(n, r.exec.wall) for r in rounds]
    e2e_rates = [rate(n, r.e2e.wall) for r in rounds]
    alone_rates = [rate(n, r.exec.wall - r.idle.wall) for r in rounds]
    ratios = [
        rate(n, headline(r)[0].wall) / a.hosts_per_s
        for r, a in zip(rounds, ansible_runs, strict=False)
    ]
    ok_runs = bool(head_rates) and min(head_rates) >= RUNS_TARGET
    ok_ratio = bool(ratios) and min(ratios) >= RATIO_TARGET
    summary = (
        f"runs/s, {label}: {', '.join(fmt_rate(x) for x in head_rates)} "
        f"(target >= {RUNS_TARGET:.0f}: {'met' if ok_runs else 'NOT met'}); "
        f"`apply --wait` after `apply`: {', '.join(fmt_rate(x) for x in exec_rates)}; "
        f"end to end: {', '.join(fmt_rate(x) for x in e2e_rates)}; execution alone (that "
        f"process minus the fixed costs): {', '.join(fmt_rate(x) for x in alone_rates)}"
    )
    if ratios:
        summary += (
            f"; courier/ansible: {', '.join(f'{x:.0f}x' for x in ratios)} "
            f"(target >= {RATIO_TARGET:.0f}x: {'met' if ok_ratio else 'NOT met'})"
        )
    c_table = courier_table(rounds, baselines, n)
    a_table = ansible_table(ansible_runs, rounds, n) if ansible_runs else "(Ansible not run)"
    p_text = profile_text(prof, imports, n) if prof else "(no profile: --no-profile)"
    p_text += "\n\n" + comp_text
    print("\n" + c_table + "\n\n" + a_table + "\n\n" + p_text + "\n\n" + summary)
    for p in problems:
        print(f"PROBLEM: {p}")

    if not args.no_write:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        problem_text = "".join(f"\n- problem: {p}" for p in problems)
        version_at_end = code_version()
        code_line = (
            version_at_start
            if version_at_end == version_at_start
            else f"{version_at_start} at the start, {version_at_end} at the end"
        )
        section = f"""## execute

Generated by `bench/bench_execute.py`; do not edit the tables by hand (notes go in the keep
block below). One job (`{JOB_NAME}`: one step `true`, one group over all nodes, batch 100%,
success 100%) over {n} `transport: local` nodes n0000..n{n - 1:04d}, in fresh copies of a git
repo. "e2e" is `courier apply --wait` in a fresh repo; "execute-only" is `courier daemon --once`
after a plain `courier apply` (the runs/s target is judged on it); "exec process" is
`courier apply --wait` after a plain `courier apply` (a no-op plan, then the execution), and
"fixed" is `apply --wait` once more in that repo (nothing to apply, nothing due: start-up,
state, inventory, plan). Odd rounds run e2e first, even rounds the other
processes first; the disk is synced before each process, and repos are deleted only after the
round. "executor span" is first dispatch to last recorded run, from the state. CPU is
user + system of the process and its children (the `sh` steps included); peak RSS from GNU
`time -v`. Ansible: {ansible_version or "not run"}, in bench/out/execute/ansible-venv, inventory
of the same hosts with `ansible_connection=local` and `ansible_python_interpreter` set to that
venv's python, `ansible -i INVENTORY all -c local -m command -a true -f 32`.

Machine: {machine()}; measured {when}.
Code: {code_line}.
The machine is shared: the load average is in the tables, and the `sh -c true` baseline
(spawned from 32 threads in the bench process, in the same round) shows how much process
creation this machine gave at that moment.

{c_table}

{a_table}

**{summary}.**{problem_text}

{p_text}
"""
        write_results(section)
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0 if ok_runs and (args.no_ansible or ok_ratio) and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
