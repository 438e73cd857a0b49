"""Benchmark `courier report` over 10,000 jobs and 100,000 runs (issue 5: <= 5 s).

    .venv/bin/python bench/bench_report.py [--jobs 10000] [--nodes 10] [--repeat 3]
        [--no-subprocess] [--profile] [--no-write]

Populates a scratch SQLite state under bench/out/report-<jobs>x<nodes>/ through the store API
(`SqlStateStore.write` with `insert_job`/`create_instance(assignments=...)`, then `record_runs` and
`finish_instance`; kept between runs), one instance per job with one run per node, two steps per
run, 2% of the runs failing with an evidence zip. Then times the report: in process, stage by
stage (load, assemble, render, write), on the store as it is (one query per instance and per run)
and on a prototype of the bulk reads proposed for `state/` (`runs_of`, `steps_of`, below); and
`courier report` as a subprocess. Rewrites the `## report` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import os
import platform
import pstats
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
SEED = 20261123
TARGET_S = 5.0
T0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)

from reconciler.evidence.filesystem import FileEvidenceStore  # noqa: E402
from reconciler.model.enums import InstanceStatus, RunStatus, StepStatus  # noqa: E402
from reconciler.ports import (  # noqa: E402
    AttemptResult,
    JobVersion,
    NewJob,
    RunRecord,
    StepResult,
    StoredRun,
    evidence_key,
)
from reconciler.reporting import Links, render  # noqa: E402
from reconciler.reporting.data import (  # noqa: E402
    assemble,
    load,
    tail_reader,
)
from reconciler.reporting.writing import write_report  # noqa: E402
from state import SqlStateStore, open_store  # noqa: E402

# -- the prototype of the proposed bulk reads ---------------------------------------------------


class BulkStore(SqlStateStore):
    """`SqlStateStore` plus the two bulk reads the report needs. A PROTOTYPE for the benchmark
    (SQLite only): the real methods belong in `state/` (rows stay there). Plain SQL through the
    driver, timestamps parsed with `fromisoformat`: SQLAlchemy's typed result processing of
    500,000 rows costs more than the whole report may take."""

    CHUNK = 900  # below SQLite's default limit of 999 parameters

    def runs_of(self, instance_ids: Sequence[str]) -> dict[str, list[StoredRun]]:
        found: dict[str, list[StoredRun]] = {i: [] for i in instance_ids}
        ids = list(instance_ids)
        with self._reading() as conn:
            for start in range(0, len(ids), self.CHUNK):
                chunk = ids[start : start + self.CHUNK]
                rows = conn.exec_driver_sql(
                    "SELECT id, instance_id, node_id, group_number, status, received_time, "  # noqa: S608 - only `?` placeholders are joined in
                    "last_update_time, reason FROM runs "
                    f"WHERE instance_id IN ({', '.join('?' * len(chunk))}) "
                    "ORDER BY instance_id, group_number, position, id",
                    tuple(chunk),
                )
                for rid, iid, node, group, status, received, updated, reason in rows:
                    found[iid].append(
                        StoredRun(
                            rid,
                            iid,
                            node,
                            group,
                            RUN_STATUS[status],
                            _utc(received),
                            _utc(updated),
                            reason or "",
                        )
                    )
        return found

    def steps_of(self, run_ids: Sequence[str]) -> dict[str, list[StepResult]]:
        found: dict[str, list[StepResult]] = {r: [] for r in run_ids}
        ids = list(run_ids)
        with self._reading() as conn:
            for start in range(0, len(ids), self.CHUNK):
                chunk = ids[start : start + self.CHUNK]
                rows = conn.exec_driver_sql(
                    "SELECT s.run_id, s.step_number, s.status, s.num_attempts, s.reason, "  # noqa: S608 - only `?` placeholders are joined in
                    "a.attempt_no, a.status, a.exit_code, a.started_at, a.ended_at, "
                    "a.evidence_key, a.reason FROM steps s LEFT JOIN attempts a "
                    "ON a.run_id = s.run_id AND a.step_number = s.step_number "
                    f"WHERE s.run_id IN ({', '.join('?' * len(chunk))}) "
                    "ORDER BY s.run_id, s.step_number, a.attempt_no",
                    tuple(chunk),
                ).all()
                head: tuple[Any, ...] | None = None
                attempts: list[AttemptResult] = []
                for rid, number, status, tries, reason, no, *attempt in rows:
                    if head is None or (rid, number) != head[:2]:
                        if head is not None:
                            found[head[0]].append(_step(head, attempts))
                        head, attempts = (rid, number, status, tries, reason), []
                    if no is not None:
                        a_status, code, began, ended, key, a_reason = attempt
                        attempts.append(
                            AttemptResult(
                                no,
                                STEP_STATUS[a_status],
                                code,
                                _utc(began),
                                _utc(ended),
                                a_reason or "",
                                key,
                            )
                        )
                if head is not None:
                    found[head[0]].append(_step(head, attempts))
        return found


def _step(head: tuple[Any, ...], attempts: list[AttemptResult]) -> StepResult:
    _, number, status, tries, reason = head
    return StepResult(
        step_number=number,
        status=STEP_STATUS[status],
        num_attempts=tries,
        reason=reason or "",
        attempts=tuple(attempts),
    )


RUN_STATUS = {s.value: s for s in RunStatus}
STEP_STATUS = {s.value: s for s in StepStatus}


def _utc(text: Any) -> Any:
    if text is None:
        return None
    if isinstance(text, datetime.datetime):
        return text
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


# -- the scratch state -------------------------------------------------------------------------


def spec_of(name: str) -> dict[str, Any]:
    shell = {"name": "chef-platform/shell-interpreter", "skill": {"minVersion": "1.0.0"}}
    return {
        "name": name,
        "description": f"benchmark job {name}",
        "scheduleRule": "immediate",
        "target": {"executionType": "sequential", "groups": []},
        "actions": {
            "steps": [
                {"name": "prepare", "interpreter": shell, "command": {"linux": ["true"]}},
                {"name": "check", "interpreter": shell, "command": {"linux": ["test -f x"]}},
            ]
        },
    }


def evidence_zip(run_id: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("stdout.txt", "".join(f"checking {i}\n" for i in range(40)))
        zf.writestr("stderr.txt", f"test: x: No such file or directory ({run_id[:8]})\n")
    return buffer.getvalue()


def populate(folder: Path, jobs: int, nodes: int) -> Path:
    """The scratch repository with its state (made once, then reused)."""
    db = folder / ".courier" / "state.db"
    if (folder / "done").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    db.parent.mkdir(parents=True)
    rng = random.Random(SEED)

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    from reconciler.ports import Assignment

    store = open_store(f"sqlite:///{db}", folder)
    plan: list[tuple[str, list[Assignment]]] = []

    def mutate(writer: Any) -> None:
        for j in range(jobs):
            name = f"job-{j:05d}"
            job_id = new_id()
            at = T0 + datetime.timedelta(seconds=j)
            version = JobVersion(spec_of(name), f"h{j}", f"jobs.d/{name}.json", None, None, at)
            writer.insert_job(NewJob(job_id, name, True, f"jobs.d/{name}.json", at, None), version)
            assignments = [
                Assignment(new_id(), f"node-{n:02d}", n * 2 // nodes) for n in range(nodes)
            ]
            instance_id = writer.create_instance(job_id, 1, at, at, assignments)
            plan.append((instance_id, assignments))
        writer.bump_serial()

    started = time.perf_counter()
    store.write(mutate, lock_timeout=30, holder="bench_report")
    evidence = FileEvidenceStore(folder / ".courier" / "evidence")
    records: list[RunRecord] = []
    failed_instances: set[str] = set()
    for k, (instance_id, assignments) in enumerate(plan):
        at = T0 + datetime.timedelta(seconds=k)
        for n, assignment in enumerate(assignments):
            start = at + datetime.timedelta(milliseconds=40 * n)
            fail = rng.random() < 0.02
            steps = []
            for number in (1, 2):
                status = StepStatus.FAILURE if fail and number == 2 else StepStatus.SUCCESS
                key = evidence_key(assignment.run_id, number, 1)
                if status is StepStatus.FAILURE:
                    evidence.put(key, evidence_zip(assignment.run_id))
                    failed_instances.add(instance_id)
                begin = start + datetime.timedelta(milliseconds=15 * (number - 1))
                steps.append(
                    StepResult(
                        step_number=number,
                        status=status,
                        num_attempts=1,
                        reason="the command exited with 1" if fail and number == 2 else "",
                        attempts=(
                            AttemptResult(
                                1,
                                status,
                                1 if status is StepStatus.FAILURE else 0,
                                begin,
                                begin + datetime.timedelta(milliseconds=12),
                                "",
                                key,
                            ),
                        ),
                    )
                )
            records.append(
                RunRecord(
                    assignment.run_id,
                    RunStatus.FAILURE if fail else RunStatus.SUCCESS,
                    start,
                    start + datetime.timedelta(milliseconds=30),
                    tuple(steps),
                    "step 2 (check) failed: the command exited with 1" if fail else "",
                )
            )
        if len(records) >= 5000:
            store.record_runs(records)
            records = []
    if records:
        store.record_runs(records)
    for k, (instance_id, _) in enumerate(plan):
        status = (
            InstanceStatus.FAILURE if instance_id in failed_instances else InstanceStatus.SUCCESS
        )
        store.finish_instance(
            instance_id, status, T0 + datetime.timedelta(seconds=k, milliseconds=500)
        )
    store.engine.dispose()
    (folder / "done").write_text(
        f"{jobs} jobs x {nodes} nodes in {time.perf_counter() - started:.1f}s\n"
    )
    return folder


# -- timing ------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Seconds of CPU time (this process) per stage, and the wall time of the whole."""

    load: float
    assemble: float
    render: float
    write: float
    rewrite: float  # a second write of the same files (nothing changes)
    wall: float

    @property
    def total(self) -> float:
        return self.load + self.assemble + self.render + self.write


