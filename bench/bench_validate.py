"""Benchmark `courier validate` over 10,000 job files against the targets of DESIGN.md §8.

    .venv/bin/python bench/bench_validate.py [--files 10000] [--repeat 5] [--profile]
        [--code DIR] [--save FILE] [--before FILE] [--no-write]

Generates 10,000 JSON and 10,000 YAML job files into bench/out/ (kept between runs), then times:
(a) cold `courier validate` of the JSON files as a subprocess pinned to one core; (b) the same for
YAML; (c) the in-process `load_paths`, and its stages read / parse / validate / canonical+hash;
(d) bare `json.loads` and PyYAML `CSafeLoader` parses of the same files, in the same run. Prints a
table and rewrites the `## validate` section of bench/RESULTS.md. Not part of the test suite.

`--code DIR` measures the courier source tree in DIR (e.g. a `git worktree` of an older commit)
instead of the installed one; `--save` keeps the numbers as JSON and `--before` adds them to the
table as a "before" column.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import hashlib
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
SEED = 20261122

sys.path.insert(0, str(HERE))
import gen_jobs  # noqa: E402  (a sibling script, not a package)

JSON_TARGET_S = 2.0  # DESIGN.md §8
YAML_TARGET_RATIO = 1.5  # x the bare CSafeLoader parse of the same files, same run
OLD_TARGET_S = 3.0  # issue 2, format unspecified

# Runs the CLI from another source tree: the editable install's import hook would win over
# sys.path, so it is taken out first.
_RUN_FROM = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in str(getattr(f, "__module__", ""))]
sys.path.insert(0, {code!r})
sys.argv[0] = "courier"
from cli.main import run
run()
"""


# --- set-up ----------------------------------------------------------------------------------


def use_code(code: Path | None) -> list[str]:
    """The courier command line; with `code`, imports in this process come from there too."""
    if code is None:
        return [str(Path(sys.executable).parent / "courier")]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in str(f.__module__)]
    sys.path.insert(0, str(code))
    return [sys.executable, "-c", _RUN_FROM.format(code=str(code))]


def corpus(fmt: str, count: int) -> tuple[Path, list[Path]]:
    """bench/out/<fmt>-<count>/jobs.d, regenerated only when the generator or count changed."""
    repo = OUT / f"{fmt}-{count}"
    stamp = repo / ".stamp"
    generator = hashlib.sha256((HERE / "gen_jobs.py").read_bytes()).hexdigest()[:16]
    want = f"{fmt} {count} {SEED} {generator}"
    if not (stamp.exists() and stamp.read_text() == want):
        if repo.exists():
            shutil.rmtree(repo)
        started = time.perf_counter()
        gen_jobs.generate(count, repo, fmt, SEED)
        stamp.write_text(want)
        print(f"generated {count} {fmt} files in {time.perf_counter() - started:.1f}s", flush=True)
    files = sorted(p for p in (repo / "jobs.d").rglob("*") if p.is_file())
    return repo, files


