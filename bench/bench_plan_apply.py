"""Benchmark `courier plan` and `courier apply` over 10,000 jobs against issue 3's targets.

    .venv/bin/python bench/bench_plan_apply.py [--files 10000] [--repeat 3] [--formats json,mixed]
        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres | --no-pg] [--no-write]

For each format, generates the job files with bench/gen_jobs.py into a temporary git repository
(one commit; saved filter / list ids mapped onto a small pool that `nodes.yaml` defines, so apply
can resolve every group), then times the WHOLE CLI as subprocesses, best and median of a few runs:

(a) first `courier apply` of the 10,000 new jobs on SQLite (a fresh state file each run, so the
    schema migration is included); (b) the same on PostgreSQL (a scratch database, dropped and
    created again before each run); (c) no-op `courier plan` over the applied jobs, on both;
(d) `courier plan` after editing 10 (and 1,000) files' descriptions in the work tree: the cost
    should grow with the change, not the repository; (e) no-op `courier apply`.

Also: `courier --version` (start-up), the import time of `cli.main`, and a cProfile of the
in-process no-op plan. Prints a table and rewrites the `## plan and apply` section of
bench/RESULTS.md (other sections are kept). Targets: no-op plan <= 1 s; apply of 10,000 new jobs
<= 5 s on SQLite, <= 10 s on PostgreSQL. Runs are not pinned to a core: PostgreSQL's server
needs the other one. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
BIN = Path(sys.executable).parent
COURIER = [str(BIN / "courier")]
CODE = ROOT  # the tree whose `cli`, `reconciler` and `state` run; see --code
SEED = 20261122
SECTION = "## plan and apply"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import gen_jobs  # noqa: E402  (a sibling script, not a package)

PLAN_TARGET_S = 1.0
APPLY_SQLITE_TARGET_S = 5.0
APPLY_PG_TARGET_S = 10.0

POOL = 8  # saved filters and saved lists in nodes.yaml
SAVED_ID = re.compile(r"(?:filterId|listId)\W+([0-9a-f-]{36})")
UNBOUNDED = re.compile(r"RRULE:FREQ=MINUTELY;INTERVAL=3(?![;0-9])")
"""An endless exception rule of gen_jobs.py. Its 3-minute windows (1 to 3,600 minutes long) cover
every occurrence of the hourly/daily/weekly/monthly rules it is paired with, so such a job never
runs, and `reconciler.scheduling` only concludes that after skipping MAX_SKIPPED (100,000)
occurrences while stepping through the exception rule every 3 minutes: ~130 s per job here, and
about 7% of the generated jobs have it. The bench bounds it with `;COUNT=5`
unless --raw-schedules is given."""


# --- set-up ----------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com"}
    env |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def nodes_yaml() -> str:
    """A small fleet, POOL saved filters and POOL saved lists (ids `filter-N`, `list-N`)."""
    lines = ["nodes:"]
    for i in range(16):
        platform_name = ("ubuntu", "centos", "rhel", "debian")[i % 4]
        lines += [
            f"  - id: node-{i:02d}",
            "    transport: agent",
            f"    attributes: {{kernel_name: Linux, platform: {platform_name}, "
            f"hostname: web-{i}.example.com, ipaddress: 10.20.0.{i}}}",
            f"    tags: {{role: {'web' if i % 2 else 'db'}}}",
            "    skills: {chef-client: 18.2.0, shell-interpreter: 1.4.0}",
        ]
    lines.append("lists:")
    for i in range(POOL):
        lines.append(
            f"  - {{id: list-{i}, name: list {i}, nodeIds: [node-{i:02d}, node-{i + 8:02d}]}}"
        )
    lines.append("filters:")
    for i in range(POOL):
        lines += [
            f"  - id: filter-{i}",
            f"    name: filter {i}",
            "    constraints:",
            "      attributes: [{name: platform, operator: '=', "
            f"value: [{('ubuntu', 'rhel')[i % 2]}]}}]",
        ]
    return "\n".join(lines) + "\n"


def make_repo(
    fmt: str, count: int, parent: Path, *, raw_schedules: bool = False
) -> tuple[Path, int]:
    """A git repository with `count` job files of `fmt` and a nodes.yaml, committed once."""
    repo = parent / f"{fmt}-{count}"
    started = time.perf_counter()
    paths = gen_jobs.generate(count, repo, fmt, SEED)
    bounded = 0
    for path in paths:
        text = original = path.read_text(encoding="utf-8")
        for uuid_text in SAVED_ID.findall(text):  # random UUIDs: map each onto the pool
            pool = int(uuid_text[:8], 16) % POOL
            name = "filter" if _is_filter(text, uuid_text) else "list"
            text = text.replace(uuid_text, f"{name}-{pool}")
        if not raw_schedules:
            text, n = UNBOUNDED.subn("RRULE:FREQ=MINUTELY;INTERVAL=3;COUNT=5", text)
            bounded += bool(n)
        if text != original:
            path.write_text(text, encoding="utf-8")
    if bounded:
        print(f"bounded the endless exception rule of {bounded} job(s)", flush=True)
    (repo / "nodes.yaml").write_text(nodes_yaml(), encoding="utf-8")
    (repo / ".gitignore").write_text(".courier/\n", encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "jobs")
    print(f"made {repo} ({count} {fmt} files) in {time.perf_counter() - started:.1f}s", flush=True)
    return repo, bounded


def _is_filter(text: str, uuid_text: str) -> bool:
    before = text[: text.index(uuid_text)]
    return before.rfind("filterId") > before.rfind("listId")


def edit(repo: Path, count: int) -> dict[Path, bytes]:
    """Change the description of `count` job files spread over the repo; returns the originals."""
    files = sorted(p for p in (repo / "jobs.d").rglob("*") if p.is_file())
    step = max(1, len(files) // count)
    originals: dict[Path, bytes] = {}
    for path in files[::step][:count]:
        data = path.read_bytes()
        originals[path] = data
        path.write_bytes(data.replace(b"generated for benchmarks", b"edited for benchmarks", 1))
    return originals


def restore(originals: dict[Path, bytes]) -> None:
    for path, data in originals.items():
        path.write_bytes(data)


# --- PostgreSQL scratch databases -------------------------------------------------------------


class Postgres:
    """A scratch database on the server of `admin_url`, dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.admin = make_url(admin_url).set(drivername="postgresql")
        self.name = f"courier_bench_{os.getpid()}"

    def _execute(self, sql: str) -> None:
        import psycopg

        dsn = self.admin.render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def reset(self) -> None:
        self.drop()
        self._execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    @property
    def url(self) -> str:
        return self.admin.set(database=self.name).render_as_string(hide_password=False)