def links_for(repo: Path, out: Path) -> Links:
    return Links(
        None, os.path.relpath(repo / ".courier" / "evidence", out), os.path.relpath(repo, out)
    )


def time_in_process(repo: Path, store: SqlStateStore, out: Path) -> tuple[Timing, int, int]:
    shutil.rmtree(out, ignore_errors=True)
    evidence = FileEvidenceStore(repo / ".courier" / "evidence")
    clock = time.process_time
    gc.collect()
    gc.disable()  # as `courier report` does: no collection passes over 500,000 new objects
    try:
        w0, t0 = time.perf_counter(), clock()
        loaded = load(store)
        t1 = clock()
        report = assemble(loaded, tails=tail_reader(evidence.get))
        t2 = clock()
        files = render(report, links_for(repo, out))
        t3 = clock()
        write_report(out, files)
        t4, w4 = clock(), time.perf_counter()
        again = write_report(out, files)
        t5 = clock()
    finally:
        gc.enable()
    assert not again.changed
    size = sum(len(v) for v in files.values())
    timing = Timing(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, w4 - w0)
    return timing, report.runs, size


def time_subprocess(repo: Path) -> tuple[float, float, str]:
    """(wall, CPU of the child) seconds of `courier report` as a subprocess."""
    exe = Path(sys.executable).with_name("courier")
    shutil.rmtree(repo / "status-cli", ignore_errors=True)
    started = time.perf_counter()
    before = os.times()
    done = subprocess.run(
        [str(exe), "--repo", str(repo), "report", "--out", str(repo / "status-cli")],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("COURIER_")},
    )
    elapsed = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    if done.returncode != 0:
        raise SystemExit(f"courier report failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, cpu, done.stdout.strip()


def best(timings: list[Timing]) -> Timing:
    return min(timings, key=lambda t: t.total)


def write_results(section: str) -> None:
    """Replace the `## report` section of RESULTS.md (or append it), keeping everything else."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if not text.startswith("# "):
        text = (
            "# Benchmark results\n\n"
            "Numbers from the scripts in `bench/`; each script rewrites its own `##` section.\n\n"
            + text
        )
    start = text.find("\n## report\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        old = text[start + 1 : end + 1 if end >= 0 else len(text)]
        keep = re.search(r"<!-- keep -->.*?<!-- /keep -->\n", old, re.DOTALL)
        if keep:
            section = section.rstrip("\n") + "\n\n" + keep.group(0)
        rest = text[end + 1 :] if end >= 0 else ""
        text = text[: start + 1] + section + ("\n" + rest if rest else "")
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-fallback", action="store_true", help="skip the existing-reads rows (slow)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one bulk run")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()

    folder = OUT / f"report-{args.jobs}x{args.nodes}"
    started = time.perf_counter()
    repo = populate(folder, args.jobs, args.nodes)
    ready = time.perf_counter() - started
    print(f"state: {(folder / 'done').read_text().strip()} (ready in {ready:.1f}s)")
    url = f"sqlite:///{repo / '.courier' / 'state.db'}"

    from state.engine import open_engine

    load_before = os.getloadavg()[0]
    bulk = BulkStore(open_engine(url, repo=repo))
    measured = [time_in_process(repo, bulk, repo / "status-bulk") for _ in range(args.repeat)]
    timing, runs, size = min(measured, key=lambda m: m[0].total)
    rows: list[tuple[str, Timing]] = [("in process, bulk reads (prototype below)", timing)]
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(time_in_process, repo, bulk, repo / "status-bulk")
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    cli: tuple[float, float, str] | None = None
    if not args.no_fallback:
        plain = open_store(url, repo)
        rows.append(
            ("in process, existing reads", time_in_process(repo, plain, repo / "status-plain")[0])
        )
        cli = time_subprocess(repo)
    load_after = os.getloadavg()[0]

    lines = [
        "| how | load | assemble | render | write | total CPU | wall | rewrite, no change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, t in rows:
        lines.append(
            f"| {label} | {t.load:.2f} s | {t.assemble:.2f} s | {t.render:.2f} s | "
            f"{t.write:.2f} s | **{t.total:.2f} s** | {t.wall:.2f} s | {t.rewrite:.2f} s |"
        )
    if cli is not None:
        lines.append(
            f"| `courier report` subprocess (existing reads) | | | | | **{cli[1]:.2f} s** "
            f"| {cli[0]:.2f} s | |"
        )
    table = "\n".join(lines)
    cpu = rows[0][1].total
    verdict = "meets" if cpu <= TARGET_S else "misses"
    print(table)
    print(
        f"\n{runs} runs, {size / 1e6:.1f} MB of report; bulk {verdict} the {TARGET_S:.0f} s target"
    )
    print(f"load average {load_before:.1f} before, {load_after:.1f} after")
    if cli is not None:
        print(cli[2])
    if args.no_write:
        return
    machine = (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"
    )
    load = f"{load_before:.0f} before, {load_after:.0f} after"
    met = "met" if cpu <= TARGET_S else "NOT met"
    section = f"""## report

Generated by `bench/bench_report.py`; do not edit the table by hand (notes go in the keep block
below). `courier report` over {args.jobs:,} jobs with one instance each and {runs:,} runs
({args.nodes} nodes, 2 steps per run, 2% of the runs failing with an evidence zip whose tail is
read), written into an empty out dir: {size / 1e6:.0f} MB of report. Stage times are CPU
seconds of the process (best of {args.repeat} for the bulk row): the machine was shared (load
average {load} on {os.cpu_count()} cores), so wall times are inflated and CPU is the fair
number. {machine}; {datetime.date.today().isoformat()}. Target (issue 5): <= {TARGET_S:.0f} s.

{table}

**With the bulk reads: {cpu:.1f} s of CPU, the target is {met}.**
"""
    write_results(section)
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