def pin_to_one_core() -> str:
    """Pin this process (and so its in-process measurements) to CPU 0, like `taskset -c 0`."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
        return "CPU 0"
    return "not pinned"


def pinned(argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", "0", *argv] if taskset else argv


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def timed(fn: Callable[[], Any], repeat: int, children: bool = False) -> Timing:
    """Wall-clock and CPU seconds of `repeat` calls (CPU of child processes with `children`)."""

    def cpu() -> float:
        if children:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime
        return time.process_time()

    result = Timing()
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), cpu()
        fn()
        result.wall.append(time.perf_counter() - started)
        result.cpu.append(cpu() - started_cpu)
    return result


def run_cli(argv: list[str], cwd: Path, expect: str | None = None) -> Callable[[], None]:
    def run() -> None:
        proc = subprocess.run(pinned(argv), cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or (expect and expect not in proc.stdout):
            raise SystemExit(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                f"{proc.stderr[-2000:]}"
            )

    return run


# --- measurements ----------------------------------------------------------------------------


def bare_json(files: list[Path]) -> None:
    for p in files:
        json.loads(p.read_bytes())


def bare_orjson(files: list[Path]) -> None:
    import orjson

    for p in files:
        orjson.loads(p.read_bytes())


def bare_pyyaml(files: list[Path]) -> None:
    import yaml

    for p in files:
        yaml.load(p.read_bytes(), Loader=yaml.CSafeLoader)


def bare_ruamel_safe(files: list[Path]) -> None:
    from ruamel.yaml import YAML

    loader = YAML(typ="safe", pure=False)
    for p in files:
        loader.load(p.read_bytes())


STAGES = ("discover", "read", "parse", "validate", "canonical")


def stages(repo: Path) -> dict[str, tuple[float, float]]:
    """The steps of `loader.load_paths`, timed one by one: stage -> (wall, CPU) seconds."""
    import gc

    from reconciler.loading.discovery import discover
    from reconciler.loading.parsing import decode, parse
    from reconciler.model import canonical, spec_hash, validate_document

    wall = dict.fromkeys(STAGES, 0.0)
    cpu = dict.fromkeys(STAGES, 0.0)
    clock, cpu_clock = time.perf_counter, time.process_time
    kept = []
    a, a_cpu = clock(), cpu_clock()
    sources, problems = discover([repo / "jobs.d"], repo)
    wall["discover"], cpu["discover"] = clock() - a, cpu_clock() - a_cpu
    assert not problems, problems[:3]
    enabled = gc.isenabled()
    gc.disable()  # the stages without the collector: its share is (c) total - sum of stages
    try:
        for source in sources:
            t0, c0 = clock(), cpu_clock()
            data = source.path.read_bytes()
            t1, c1 = clock(), cpu_clock()
            doc = parse(decode(data), source.format)
            t2, c2 = clock(), cpu_clock()
            validated = validate_document(doc)
            t3, c3 = clock(), cpu_clock()
            assert validated.job is not None and not validated.findings, source.display
            spec = canonical(validated.job)
            spec_hash(spec)
            t4, c4 = clock(), cpu_clock()
            kept.append((validated.job, spec))
            for stage, (w, c) in zip(
                STAGES[1:], ((t1 - t0, c1 - c0), (t2 - t1, c2 - c1), (t3 - t2, c3 - c2),
                             (t4 - t3, c4 - c3)), strict=True,
            ):  # fmt: skip
                wall[stage] += w
                cpu[stage] += c
    finally:
        if enabled:
            gc.enable()
    del kept
    gc.collect()
    return {s: (wall[s], cpu[s]) for s in STAGES}


def load_paths_total(repo: Path, count: int) -> None:
    from reconciler.loading import load_paths

    result = load_paths([repo / "jobs.d"], repo)
    assert len(result.jobs) == count and not result.problems, result.problems[:3]


def profile(repo: Path, label: str, top: int) -> str:
    from reconciler.loading import load_paths

    prof = cProfile.Profile()
    prof.enable()
    load_paths([repo / "jobs.d"], repo)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")
    return f"--- cProfile of load_paths over {label}, by own time ---\n{text[start:]}"


def import_times(courier: list[str]) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """`-X importtime` of the CLI's imports: own time by top-level package, and the cumulative
    time of each top-level package where it is first imported (its own imports included)."""
    code = "import cli.main"
    if courier[0] == sys.executable:  # --code: the same path set-up as the CLI
        code = courier[2].replace("from cli.main import run\nrun()\n", "import cli.main\n")
    proc = subprocess.run(
        pinned([sys.executable, "-X", "importtime", "-c", code]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    own: dict[str, float] = {}
    heavy: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        package = m.group(4).split(".")[0]
        own[package] = own.get(package, 0.0) + int(m.group(1)) / 1e6
        if "." not in m.group(4) and package not in ("cli", "reconciler", "site", "encodings"):
            heavy.append((m.group(4), int(m.group(2)) / 1e6))  # where a package is first imported
    heavy.sort(key=lambda kv: -kv[1])
    return sorted(own.items(), key=lambda kv: -kv[1]), heavy


# --- report ----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = ""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": load,
    }


def row(key: str, label: str, t: Timing, files: int, note: str = "") -> dict[str, Any]:
    best = min(t.wall)
    return {
        "key": key,
        "what": label,
        "best": best,
        "median": statistics.median(t.wall),
        "cpu": min(t.cpu) if t.cpu else None,
        "runs": len(t.wall),
        "rate": files / best if files else 0.0,
        "note": note,
    }


def table(rows: list[dict[str, Any]], before: dict[str, dict[str, Any]]) -> str:
    head = "| what | best (s) | median (s) | CPU best (s) | runs | files/s | target / note |"
    rule = "|---|---:|---:|---:|---:|---:|---|"
    if before:
        head = "| what | before: best / CPU (s) " + head[len("| what ") :]
        rule = "|---|---:" + rule[len("|---") :]
    lines = [head, rule]
    for r in rows:
        rate = f"{r['rate']:,.0f}" if r["rate"] else ""
        cpu = f"{r['cpu']:.3f}" if r["cpu"] is not None else ""
        cells = [r["what"]]
        if before:
            old = before.get(r["key"])
            cells.append(f"{old['best']:.2f} / {old['cpu']:.2f}" if old and old["cpu"] else "")
        cells += [f"{r['best']:.3f}", f"{r['median']:.3f}", cpu, str(r["runs"]), rate, r["note"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(section: str) -> None:
    """Replace the `## validate` section of RESULTS.md, keeping everything else."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if not text.startswith("# "):
        text = (
            "# Benchmark results\n\n"
            "Numbers from the scripts in `bench/`; each script rewrites its own `##` section.\n\n"
            + text
        )
    start = text.find("\n## validate\n")
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


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each CLI measurement")
    parser.add_argument("--profile", action="store_true", help="print cProfile of load_paths")
    parser.add_argument("--skip-ruamel", action="store_true", help="skip the ruamel baseline")
    parser.add_argument("--code", type=Path, help="measure the courier source tree in DIR")
    parser.add_argument("--save", type=Path, help="write the rows as JSON to FILE")
    parser.add_argument("--before", type=Path, help="rows saved by --save, shown as 'before'")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    n, repeat = args.files, args.repeat
    courier = use_code(args.code.resolve() if args.code else None)
    before = {}
    if args.before:
        before = {r["key"]: r for r in json.loads(args.before.read_text())["rows"]}

    json_repo, json_files = corpus("json", n)
    yaml_repo, yaml_files = corpus("yaml", n)
    assert len(json_files) == n and len(yaml_files) == n
    size = {
        "json": sum(p.stat().st_size for p in json_files) // n,
        "yaml": sum(p.stat().st_size for p in yaml_files) // n,
    }
    pinning = pin_to_one_core()
    info = machine()
    print(f"{info['cpu']}, nproc {info['nproc']}, Python {info['python']}; pinned: {pinning}")

    validate = [*courier, "--repo", ".", "validate"]
    expect = f"{n} job file(s) valid"
    # Warm the page cache and the .pyc files; cold means a fresh interpreter, not a cold disk.
    for repo in (json_repo, yaml_repo):
        run_cli(validate, repo, expect)()
    rows: list[dict[str, Any]] = []

    t = timed(run_cli([sys.executable, "-c", "pass"], ROOT), repeat, children=True)
    rows.append(row("python", "`python -c pass` (interpreter alone)", t, 0))
    t = timed(run_cli([*courier, "--version"], ROOT), repeat, children=True)
    rows.append(row("version", "`courier --version` (start-up + imports)", t, 0))

    t_json_cli = timed(run_cli(validate, json_repo, expect), repeat, children=True)
    ok_json = min(t_json_cli.wall) <= JSON_TARGET_S
    note = f"<= {JSON_TARGET_S:g} s: {verdict(ok_json)}"
    rows.append(row("a", f"(a) `courier validate`, {n} JSON, cold", t_json_cli, n, note))
    t_yaml_cli = timed(run_cli(validate, yaml_repo, expect), repeat, children=True)

    baseline_repeat = max(3, repeat)
    t_json = timed(lambda: bare_json(json_files), baseline_repeat)
    t_orjson = timed(lambda: bare_orjson(json_files), baseline_repeat)
    t_pyyaml = timed(lambda: bare_pyyaml(yaml_files), max(3, repeat))
    ratio = min(t_yaml_cli.wall) / min(t_pyyaml.wall)
    cpu_ratio = min(t_yaml_cli.cpu) / min(t_pyyaml.cpu)
    ok_yaml = ratio <= YAML_TARGET_RATIO
    note = (
        f"<= {YAML_TARGET_RATIO:g}x CSafeLoader: {ratio:.2f}x (CPU {cpu_ratio:.2f}x) "
        f"{verdict(ok_yaml)}"
    )
    rows.append(row("b", f"(b) `courier validate`, {n} YAML, cold", t_yaml_cli, n, note))

    for label, repo, files in (("JSON", json_repo, json_files), ("YAML", yaml_repo, yaml_files)):
        t = timed(lambda repo=repo: load_paths_total(repo, n), 3)
        rows.append(row(f"c-{label}", f"(c) in-process `load_paths`, {label}", t, n))
        split = [stages(repo) for _ in range(3)]
        for stage in STAGES:
            t = Timing([s[stage][0] for s in split], [s[stage][1] for s in split])
            name = "canonical + hash" if stage == "canonical" else stage
            note = {
                "parse": "decode + parse + duplicate-key and alias checks",
                "validate": "legacy pre-pass + pydantic model_validate",
                "canonical": "model_dump(mode='json') + orjson + sha256",
            }.get(stage, "")
            rows.append(row(f"c-{label}-{stage}", f"(c)   {label}: {name}", t, len(files), note))

    rows.append(row("d-json", f"(d) bare `json.loads`, {n} JSON (read + parse)", t_json, n))
    rows.append(row("d-orjson", f"(d) bare `orjson.loads`, {n} JSON", t_orjson, n, "reference"))
    rows.append(
        row("d-pyyaml", f"(d) bare PyYAML `CSafeLoader`, {n} YAML (read + parse)", t_pyyaml, n)
    )
    if not args.skip_ruamel:
        t_ruamel = timed(lambda: bare_ruamel_safe(yaml_files), 1)
        note = "reference: what the loader used before"
        rows.append(
            row("d-ruamel", f"(d) bare ruamel `typ='safe'` (C), {n} YAML", t_ruamel, n, note)
        )

    own, heavy = import_times(courier)
    report = table(rows, before)
    print()
    print(report)
    print()
    print("import time of the CLI by top-level package (own time, -X importtime):")
    for package, seconds in own[:12]:
        print(f"  {package:<28} {seconds * 1000:7.1f} ms")
    print("costliest packages to import (cumulative, with what they import):")
    for module, seconds in heavy[:8]:
        print(f"  {module:<28} {seconds * 1000:7.1f} ms")
    json_best, yaml_best = min(t_json_cli.wall), min(t_yaml_cli.wall)
    summary = (
        f"JSON: {json_best:.2f} s wall, {min(t_json_cli.cpu):.2f} s CPU (target "
        f"{JSON_TARGET_S:g} s {verdict(ok_json)}; issue 2's {OLD_TARGET_S:g} s "
        f"{verdict(json_best <= OLD_TARGET_S)}). YAML: {yaml_best:.2f} s wall = {ratio:.2f}x the "
        f"bare CSafeLoader parse, {min(t_yaml_cli.cpu):.2f} s CPU = {cpu_ratio:.2f}x (target "
        f"{YAML_TARGET_RATIO:g}x {verdict(ok_yaml)}; issue 2's {OLD_TARGET_S:g} s "
        f"{verdict(yaml_best <= OLD_TARGET_S)})"
    )
    print()
    print(summary)

    if args.profile:
        for label, repo in (("JSON", json_repo), ("YAML", yaml_repo)):
            print()
            print(profile(repo, f"{n} {label} files", 30))

    if args.save:
        args.save.write_text(json.dumps({"machine": info, "rows": rows}, indent=1) + "\n")
    if not args.no_write:
        top_own = ", ".join(f"{p} {s * 1000:.0f} ms" for p, s in own[:8])
        top_heavy = ", ".join(f"{m} {s * 1000:.0f} ms" for m, s in heavy[:6])
        before_note = (
            f'\nThe "before" column: the same run of `--code ... --save {args.before.name}`.'
            if before
            else ""
        )
        section = f"""## validate

Generated by `bench/bench_validate.py`; do not edit the table by hand (notes go in the keep
block below). {n:,} generated job files per format (`bench/gen_jobs.py`, seed {SEED}; average
{size["json"]:,} bytes in JSON, {size["yaml"]:,} bytes in YAML). CLI runs are cold (a fresh
interpreter each run, files in the page cache) and pinned with `taskset -c 0`; in-process rows and
baselines run in one process pinned to CPU 0. Best and median wall-clock time of the runs, and the
best CPU time (user + system), which other load on the machine disturbs less.{before_note}

Machine: {info["cpu"]}, nproc {info["nproc"]}, Python {info["python"]},
{info["platform"]}; measured {info["date"]}, {info["load"]} at the end.

{report}

{summary}.

Import time of the CLI (`python -X importtime`), own time by top-level package:
{top_own}.
Costliest packages to import (cumulative, with what they import): {top_heavy}.
"""
        write_results(section)
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0 if ok_json and ok_yaml else 1


if __name__ == "__main__":
    sys.exit(main())
