"""Benchmark `courier validate` over 10,000 job files against the targets of DESIGN.md §8.

    .venv/bin/python bench/bench_validate.py [--files 10000] [--repeat 5] [--profile] [--no-write]

Generates 10,000 JSON and 10,000 YAML job files into bench/out/ (kept between runs), then times:
(a) cold `courier validate` of the JSON files as a subprocess pinned to one core; (b) the same for
YAML; (c) the in-process `load_paths` split into read / parse / validate / canonical+hash; (d) bare
`json.loads` and PyYAML `CSafeLoader` parses of the same files, measured in the same run. Prints a
table and rewrites the `## validate` section of bench/RESULTS.md. Not part of the test suite.
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
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
BIN = Path(sys.executable).parent
COURIER = BIN / "courier"
SEED = 20261122

sys.path.insert(0, str(HERE))
import gen_jobs  # noqa: E402  (a sibling script, not a package)

JSON_TARGET_S = 2.0  # DESIGN.md §8
YAML_TARGET_RATIO = 1.5  # x the bare CSafeLoader parse of the same files
OLD_TARGET_S = 3.0  # issue 2, format unspecified


# --- set-up ----------------------------------------------------------------------------------


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


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


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


def read_all(files: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in files]


def bare_json(files: list[Path]) -> None:
    for p in files:
        with open(p, "rb") as fh:
            json.loads(fh.read())


def bare_orjson(files: list[Path]) -> None:
    import orjson

    for p in files:
        with open(p, "rb") as fh:
            orjson.loads(fh.read())


def bare_pyyaml(files: list[Path]) -> None:
    import yaml

    for p in files:
        with open(p, "rb") as fh:
            yaml.load(fh.read(), Loader=yaml.CSafeLoader)  # noqa: S506 (CSafeLoader is safe)


def bare_ruamel_safe(files: list[Path]) -> None:
    from ruamel.yaml import YAML

    loader = YAML(typ="safe", pure=False)
    for p in files:
        with open(p, "rb") as fh:
            loader.load(fh.read())


def stages(repo: Path) -> dict[str, float]:
    """The steps of `loader._load_one`, timed separately (same calls, same order)."""
    from reconciler.loading.discovery import discover
    from reconciler.loading.parsing import decode, parse
    from reconciler.model import canonical, spec_hash, validate_document

    t: dict[str, float] = dict.fromkeys(("discover", "read", "parse", "validate", "canonical"), 0)
    clock = time.perf_counter
    started = clock()
    sources, problems = discover([repo / "jobs.d"], repo)
    t["discover"] = clock() - started
    assert not problems, problems[:3]
    for source in sources:
        a = clock()
        data = source.path.read_bytes()
        b = clock()
        doc = parse(decode(data), source.format)
        c = clock()
        validated = validate_document(doc)
        d = clock()
        assert validated.job is not None and not validated.findings, source.display
        spec_hash(canonical(validated.job))
        e = clock()
        t["read"] += b - a
        t["parse"] += c - b
        t["validate"] += d - c
        t["canonical"] += e - d
    return t


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


def import_times() -> list[tuple[str, float]]:
    """Cumulative import time per top-level package of `import cli.main`, from -X importtime."""
    proc = subprocess.run(
        pinned([sys.executable, "-X", "importtime", "-c", "import cli.main"]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) == 1:  # top-level imports only: their cumulative time
            package = m.group(4).split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(m.group(2)) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])


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
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def row(label: str, times: list[float], files: int, note: str = "") -> dict[str, Any]:
    best = min(times)
    return {
        "what": label,
        "best": best,
        "median": statistics.median(times),
        "runs": len(times),
        "rate": files / best if files else 0.0,
        "note": note,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| what | best (s) | median (s) | runs | files/s (best) | target / note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rate = f"{r['rate']:,.0f}" if r["rate"] else ""
        lines.append(
            f"| {r['what']} | {r['best']:.3f} | {r['median']:.3f} | {r['runs']} | {rate} "
            f"| {r['note']} |"
        )
    return "\n".join(lines)


def write_results(section: str) -> None:
    """Replace the `## validate` section of RESULTS.md, keeping everything else."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if not text.startswith("# "):
        text = (
            "# Benchmark results\n\n"
            "Numbers from the scripts in `bench/`; each section is rewritten by its script.\n\n"
            + text
        )
    start = text.find("\n## validate\n")
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


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each CLI measurement")
    parser.add_argument("--profile", action="store_true", help="print cProfile of load_paths")
    parser.add_argument("--skip-ruamel", action="store_true", help="skip the ruamel baseline")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    n, repeat = args.files, args.repeat

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

    validate = [str(COURIER), "--repo", ".", "validate"]
    expect = f"{n} job file(s) valid"
    # Warm the page cache and the .pyc files; cold means a fresh interpreter, not a cold disk.
    for repo in (json_repo, yaml_repo):
        run_cli(validate, repo, expect)()
    rows: list[dict[str, Any]] = []

    t_python = timed(run_cli([sys.executable, "-c", "pass"], ROOT), repeat)
    rows.append(row("`python -c pass` (interpreter alone)", t_python, 0))
    t_version = timed(run_cli([str(COURIER), "--version"], ROOT), repeat)
    rows.append(row("`courier --version` (start-up + imports)", t_version, 0))

    t_json_cli = timed(run_cli(validate, json_repo, expect), repeat)
    ok_json = min(t_json_cli) <= JSON_TARGET_S
    rows.append(
        row(
            f"(a) `courier validate`, {n} JSON, cold",
            t_json_cli,
            n,
            f"<= {JSON_TARGET_S:g} s: {verdict(ok_json)}",
        )  # fmt: skip
    )
    t_yaml_cli = timed(run_cli(validate, yaml_repo, expect), repeat)

    baseline_repeat = max(3, repeat)
    t_json = timed(lambda: bare_json(json_files), baseline_repeat)
    t_orjson = timed(lambda: bare_orjson(json_files), baseline_repeat)
    t_pyyaml = timed(lambda: bare_pyyaml(yaml_files), max(2, repeat // 2))
    ratio = min(t_yaml_cli) / min(t_pyyaml)
    ok_yaml = ratio <= YAML_TARGET_RATIO
    rows.append(
        row(
            f"(b) `courier validate`, {n} YAML, cold",
            t_yaml_cli,
            n,
            f"<= {YAML_TARGET_RATIO:g}x CSafeLoader: {ratio:.2f}x {verdict(ok_yaml)}",
        )  # fmt: skip
    )

    for label, repo, files in (("JSON", json_repo, json_files), ("YAML", yaml_repo, yaml_files)):
        t_total = timed(lambda repo=repo: load_paths_total(repo, n), 3)
        rows.append(row(f"(c) in-process `load_paths`, {label}", t_total, n))
        split = [stages(repo) for _ in range(3)]
        for stage in ("discover", "read", "parse", "validate", "canonical"):
            times = [s[stage] for s in split]
            name = "canonical + hash" if stage == "canonical" else stage
            note = {
                "parse": "decode + parse + duplicate-key and alias checks",
                "validate": "legacy pre-pass + pydantic model_validate",
                "canonical": "model_dump(mode='json') + orjson + sha256",
            }.get(stage, "")
            rows.append(row(f"(c)   {label}: {name}", times, len(files), note))

    rows.append(row(f"(d) bare `json.loads`, {n} JSON (read + parse)", t_json, n))
    rows.append(row(f"(d) bare `orjson.loads`, {n} JSON", t_orjson, n, "for reference"))
    rows.append(row(f"(d) bare PyYAML `CSafeLoader`, {n} YAML (read + parse)", t_pyyaml, n))
    if not args.skip_ruamel:
        t_ruamel = timed(lambda: bare_ruamel_safe(yaml_files), 1)
        rows.append(
            row(f"(d) bare ruamel `typ='safe'` (C), {n} YAML", t_ruamel, n, "for reference")
        )

    imports = import_times()
    report = table(rows)
    print()
    print(report)
    print()
    print("imports of `cli.main` (cumulative, top-level, -X importtime):")
    for package, seconds in imports[:12]:
        print(f"  {package:<24} {seconds * 1000:7.1f} ms")
    summary = (
        f"JSON: {min(t_json_cli):.2f} s (target {JSON_TARGET_S:g} s {verdict(ok_json)}; "
        f"old target {OLD_TARGET_S:g} s {verdict(min(t_json_cli) <= OLD_TARGET_S)}); "
        f"YAML: {min(t_yaml_cli):.2f} s = {ratio:.2f}x the bare CSafeLoader parse "
        f"(target {YAML_TARGET_RATIO:g}x {verdict(ok_yaml)}; old target {OLD_TARGET_S:g} s "
        f"{verdict(min(t_yaml_cli) <= OLD_TARGET_S)})"
    )
    print()
    print(summary)

    if args.profile:
        for label, repo in (("JSON", json_repo), ("YAML", yaml_repo)):
            print()
            print(profile(repo, f"{n} {label} files", 30))

    if not args.no_write:
        top_imports = ", ".join(f"{p} {s * 1000:.0f} ms" for p, s in imports[:8])
        section = f"""## validate

Generated by `bench/bench_validate.py` (do not edit the table by hand; notes go in the keep
block below). {n} generated job files per format (`bench/gen_jobs.py`, seed {SEED}; average
{size["json"]} bytes in JSON, {size["yaml"]} bytes in YAML). CLI runs are cold (a fresh
interpreter each run, files in the page cache) and pinned with `taskset -c 0`; in-process rows and
baselines run in one process pinned to CPU 0. Best and median of the runs shown.

Machine: {info["cpu"]}, nproc {info["nproc"]}, Python {info["python"]}, {info["platform"]};
measured {info["date"]}.

{report}

{summary}.

Import time of `cli.main` by top-level package (`python -X importtime`, cumulative):
{top_imports}.
"""
        write_results(section)
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0 if ok_json and ok_yaml else 1


if __name__ == "__main__":
    sys.exit(main())
