"""Chef's public example files through the real `courier validate` (DESIGN.md: every template
validates; the 00_/01_ placeholders are refused; the 2024 beta files give clear errors at least).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import assert_no_crash, reported, run_courier, run_courier_forked
from tests.reconciler.loading.test_examples import IDENTICAL_TWINS, KNOWN_REFUSED

SAMPLES = "samples-courier-job-examples"


def _files(root: Path, folder: str, pattern: str) -> list[str]:
    return sorted(
        f"{folder}/{p.name}"
        for p in (root / folder).glob(pattern)
        if not p.name.startswith(("00_", "01_")) and p.name not in KNOWN_REFUSED
    )


@pytest.mark.parametrize("pattern", ["*.json", "*.yaml"])
def test_sample_templates_validate(examples: Path, pattern: str) -> None:
    files = _files(examples, SAMPLES, pattern)
    assert len(files) >= 20
    proc = run_courier_forked("--repo", examples, "validate", *files, cwd=examples)
    assert_no_crash(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{len(files)} job file(s) valid"
    assert all(r.is_warning for r in reported(proc.stderr)), proc.stderr


def test_docs_community_and_lab_jobs_validate(examples: Path) -> None:
    files = [
        *_files(examples, "seed-docs", "*.json"),
        *_files(examples, "community", "*.json"),
        *_files(examples, "architecture-center-labs", "0[234]-*"),
    ]
    assert len(files) == 7
    proc = run_courier("--repo", examples, "validate", *files, cwd=examples)
    assert_no_crash(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{len(files)} job file(s) valid"


def test_placeholder_templates_are_refused(examples: Path) -> None:
    files = sorted(f"{SAMPLES}/{p.name}" for p in (examples / SAMPLES).glob("0[01]_*"))
    assert len(files) == 4
    proc = run_courier_forked("--repo", examples, "validate", *files, cwd=examples)
    assert_no_crash(proc)
    assert proc.returncode == 1
    errors = [r for r in reported(proc.stderr) if not r.is_warning]
    assert {r.path for r in errors} == set(files)
    assert proc.stderr.rstrip().splitlines()[-1].startswith("error: ")
    # clear: the placeholder values themselves are named
    assert "'immediate|RRule'" in proc.stderr
    assert "'<STRING>'" in proc.stderr


def test_job_reboot_is_accepted_with_a_warning(examples: Path) -> None:
    proc = run_courier_forked(
        "--repo", examples, "validate", f"{SAMPLES}/job_reboot.json", cwd=examples
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1 job file(s) valid"
    assert proc.stderr.splitlines() == [
        f"{SAMPLES}/job_reboot.json:109:11: warning: actions.steps[2].outputFieldRules.required: "
        "is not an output rule object; ignored"
    ]


def test_whole_sample_folder_fails_on_duplicate_names_naming_both_files(examples: Path) -> None:
    proc = run_courier_forked("--repo", examples, "validate", SAMPLES, cwd=examples)
    assert_no_crash(proc)
    assert proc.returncode == 1
    duplicate = re.compile(r"job name '(?P<name>[^']+)' is used by 2 files: (?P<paths>.+)$")
    named: dict[str, set[str]] = {}
    for r in reported(proc.stderr):
        m = duplicate.search(r.rest)
        if m:
            assert r.rest.startswith("name: ")
            paths = set(m["paths"].split(", "))
            assert r.path in paths
            named.setdefault(m["name"], set()).update(paths)
    for stem in IDENTICAL_TWINS:
        pair = {f"{SAMPLES}/{stem}.json", f"{SAMPLES}/{stem}.yaml"}
        assert any(pair == paths for paths in named.values()), (stem, named)


def test_beta_files_never_crash_and_locate_every_error(examples: Path) -> None:
    folder = "samples-beta-2024-06"
    proc = run_courier("--repo", examples, "validate", folder, cwd=examples)
    assert_no_crash(proc)
    assert proc.returncode in (0, 1)
    lines = proc.stderr.rstrip().splitlines()
    assert lines[-1].startswith("error: ")
    problems = reported(proc.stderr)
    assert len(problems) == len(lines) - 1, "every other stderr line is path:line:col: ..."
    for r in problems:
        assert r.path.startswith(f"{folder}/")
        assert r.line >= 1 and r.column >= 1
        if not r.is_warning:
            field, _, message = r.rest.partition(": ")
            assert field and message, r
    # the legacy beta forms are understood, not refused
    refused = {r.path for r in problems if not r.is_warning}
    assert len(refused) < len(list((examples / folder).glob("*.json")))