# --- measuring -------------------------------------------------------------------------------


Sample = tuple[float, float]  # wall seconds, CPU seconds (user + system) of the process tree


def use_code(tree: Path) -> None:
    """Run the packages of another checkout (e.g. a copy from before a change), through the
    console script's own two lines, so that both sides start the same way."""
    global CODE
    CODE = tree.resolve()
    COURIER[:] = [sys.executable, "-c", "import sys; from cli.main import run; sys.exit(run())"]
    os.environ["PYTHONPATH"] = str(CODE)
    sys.path.insert(0, str(CODE))


def run_timed(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], Sample]:
    """Run a command; its wall time and the CPU time of it and the children it waited for.

    The CPU time is what to compare between runs on a shared machine: other load stretches the
    wall time but hardly the CPU time. PostgreSQL's server work is in neither but the wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, (wall, cpu)


def courier(repo: Path, state: str, *args: str, expect: int = 0, want: str = "") -> Sample:
    """Run the CLI once and time it. Fails loudly on a wrong exit code or output."""
    argv = [*COURIER, "--repo", str(repo), "--state", state, *args]
    proc, took = run_timed(argv, repo)
    if proc.returncode != expect or want not in proc.stdout:
        raise SystemExit(
            f"{' '.join(argv[1:])}: exit {proc.returncode} (wanted {expect}, {want!r}):\n"
            f"{proc.stdout[-1500:]}{proc.stderr[-3000:]}"
        )
    return took


def times(
    fn: Callable[[], Sample], repeat: int, before: Callable[[], Any] | None = None
) -> list[Sample]:
    out = []
    for _ in range(repeat):
        if before is not None:
            before()
        out.append(fn())
    return out


def startup(repeat: int) -> tuple[list[Sample], list[tuple[str, float]]]:
    """`courier --version` times, and the slowest imports of `cli.main` (cumulative)."""
    version = [run_timed([*COURIER, "--version"], CODE)[1] for _ in range(repeat)]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cli.main"],
        cwd=CODE,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip())) // 2
            if depth <= 1:
                rows.append((name.strip(), int(parts[1]) / 1e6))
    rows.sort(key=lambda r: -r[1])
    return version, rows[:8]


def profile_plan(repo: Path, state: str, top: int = 25) -> tuple[str, dict[str, float]]:
    """cProfile of the in-process no-op plan (imports warmed up first), and a stage split."""
    from cli.main import app

    argv = ["--repo", str(repo), "--state", state, "plan", "--detailed-exitcode"]

    def call() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                app(argv, standalone_mode=False)
            except SystemExit as exc:
                if exc.code:
                    raise

    call()  # warm: imports, pydantic schema builds
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    text = re.sub(r"/[^ ]*/site-packages/", "", out.getvalue())
    text = text.replace(str(CODE) + "/", "")

    stages: dict[str, float] = {}
    wanted = {
        "open_store": ("cli/wiring.py", "open_store"),
        "store.read": ("state/store.py", "read"),
        "desired_from_worktree": ("reconciler/loading/desired.py", "desired_from_worktree"),
        "head_commit": ("cli/wiring.py", "head_commit"),
        "make_plan": ("reconciler/planning.py", "make_plan"),
        "as_text": ("cli/render_plan.py", "as_text"),
    }
    raw: Any = stats.stats  # type: ignore[attr-defined]
    for (filename, _, func), (_, _, _, cumulative, _) in raw.items():
        for label, (suffix, name) in wanted.items():
            if filename.endswith(suffix) and func == name:
                stages[label] = stages.get(label, 0.0) + cumulative
    total = sum(v[3] for k, v in raw.items() if k[2] == "plan" and k[0].endswith("reconcile.py"))
    stages["plan command (total)"] = total
    return text, stages


# --- report ----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": load,
    }


def row(
    label: str, samples: list[Sample], target: float | None = None, note: str = ""
) -> dict[str, Any]:
    walls = [wall for wall, _ in samples]
    best = min(walls)
    if target is not None:
        verdict = f"<= {target:g} s: {'met' if best <= target else 'MISSED'}"
        note = f"{verdict}; {note}" if note else verdict
    return {
        "what": label,
        "best": best,
        "median": statistics.median(walls),
        "cpu": min(cpu for _, cpu in samples),
        "runs": len(samples),
        "note": note,
    }


def table(rows: list[dict[str, Any]], before: dict[str, dict[str, Any]] | None = None) -> str:
    head = "| what | best (s) | median (s) | CPU, best (s) | runs |"
    rule = "|---|---:|---:|---:|---:|"
    if before is not None:
        head += " before: best / CPU (s) |"
        rule += "---:|"
    lines = [head + " target (on best) / note |", rule + "---|"]
    for r in rows:
        line = (
            f"| {r['what']} | {r['best']:.3f} | {r['median']:.3f} | {r['cpu']:.3f} | {r['runs']} |"
        )
        if before is not None:
            old = before.get(r["what"])
            line += f" {old['best']:.3f} / {old['cpu']:.3f} |" if old else " |"
        lines.append(f"{line} {r['note']} |")
    return "\n".join(lines)


def write_results(section: str) -> None:
    """Replace the `## plan and apply` section of RESULTS.md (or append it), keeping the rest."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if not text.startswith("# "):
        text = (
            "# Benchmark results\n\n"
            "Numbers from the scripts in `bench/`; each section is rewritten by its script.\n\n"
            + text
        )
    start = text.find(f"\n{SECTION}\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        rest = text[end + 1 :] if end >= 0 else ""
        old = text[start + 1 : end + 1 if end >= 0 else len(text)]
        keep = re.search(r"<!-- keep -->.*?<!-- /keep -->\n", old, re.DOTALL)
        if keep:  # hand-written notes inside the section survive reruns
            section = section.rstrip("\n") + "\n\n" + keep.group(0)
        text = text[: start + 1] + section + ("\n" + rest if rest else "")
    RESULTS.write_text(text.rstrip("\n") + "\n")


# --- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="courier-bench-plan-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_format(
    fmt: str,
    count: int,
    repeat: int,
    parent: Path,
    pg: Postgres | None,
    *,
    full: bool,
    raw_schedules: bool,
) -> tuple[list[dict[str, Any]], Path, str, int]:
    """Every measurement for one format; returns rows, the repo, its applied SQLite URL and how
    many jobs had their endless exception rule bounded."""
    repo, bounded = make_repo(fmt, count, parent, raw_schedules=raw_schedules)
    tag = f"{count:,} {fmt}"
    rows: list[dict[str, Any]] = []
    states = parent / f"states-{fmt}"
    states.mkdir()
    serial = iter(range(1_000))

    def fresh_sqlite() -> str:
        return f"sqlite:///{states / f'state-{next(serial)}.db'}"

    urls: list[str] = []

    def apply_new_sqlite() -> Sample:
        url = fresh_sqlite()
        urls.append(url)
        return courier(repo, url, "apply", want="Applied")

    rows.append(
        row(
            f"(a) apply {tag} new jobs, SQLite",
            times(apply_new_sqlite, repeat),
            APPLY_SQLITE_TARGET_S,
        )
    )
    print(rows[-1], flush=True)
    sqlite_url = urls[-1]
    plan_args = ("plan", "--detailed-exitcode")
    sqlite_plan = times(
        lambda: courier(repo, sqlite_url, *plan_args, want="No changes"), repeat + 2
    )
    pg_plan: list[Sample] = []
    if pg is not None and full:
        rows.append(
            row(
                f"(b) apply {tag} new jobs, PostgreSQL",
                times(lambda: courier(repo, pg.url, "apply", want="Applied"), repeat, pg.reset),
                APPLY_PG_TARGET_S,
            )
        )
        print(rows[-1], flush=True)
        pg_plan = times(lambda: courier(repo, pg.url, *plan_args, want="No changes"), repeat + 2)
    rows.append(row(f"(c) no-op plan over {tag} applied jobs, SQLite", sqlite_plan, PLAN_TARGET_S))
    if pg_plan:
        rows.append(
            row(f"(c) no-op plan over {tag} applied jobs, PostgreSQL", pg_plan, PLAN_TARGET_S)
        )
    if full:
        for edits in (10, max(10, count // 10)):
            originals = edit(repo, edits)
            try:
                took = times(
                    lambda: courier(
                        repo,
                        sqlite_url,
                        *plan_args,
                        expect=2,
                        want=f"{edits} to update",  # noqa: B023
                    ),
                    repeat + 2,
                )
            finally:
                restore(originals)
            rows.append(row(f"(d) plan after editing {edits:,} of {tag} files, SQLite", took))
        rows.append(
            row(
                f"(e) no-op apply over {tag} applied jobs, SQLite",
                times(
                    lambda: courier(repo, sqlite_url, "apply", want="Nothing to apply"), repeat + 2
                ),
            )
        )
        if pg is not None:
            rows.append(
                row(
                    f"(e) no-op apply over {tag} applied jobs, PostgreSQL",
                    times(
                        lambda: courier(repo, pg.url, "apply", want="Nothing to apply"), repeat + 2
                    ),
                )
            )
    for r in rows:
        print(
            f"  {r['what']}: best {r['best']:.3f}s median {r['median']:.3f}s cpu {r['cpu']:.3f}s",
            flush=True,
        )
    return rows, repo, sqlite_url, bounded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each apply (plans: +2)")
    parser.add_argument("--formats", default="json,mixed", help="comma-separated; first is full")
    parser.add_argument("--pg-url", default=os.environ.get("COURIER_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    parser.add_argument("--label", default="", help="a note for the section heading")
    parser.add_argument(
        "--code", type=Path, help="run the packages of this checkout instead (implies --no-write)"
    )
    parser.add_argument("--save", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument(
        "--before", type=Path, help="rows saved (--save) from before a change: shown alongside"
    )
    parser.add_argument(
        "--raw-schedules", action="store_true", help="keep the endless exception rule (slow!)"
    )
    args = parser.parse_args(argv)
    if args.code:
        use_code(args.code)
        args.no_write = True

    facts = machine()
    print(facts, flush=True)
    pg = None if args.no_pg else Postgres(args.pg_url)
    rows: list[dict[str, Any]] = []
    profile_text = ""
    stages: dict[str, float] = {}
    bounded: dict[str, int] = {}
    with scratch() as parent:
        try:
            if pg is not None:
                pg.reset()
            for i, fmt in enumerate(args.formats.split(",")):
                got, repo, sqlite_url, bounded[fmt] = bench_format(
                    fmt,
                    args.files,
                    args.repeat,
                    parent,
                    pg,
                    full=(i == 0),
                    raw_schedules=args.raw_schedules,
                )
                rows += got
                if i == 0:
                    profile_text, stages = profile_plan(repo, sqlite_url)
        finally:
            if pg is not None:
                pg.drop()
    version, imports = startup(args.repeat + 2)
    rows.append(row("`courier --version` (start-up)", version))
    before = None
    if args.before:
        before = {r["what"]: r for r in json.loads(args.before.read_text())["rows"]}
    if args.save:
        args.save.write_text(json.dumps({"machine": facts, "rows": rows, "stages": stages}))
    print(table(rows, before))
    print("\nno-op plan in-process (cumulative s):", stages)
    print(profile_text)
    if args.no_write:
        return 0

    stage_lines = "\n".join(f"| {k} | {v:.3f} |" for k, v in stages.items())
    import_lines = "\n".join(f"| `{name}` | {secs:.3f} |" for name, secs in imports)
    label = f" ({args.label})" if args.label else ""
    if args.raw_schedules:
        bounded_note = "The generated files are used as they are (`--raw-schedules`)."
    else:
        counts = ", ".join(f"{n:,} of the {fmt} files" for fmt, n in bounded.items())
        bounded_note = (
            "The generator's endless exception rule `RRULE:FREQ=MINUTELY;INTERVAL=3` is bounded "
            f"with `;COUNT=5` ({counts}): its windows cover every occurrence of the rule it is "
            "paired with, and `reconciler/scheduling.py` only finds out that such a job never "
            "runs after skipping 100,000 occurrences, ~130 s per job on this machine, which "
            "would make apply take hours (see the docstring of `UNBOUNDED`)."
        )
    before_note = ""
    if before is not None:
        then = json.loads(args.before.read_text())["machine"]
        before_note = (
            f"\nThe before column is the same benchmark run on {then['date']} (load average "
            f"{then['load']}) against a copy of the tree with the code before the plan/apply "
            "work of this section (`--code DIR --save FILE`, then `--before FILE`).\n"
        )
    section = f"""{SECTION}

`bench/bench_plan_apply.py --files {args.files} --repeat {args.repeat}` on {facts["date"]}{label}:
{facts["nproc"]} CPUs ({facts["cpu"]}), Python {facts["python"]}, {facts["platform"]}; load
average at the start {facts["load"]}: the machine is shared, so compare the best column and the
CPU column (user + system time of the process and the git processes it waits for; PostgreSQL's
server work shows only in the wall times). The whole CLI as subprocesses, not pinned; a temp
git repository of generated job files (one commit) with a `nodes.yaml` of 16 nodes and 8 saved
filters and lists. Each (a) run starts from a fresh SQLite
file (schema migration included), each (b) run from a freshly created PostgreSQL database; (d)
edits descriptions in the work tree (plans as updates, no field of what runs); (e) writes only
the journal row. Plans run `plan --detailed-exitcode` and check its exit code.

{bounded_note}
{before_note}
{table(rows, before)}

The in-process no-op plan over the JSON repository on SQLite (imports warm), cumulative seconds
of its stages under cProfile (profiling roughly doubles Python-heavy parts):

| stage | s |
|---|---:|
{stage_lines}

Slowest top-level imports of `cli.main` (`python -X importtime`, cumulative s):

| module | s |
|---|---:|
{import_lines}
"""
    write_results(section)
    print(f"wrote the {SECTION!r} section of {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
